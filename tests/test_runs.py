"""Run history (kgpipe.history), `kgpipe runs`, `kgpipe diff` and `kgpipe run -S` on two tiny toy stages."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from pydantic import Field
from typer.testing import CliRunner

import kgpipe
from kgpipe.cli import app
from kgpipe.errors import KgpipeError, PipelineError, StageError
from kgpipe.history import FAILED, NOT_RUN, RAN, UP_TO_DATE, History, resolve_run
from kgpipe.registry import register_stage
from kgpipe.runner import run
from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType
from tests.test_dag import snapshot
from tests.toy_stages import write

cli = CliRunner()


class Block(StageParams):
    threshold: float = Field(0.5, gt=0, le=1)
    words: list[str] = Field(default_factory=list)


class KeepParams(StageParams):
    block: Block = Block()
    limit: int = 0
    names: dict[str, str] = Field(default_factory=dict)


@register_stage
class ToyKeep(StageType):
    """Keeps the first `threshold` share of its input's characters; reports counts and a metric."""

    name = "toy_keep"
    Params = KeepParams
    inputs = (InputSpec("source"),)
    outputs = (OutputSpec("result", "kept.txt"),)

    def run(self, ctx: StageContext) -> dict:
        text = ctx.input("source").read_text()
        kept = text[:round(len(text) * ctx.params.block.threshold)]
        ctx.output("result").write_text(kept)
        return {"kept": len(kept), "share": ctx.params.block.threshold, "timings": {"seconds": 0.01}}


def make(tmp_path: Path, b_params: dict | None = None, keep_runs: int | None = None) -> Path:
    """a (toy_keep) -> b (toy_upper, whose count `chars` follows a's output)."""
    write(tmp_path / "in/a.txt", "abcdefghij")
    config: dict = {"stages": {
        "a": {"type": "toy_keep", "deps": {"source": "in/a.txt"}},
        "b": {"type": "toy_upper", "deps": {"source": "artifacts/a/kept.txt"}, "params": b_params or {}}}}
    if keep_runs is not None:
        config["keep_runs"] = keep_runs
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def history(pipeline: Path) -> History:
    return History(pipeline.parent / ".kgpipe/p/runs")


def invoke(*args: object):
    return cli.invoke(app, [str(a) for a in args])


# --- the record ---------------------------------------------------------------------------------------------


def test_each_run_is_recorded_with_params_counts_timings_and_lock_entries(tmp_path: Path) -> None:
    pipeline = make(tmp_path)
    first = run(pipeline)
    second = run(pipeline)
    records = history(pipeline).records()
    assert [r.id for r in records] == [first.run_id, second.run_id] and first.run_id < second.run_id
    assert (history(pipeline).folder / f"{first.run_id}.json").is_file()
    one, two = records
    assert one.status == two.status == "success" and one.error is None
    assert one.with_status(RAN) == ["a", "b"] and two.with_status(UP_TO_DATE) == ["a", "b"]
    a = one.stages["a"]
    assert a.params == {"block": {"threshold": 0.5, "words": []}, "limit": 0, "names": {}}
    assert a.counts == {"kept": 5} and a.metrics == {"share": 0.5}
    assert a.timings["seconds"] == 0.01 and a.timings["duration_s"] >= 0
    assert a.lock is not None and set(a.outs) == {"artifacts/a/kept.txt"}
    assert one.stages["b"].counts == {"chars": 5}
    # a stage that was up to date keeps its counts (its artifacts are the same) but has no timings of this run
    assert two.stages["a"].counts == {"kept": 5} and two.stages["a"].timings == {}
    # the id: UTC start to the millisecond, then the params' hash (the same params, the same hash)
    assert one.id.split("-")[1] == two.id.split("-")[1] and one.id[:8] == one.started_at[:10].replace("-", "")


