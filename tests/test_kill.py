"""The kill test in `make test`: SIGKILL `kgpipe run` at random moments of a toy pipeline with slow stages, run
again, and get exactly a clean run's artifacts with nothing left behind. benchmarks/kill_test.py does the same
through every stage of the sample pipeline, 20 kills or more."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from tests import kill_harness
from tests.toy_stages import write

STAGES = {
    "a": {"type": "toy_upper", "deps": {"source": "in/a.txt"}},
    "s1": {"type": "toy_slow", "deps": {"source": "artifacts/a/result.txt"}, "params": {"steps": 10}},
    "s2": {"type": "toy_slow", "deps": {"source": "artifacts/s1/steps"}, "params": {"steps": 10}},
    "c": {"type": "toy_concat", "deps": {"parts": ["artifacts/s2/steps", "artifacts/s1/last.txt"]}},
}


def project(folder: Path) -> Path:
    write(folder / "in/a.txt", "alpha beta")
    pipeline = folder / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"stages": STAGES}, sort_keys=False))
    return pipeline


def test_kills_at_random_moments_leave_nothing_but_a_clean_runs_artifacts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(kill_harness, "PRELOAD", "tests.toy_stages")
    clean = project(tmp_path / "clean")
    seconds = kill_harness.timed_run(clean)
    reference = kill_harness.artifact_digests(clean)
    assert len(reference) == 1 + 2 * 11 + 2  # result.txt; 10 steps and last.txt twice; all.txt and count.txt

    killed = project(tmp_path / "killed")
    rng = random.Random(0)
    moments = sorted(rng.uniform(0.2, 1.0) * seconds for _ in range(4))
    report = kill_harness.kill_and_compare(killed, reference, moments, seconds)
    assert sum(k.was_running for k in report.kills) >= 3, report.kills  # the kills hit running runs
    assert {k.stage for k in report.kills if k.stage} & {"s1", "s2"}, report.kills  # mid-stage, not only at start
    assert report.final_returncode == 0
    assert report.differing == [] and report.equal
    assert report.leftovers == [] and report.stale_after == []
