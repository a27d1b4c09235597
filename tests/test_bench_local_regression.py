"""benchmarks/local_regression.py: the old tree is exported and run beside this one, and the extract table is
read back (the benchmark itself runs outside the tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from local_regression import ROW, entry_point_placeholders  # noqa: E402


def test_the_median_ratio_is_read_from_extract_speeds_table() -> None:
    lines = ["| patterns | processes | bare nlp.pipe, best (words/s) | extract stage, best (words/s) | ratio, best | "
             "ratio, median |", "| default | 1 | 3,059 | 2,844 | **0.93** | 0.95 |",
             "| default | 2 | 5,524 | 4,443 | **0.80** | 0.84 |",
             "| default + learned | 1 | 3,580 | 2,646 | **0.74** | 0.66 |"]
    found = {int(m.group(1)): float(m.group(3)) for line in lines if (m := ROW.match(line))}
    assert found == {1: 0.95, 2: 0.84}


def test_old_and_new_trees_resolve_the_same_mentions(tmp_path: Path) -> None:
    """With HEAD as the old revision both trees hold the same resolver: the clusters must agree and the table
    names both revisions."""
    proc = subprocess.run([sys.executable, "benchmarks/local_regression.py", "--base", "HEAD", "--size", "1500",
                           "--repeat", "1", "--no-extract", "--no-write"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "clusters identical in every run" in proc.stdout
    assert "| entity resolution CPU s (median) | 1500 |" in proc.stdout


def test_an_older_tree_gets_placeholders_for_the_installed_spacy_entry_points(tmp_path: Path) -> None:
    """A tree without kgpipe/nlp/transformer_ner.py (as before it existed) gets a placeholder spaCy can import;
    a tree that has the module keeps it."""
    import importlib.util

    (tmp_path / "kgpipe" / "nlp").mkdir(parents=True)
    assert entry_point_placeholders(tmp_path) == ["kgpipe.nlp.transformer_ner"]
    path = tmp_path / "kgpipe" / "nlp" / "transformer_ner.py"
    spec = importlib.util.spec_from_file_location("placeholder", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(RuntimeError, match="not in this revision"):
        module.make_transformer_ner()
    path.write_text("kept = True\n", encoding="utf-8")
    assert entry_point_placeholders(tmp_path) == [] and path.read_text(encoding="utf-8") == "kept = True\n"