def test_a_failed_run_is_recorded_and_leaves_artifacts_and_lock_untouched(tmp_path: Path) -> None:
    pipeline = make(tmp_path)
    run(pipeline)
    before = snapshot(tmp_path)
    make(tmp_path, b_params={"fail": "error"})
    with pytest.raises(StageError):
        run(pipeline)
    assert snapshot(tmp_path) == before
    make(tmp_path, b_params={"fail": "interrupt"})
    with pytest.raises(KeyboardInterrupt):
        run(pipeline)
    assert snapshot(tmp_path) == before
    _, failed, interrupted = history(pipeline).records()
    assert failed.status == "failed" and failed.failed_stage == "b" and "RuntimeError: boom" in (failed.error or "")
    assert failed.stages["a"].status == UP_TO_DATE and failed.stages["b"].status == FAILED
    assert failed.stages["b"].params["fail"] == "error" and "duration_s" in failed.stages["b"].timings
    assert interrupted.status == "interrupted" and interrupted.failed_stage == "b"


def test_a_stage_not_reached_after_a_failure_is_recorded_as_not_run(tmp_path: Path) -> None:
    pipeline = make(tmp_path)
    with pytest.raises(PipelineError):
        run(pipeline, overrides={"a.block.threshold": 2})  # fails before the run: nothing recorded
    assert history(pipeline).records() == []
    (tmp_path / "in/a.txt").unlink()
    (tmp_path / "in/a.txt").mkdir()  # a dep that cannot be read as text: stage a fails
    with pytest.raises(StageError):
        run(pipeline)
    (record,) = history(pipeline).records()
    assert record.stages["a"].status == FAILED and record.stages["b"].status == NOT_RUN


def test_history_keeps_the_newest_runs_only(tmp_path: Path) -> None:
    pipeline = make(tmp_path, keep_runs=3)
    ids = [run(pipeline, force=True).run_id for _ in range(5)]
    assert [p.stem for p in history(pipeline).paths()] == ids[2:]
    off = make(tmp_path / "off", keep_runs=0)
    assert run(off).run_id is None and not history(off).folder.exists()


def test_an_error_writing_the_history_never_fails_a_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pipeline = make(tmp_path)
    write(tmp_path / ".kgpipe/p/runs", "a file where the runs folder goes")
    with caplog.at_level(logging.WARNING, logger="kgpipe.history"):
        result = run(pipeline)
    assert result.ran == ["a", "b"] and result.run_id is None
    assert "could not record the run" in caplog.text
    assert json.loads((tmp_path / ".kgpipe/p/lock.json").read_text())["stages"].keys() == {"a", "b"}


# --- -S overrides ------------------------------------------------------------------------------------------


def test_override_reruns_the_stage_is_recorded_and_the_next_plain_run_returns(tmp_path: Path) -> None:
    pipeline = make(tmp_path)
    text = pipeline.read_text()
    run(pipeline)
    result = invoke("run", pipeline, "-S", "a.block.threshold=0.8", "--set", "a.limit=3")
    assert result.exit_code == 0, result.output
    assert "params changed (block.threshold: 0.5 -> 0.8; limit: 0 -> 3)" in result.output
    assert (tmp_path / "artifacts/a/kept.txt").read_text() == "abcdefgh"
    assert pipeline.read_text() == text  # the file is not edited
    record = history(pipeline).records()[-1]
    assert record.overrides == {"a.block.threshold": 0.8, "a.limit": 3}
    assert record.stages["a"].params["block"]["threshold"] == 0.8 and record.with_status(RAN) == ["a", "b"]
    assert f"recorded as run {record.id}" in result.output.replace("\n", " ")

    back = run(pipeline)
    assert back.ran == ["a", "b"] and (tmp_path / "artifacts/a/kept.txt").read_text() == "abcde"
    assert back.notes == ["a: params back to the pipeline file's (last run had -S a.block.threshold=0.8, "
                          "-S a.limit=3)"]
    assert history(pipeline).records()[-1].overrides == {}
    assert run(pipeline).notes == []  # said once


