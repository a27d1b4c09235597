"""The fuse stage with learned match weights (resolution.learn: em): learned on the first run and stored as
learned_weights.json, reused by later runs (same bytes, the summary says so), learned again on relearn or when
the file is deleted; the stage summary's weights table; `kgpipe explain` and its errors; learn fixed (the
default) writing a note and no weights. On the hand-written mentions of tests/test_fuse.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kgpipe.cli import app
from kgpipe.config import load_pipeline
from kgpipe.errors import PipelineError
from kgpipe.hashing import sha256_bytes
from kgpipe.kg.learned_weights import LearnedWeights
from kgpipe.kg.stored_weights import FIXED_TEXT
from kgpipe.lockfile import LockFile
from kgpipe.runner import Workspace, run
from kgpipe.stages.fuse_summary import summarise
from tests.test_fuse import DOCS, NEW_DOC, fuse, write_inputs

EM = {"resolution": {"learn": "em"}}
runner = CliRunner()


def entry(root: Path) -> Any:
    return LockFile.read(Workspace(load_pipeline(root / "pipeline.yaml")).lock_path).stages["fuse"]


def weights_file(root: Path) -> Path:
    return root / "artifacts/fuse/learned_weights.json"


@pytest.fixture
def learned(learned_fuse: Path) -> Path:
    """A pipeline fused once with learn: em (the session's, tests.learned_run)."""
    return learned_fuse


def test_the_first_run_learns_and_stores_the_weights(learned: Path) -> None:
    weights = LearnedWeights.load(weights_file(learned))
    assert [c.name for c in weights.comparisons] == ["name", "acronym", "identifiers", "numbers", "context"]
    assert weights.pairs > 0 and weights.random_pairs > 0
    summary = entry(learned).summary
    assert summary["learned_weights"] == "learned"
    assert "none stored" in summary["learned_weights_note"] and "learned_weights_from" not in summary


def test_the_stage_summary_shows_m_and_u_per_level_and_the_prior(learned: Path) -> None:
    pipe = load_pipeline(learned / "pipeline.yaml")
    shown = summarise(pipe.stages["fuse"], entry(learned))
    assert shown is not None
    weights = LearnedWeights.load(weights_file(learned))
    table = next(t for t in shown.tables if t.title.startswith("Learned match weights"))
    assert table.columns == ("comparison", "level", "m", "u", "log2(m/u)")
    assert len(table.rows) == sum(len(c.levels) for c in weights.comparisons)
    name = weights.comparison("name")
    assert table.rows[0] == ("name", "exact", f"{name.m[0]:.4g}", f"{name.u[0]:.4g}", round(name.weight(0), 3))
    assert shown.metrics["prior"] == weights.prior and shown.metrics["learned_weights"] == "learned"


def test_later_runs_reuse_the_weights_until_relearn_or_the_file_is_deleted(tmp_path: Path) -> None:
    write_inputs(tmp_path, DOCS)
    fuse(tmp_path, **EM)
    first = weights_file(tmp_path).read_bytes()
    write_inputs(tmp_path, {**DOCS, **NEW_DOC})  # an incremental run: one more document
    grown = fuse(tmp_path, **EM)
    assert weights_file(tmp_path).read_bytes() == first
    summary = entry(tmp_path).summary
    assert summary["learned_weights"] == "reused" and summary["learned_weights_from"] == sha256_bytes(first)
    assert "learned_weights_note" not in summary
    shown = summarise(load_pipeline(tmp_path / "pipeline.yaml").stages["fuse"], entry(tmp_path))
    assert shown is not None and shown.metrics["learned_weights"] == "reused"
    # the reused weights are the ones scored with: the report's EM statistics are the first run's
    assert grown["report"]["resolution"]["em_pairs"] == LearnedWeights.from_json(first).pairs

    relearned = fuse(tmp_path, resolution={"learn": "em", "relearn": True})
    summary = entry(tmp_path).summary
    assert summary["learned_weights"] == "learned" and "relearn" in summary["learned_weights_note"]
    again = weights_file(tmp_path).read_bytes()
    assert LearnedWeights.from_json(again).pairs == relearned["report"]["resolution"]["em_pairs"]
    assert again != first  # learned on the grown corpus: what the reuse kept from moving

    weights_file(tmp_path).unlink()
    fuse(tmp_path, **EM)  # a missing out makes the stage stale: no --force needed
    summary = entry(tmp_path).summary
    assert summary["learned_weights"] == "learned" and "deleted" in summary["learned_weights_note"]
    assert weights_file(tmp_path).read_bytes() == again  # learned on the same corpus: the same bytes


def test_weights_that_do_not_fit_the_settings_are_learned_again(tmp_path: Path) -> None:
    write_inputs(tmp_path, DOCS)
    fuse(tmp_path, **EM)
    fuse(tmp_path, resolution={"learn": "em", "em": {"name_bands": [0.8, 0.6]}})
    summary = entry(tmp_path).summary
    assert summary["learned_weights"] == "learned" and "the stored weights compare" in summary["learned_weights_note"]
    assert LearnedWeights.load(weights_file(tmp_path)).comparison("name").levels == [
        "exact", ">=0.8", ">=0.6", "else"]


def test_fixed_the_default_stores_a_note_and_no_weights(tmp_path: Path) -> None:
    write_inputs(tmp_path, DOCS)
    fuse(tmp_path)
    assert weights_file(tmp_path).read_text(encoding="utf-8") == FIXED_TEXT
    summary = entry(tmp_path).summary
    assert not any(key.startswith("learned_weights") for key in summary)
    pipe = load_pipeline(tmp_path / "pipeline.yaml")
    shown = summarise(pipe.stages["fuse"], entry(tmp_path))
    assert shown is not None and not any(t.title.startswith("Learned") for t in shown.tables)
    assert "prior" not in shown.metrics
    # switching to em afterwards learns (the note is no weights to reuse)
    fuse(tmp_path, **EM)
    assert "learn: fixed" in entry(tmp_path).summary["learned_weights_note"]


def test_relearn_needs_em(tmp_path: Path) -> None:
    write_inputs(tmp_path, DOCS)
    with pytest.raises(PipelineError, match="relearn applies only with learn: em"):
        fuse(tmp_path, resolution={"relearn": True})


def explain(root: Path, *names: str):
    return runner.invoke(app, ["explain", *names, "--pipeline", str(root / "pipeline.yaml")])


def test_explain_prints_the_waterfall_of_two_names(learned: Path) -> None:
    result = explain(learned, "MIT", "M.I.T.")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "the run put them in one entity" in lines
    assert any(line.startswith("prior") for line in lines)
    assert any(line.split()[:2] == ["name", "exact"] for line in lines)
    assert any(line.split()[:2] == ["context", ">=0.5"] for line in lines)
    assert lines[-1].startswith("match weight") and "probability" in lines[-1]
    # an entity label finds its mentions; names the run kept apart say so
    apart = explain(learned, "Massachusetts Institute of Technology", "Ada Quill")
    assert apart.exit_code == 0, apart.output
    assert "the run kept them apart" in apart.output and "(read as 'The Massachusetts" in apart.output


def test_explain_errors(learned: Path, tmp_path: Path) -> None:
    missing = explain(learned, "MIT", "Ada Quil")
    assert missing.exit_code == 3
    assert "no mention or entity of the last fuse run is called 'Ada Quil'" in missing.output
    assert "'Ada Quill'" in missing.output  # the close match as a hint
    write_inputs(tmp_path, DOCS)
    fuse(tmp_path)
    fixed = explain(tmp_path, "MIT", "M.I.T.")
    assert fixed.exit_code == 2 and "explain needs resolution.learn: em" in fixed.output
    # the last run's params count (its lock entry), not the file's: a run with -S ...learn=em can be explained
    run(tmp_path / "pipeline.yaml", overrides={"fuse.resolution.learn": "em"})
    overridden = explain(tmp_path, "MIT", "M.I.T.")
    assert overridden.exit_code == 0 and "match weight" in overridden.output
    (tmp_path / "artifacts/fuse/learned_weights.json").unlink()
    gone = explain(tmp_path, "MIT", "M.I.T.")
    assert gone.exit_code == 6 and "learned_weights.json does not exist yet" in gone.output
