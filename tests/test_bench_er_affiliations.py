"""benchmarks/er_affiliations.py: the gold audit applies only to the files it was made for (their sha256 recorded in
the audit); any other affiliation-style folder is scored plainly, and the report says that no audit applies."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.benchmark_modules import import_benchmark

REPO = Path(__file__).resolve().parents[1]
STRINGS = [("1", "University of Helsinki"), ("2", "Univ. of Helsinki, Finland"), ("3", "Helsinki University"),
           ("4", "Stanford University"), ("5", "Stanford Univ., CA, USA"), ("6", "IBM Almaden Research Center"),
           ("7", "IBM Almaden Research Center, San Jose")]
GOLD_PAIRS = [("1", "2"), ("2", "3"), ("4", "5"), ("6", "7")]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return import_benchmark("er_affiliations")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An affiliation-style folder in the Leipzig files' format: quoted id1/affil1 strings, headerless gold pairs."""
    data = tmp_path / "other_affiliations"
    data.mkdir()
    (data / "affiliationstrings.csv").write_text(
        '"id1","affil1"\n' + "".join(f'"{i}","{name}"\n' for i, name in STRINGS), encoding="utf-8")
    (data / "affiliationstrings_mapping_fixed.csv").write_text("".join(f"{a},{b}\n" for a, b in GOLD_PAIRS),
                                                                encoding="utf-8")
    return data


def audit_for(path: Path, folder: Path, listed: list[str]) -> Path:
    """An audit like the benchmark's, made for the files in `folder`, listing `listed`."""
    lines = ["# an audit", *(f"# sha256\t{name}\t{hashlib.sha256((folder / name).read_bytes()).hexdigest()}"
                             for name in ("affiliationstrings.csv", "affiliationstrings_mapping_fixed.csv")),
             "# id\tthe string names\tits gold cluster names", *(f"{i}\tsomewhere\telsewhere" for i in listed)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_benchmark_audit_does_not_apply_to_another_file_even_without_its_ids(bench: ModuleType,
                                                                                 folder: Path) -> None:
    ids, names, gold = bench.load(folder)
    assert names == [name for _, name in STRINGS]
    assert ids == [i for i, _ in STRINGS] and gold[0] == gold[1] == gold[2] != gold[3]
    assert set(bench.audit_made_for()) == {"affiliationstrings.csv", "affiliationstrings_mapping_fixed.csv"}
    assert bench.audit_mask(folder, ids) is None
    assert "No gold audit applies" in bench.no_audit_note()


def test_an_audit_applies_to_the_files_whose_sha256_it_records(bench: ModuleType, folder: Path,
                                                               tmp_path: Path) -> None:
    ids, _, _ = bench.load(folder)
    audit = audit_for(tmp_path / "audit.tsv", folder, ["3", "6"])
    mask = bench.audit_mask(folder, ids, audit)
    assert mask is not None
    assert np.flatnonzero(mask).tolist() == [2, 5]
    # one byte more in the strings: another file, no audit, even though every audited id is still there
    with (folder / "affiliationstrings.csv").open("a", encoding="utf-8") as handle:
        handle.write('"8","ETH Zurich"\n')
    assert bench.audit_mask(folder, bench.load(folder)[0], audit) is None


def test_an_audit_whose_ids_are_missing_from_its_own_files_or_that_names_no_files_stops(
        bench: ModuleType, folder: Path, tmp_path: Path) -> None:
    ids, _, _ = bench.load(folder)
    with pytest.raises(SystemExit, match="damaged"):
        bench.audit_mask(folder, ids, audit_for(tmp_path / "audit.tsv", folder, ["3", "99"]))
    bare = tmp_path / "bare.tsv"
    bare.write_text("# id\tnames\tgold names\n3\ta\tb\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="sha256"):
        bench.audit_mask(folder, ids, bare)


def test_the_script_scores_another_affiliation_file_and_says_no_audit_applies(folder: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "er_affiliations.py"), str(folder),
                           "--no-write"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "7 strings, 3 gold clusters, 5 gold pairs" in proc.stdout
    assert "No gold audit applies to these files" in proc.stdout
    assert "outside the gold audit" not in proc.stdout