def test_the_cli_says_when_params_return_to_the_file(tmp_path: Path) -> None:
    pipeline = make(tmp_path)
    assert invoke("run", pipeline, "-S", "a.block.words=[x, y]").exit_code == 0
    assert history(pipeline).records()[-1].stages["a"].params["block"]["words"] == ["x", "y"]
    result = invoke("run", pipeline)
    assert result.exit_code == 0
    assert "a: params back to the pipeline file's (last run had -S a.block.words=[\"x\", \"y\"])" in " ".join(
        result.output.split())


def test_python_api_takes_overrides_and_keeps_unset_params_unset(tmp_path: Path) -> None:
    pipeline = make(tmp_path)
    result = kgpipe.run(pipeline, overrides={"a.block.threshold": 0.3, "a.names.PER": "Person"})
    assert result.ran == ["a", "b"] and (tmp_path / "artifacts/a/kept.txt").read_text() == "abc"
    from kgpipe.config import load_pipeline
    from kgpipe.overrides import apply_overrides

    stage = apply_overrides(load_pipeline(pipeline), {"a.block.threshold": 0.3}).stages["a"]
    assert stage.params.model_fields_set == {"block"} and stage.params.block.model_fields_set == {"threshold"}


@pytest.mark.parametrize(("given", "message", "hint"), [
    ("c.limit=1", "-S c.limit: no stage named 'c'", "stages: a, b"),
    ("a.limt=1", "unknown param path a.limt: a has no key 'limt'", "keys of a: block, limit, names"),
    ("a.block.treshold=0.6", "unknown param path a.block.treshold: a.block has no key 'treshold'",
     "keys of a.block: threshold, words"),
    ("a.limit.x=1", "a.limit is a int, not a block of keys", "set it whole: -S a.limit=VALUE"),
    ("a.block.threshold=high", "-S a.block.threshold='high': Input should be a valid number", "expected float"),
    ("a.block.threshold=2", "Input should be less than or equal to 1", "expected float"),
    ("a.limit", "-S a.limit: expected STAGE.PARAM=VALUE", ""),
    ("a=1", "-S a: expected STAGE.PARAM[.KEY...]=VALUE", ""),
])
def test_a_bad_override_is_a_pipeline_error(tmp_path: Path, given: str, message: str, hint: str) -> None:
    pipeline = make(tmp_path)
    result = invoke("run", pipeline, "-S", given)
    output = " ".join(result.output.split())
    assert result.exit_code == PipelineError.exit_code, output
    assert message in output and hint in output
    assert not (tmp_path / "artifacts").exists() and not history(pipeline).folder.exists()


# --- kgpipe runs -------------------------------------------------------------------------------------------


def test_runs_lists_every_run_as_a_table_and_as_json(tmp_path: Path) -> None:
    pipeline = make(tmp_path)
    empty = invoke("runs", pipeline)
    assert empty.exit_code == 0 and "no runs recorded" in empty.output
    run(pipeline)
    run(pipeline, overrides={"a.block.threshold": 0.8})
    make(tmp_path, b_params={"fail": "error"})
    with pytest.raises(StageError):
        run(pipeline)
    ids = [r.id for r in history(pipeline).records()]
    table = invoke("runs", pipeline)
    assert table.exit_code == 0, table.output
    lines = [line for line in table.output.splitlines() if line[:8].isdigit()]
    assert [line.split()[0] for line in lines] == ids
    assert lines[0].split()[3:7] == ["success", "2", "0", "0.0s"]  # ran 2, 0 up to date (80 columns: all fit)
    assert table.output.splitlines()[3].strip() == "a.block.threshold=0.8"  # under its run's id
    assert "failed (b)" in lines[2]
    listed = json.loads(invoke("runs", pipeline, "--json").output)
    assert [r["id"] for r in listed] == ids and listed[2]["status"] == "failed"
    assert listed[1]["overrides"] == {"a.block.threshold": 0.8}
    assert listed[0]["stages"]["a"]["counts"] == {"kept": 5}


def test_a_damaged_record_is_skipped_with_a_warning(tmp_path: Path) -> None:
    pipeline = make(tmp_path)
    good = run(pipeline).run_id
    (history(pipeline).folder / "20000101T000000.000Z-abcdef.json").write_text("{not json")
    result = invoke("runs", pipeline)
    assert result.exit_code == 0 and "not a readable run record" in result.output and good in result.output


# --- kgpipe diff -------------------------------------------------------------------------------------------


def test_diff_of_the_last_two_runs_shows_params_counts_and_outputs(tmp_path: Path) -> None:
    pipeline = make(tmp_path)
    run(pipeline)
    run(pipeline, overrides={"a.block.threshold": 0.8})
    old, new = history(pipeline).records()
    result = invoke("diff", "--pipeline", pipeline, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["old"], data["new"]) == (old.id, new.id)
    a, b = data["stages"]["a"], data["stages"]["b"]
    assert a["params"] == {"block.threshold": {"old": 0.5, "new": 0.8, "delta": 0.3}}
    assert a["counts"] == {"kept": {"old": 5, "new": 8, "delta": 3}}
    assert a["metrics"] == {"share": {"old": 0.5, "new": 0.8, "delta": 0.3}}
    assert a["outs"]["artifacts/a/kept.txt"]["changed"] is True
    assert b["params"] == {} and b["counts"] == {"chars": {"old": 5, "new": 8, "delta": 3}}
    table = invoke("diff", "--pipeline", pipeline)
    assert table.exit_code == 0, table.output
    rows = [" ".join(line.split()) for line in table.output.splitlines()]
    assert "a param block.threshold 0.5 0.8 +0.3" in rows
    assert "a count kept 5 8 +3" in rows and "b count chars 5 8 +3" in rows
    assert any(row.startswith("a out artifacts/a/kept.txt") and row.endswith("changed") for row in rows)
    # the same run twice: nothing changed
    same = invoke("diff", "-1", "-1", "--pipeline", pipeline)
    assert same.exit_code == 0 and same.output.count("no change") == 2


def test_diff_takes_ids_prefixes_and_relative_refs(tmp_path: Path) -> None:
    pipeline = make(tmp_path)
    ids = [run(pipeline, overrides={"a.block.threshold": t}).run_id or "" for t in (0.2, 0.4, 0.6)]
    records = history(pipeline).records()
    folder = history(pipeline).folder
    assert resolve_run(records, "-1", folder).id == ids[2] and resolve_run(records, "-3", folder).id == ids[0]
    assert resolve_run(records, ids[1], folder).id == ids[1]
    assert resolve_run(records, ids[1][:20], folder).id == ids[1]  # the millisecond tells them apart
    data = json.loads(invoke("diff", ids[0], "-2", "--json", "--pipeline", pipeline).output)
    assert (data["old"], data["new"]) == (ids[0], ids[1])
    assert data["stages"]["a"]["params"]["block.threshold"] == {"old": 0.2, "new": 0.4, "delta": 0.2}
    only_a = json.loads(invoke("diff", ids[0], "--json", "--pipeline", pipeline).output)
    assert (only_a["old"], only_a["new"]) == (ids[0], ids[2])
    with pytest.raises(KgpipeError, match="ambiguous"):
        resolve_run(records, ids[0][:4], folder)


def test_diff_errors_name_the_runs_there_are(tmp_path: Path) -> None:
    pipeline = make(tmp_path)
    run(pipeline)
    too_few = invoke("diff", "--pipeline", pipeline)
    assert too_few.exit_code == KgpipeError.exit_code and "kgpipe diff compares two runs; 1 recorded" in too_few.output
    run(pipeline)
    ids = [r.id for r in history(pipeline).records()]
    for ref, message in (("nope", "no run with id 'nope'"), ("-3", "no run -3: 2 run(s) recorded")):
        result = invoke("diff", ref, "--pipeline", pipeline)
        output = " ".join(result.output.split())
        assert result.exit_code == KgpipeError.exit_code and message in output
        assert f"{ids[0]}, {ids[1]}" in output.replace(" ", "").replace(",", ", ")
