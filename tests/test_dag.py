"""DAG semantics: what runs, what does not, and what a failure leaves behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kgpipe.errors import LockedError, PipelineError, StageError
from kgpipe.runner import run, status
from kgpipe.stage import StageContext
from tests import toy_stages
from tests.toy_stages import CALLS, write


def make_pipeline(tmp_path: Path, stages: dict, name: str = "p") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    return path


def chain(**overrides: dict) -> dict:
    """a -> b -> c, plus d independent of them; each stage upper-cases its input."""
    stages = {
        "a": {"type": "toy_upper", "deps": {"source": "in/a.txt"}},
        "b": {"type": "toy_upper", "deps": {"source": "artifacts/a/result.txt"}},
        "c": {"type": "toy_concat", "deps": {"parts": ["artifacts/b/result.txt", "in/a.txt"]}},
        "d": {"type": "toy_upper", "deps": {"source": "in/d.txt"}},
    }
    for name, extra in overrides.items():
        stages[name] = {**stages[name], **extra}
    return stages


@pytest.fixture
def chain_pipeline(tmp_path: Path) -> Path:
    write(tmp_path / "in/a.txt", "alpha")
    write(tmp_path / "in/d.txt", "delta")
    CALLS.clear()
    return make_pipeline(tmp_path, chain())


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under artifacts/ and the lock file, byte for byte."""
    files = sorted(root.glob("artifacts/**/*")) + sorted(root.glob(".kgpipe/*/lock.json"))
    return {str(p.relative_to(root)): p.read_bytes() for p in files if p.is_file()}


def test_validate_runs_for_every_selected_stage_before_any_stage_runs(chain_pipeline: Path) -> None:
    make_pipeline(chain_pipeline.parent, chain(c={"type": "toy_checked", "deps": {"source": "artifacts/b/result.txt"},
                                                  "params": {"prefix": "bad"}}))
    for dry_run in (True, False):
        CALLS.clear()
        with pytest.raises(PipelineError) as err:
            run(chain_pipeline, dry_run=dry_run)
        assert "stage 'c': params.prefix: prefix 'bad' is not allowed" in str(err.value)
        lines = chain_pipeline.read_text().splitlines()
        assert lines[err.value.line - 1].strip() == "prefix: bad" and err.value.stage == "c"
        assert CALLS == ["validate c"]  # nothing ran, not even a, which comes first
        assert not (chain_pipeline.parent / "artifacts").exists()
    CALLS.clear()
    assert run(chain_pipeline, only="a").ran == ["a"]  # c is not selected: not validated
    assert CALLS == ["a"]


def test_first_run_runs_everything_in_order_and_second_run_nothing(chain_pipeline: Path) -> None:
    first = run(chain_pipeline)
    assert first.ran == ["a", "b", "c", "d"]
    assert (chain_pipeline.parent / "artifacts/b/result.txt").read_text() == "ALPHA"
    assert (chain_pipeline.parent / "artifacts/c/joined/all.txt").read_text() == "ALPHAalpha"
    CALLS.clear()
    second = run(chain_pipeline)
    assert second.ran == [] and CALLS == []
    assert second.skipped == ["a", "b", "c", "d"]
    assert all(not st.stale for st in status(chain_pipeline))


def test_changed_param_reruns_that_stage_and_its_downstream_only(chain_pipeline: Path) -> None:
    run(chain_pipeline)
    make_pipeline(chain_pipeline.parent, chain(b={"params": {"prefix": ">"}}))
    reasons = {st.name: st.reasons for st in status(chain_pipeline)}
    assert reasons["a"] == [] and reasons["d"] == []
    assert any("params changed" in r and "prefix" in r for r in reasons["b"])
    assert reasons["c"] == ["upstream stage 'b' will run"]
    CALLS.clear()
    result = run(chain_pipeline)
    assert result.ran == ["b", "c"] and CALLS == ["b", "c"]
    assert (chain_pipeline.parent / "artifacts/c/joined/all.txt").read_text() == ">ALPHAalpha"


def test_a_change_deep_in_a_params_block_names_that_key_only() -> None:
    from kgpipe.dag import _params_diff

    old = {"resolution": {"threshold": 0.55, "weights": {"token": 0.8, "char": 0.1}, "ngram": 3}, "seed": 1}
    new = {"resolution": {"threshold": 0.55, "weights": {"token": 0.6, "char": 0.1}, "ngram": 3, "extra": True},
           "seed": 1}
    assert _params_diff(old, new) == ("params changed (resolution.extra: '<unset>' -> True; "
                                      "resolution.weights.token: 0.8 -> 0.6)")
    many = {f"k{i}": i for i in range(5)}
    assert _params_diff({}, many).endswith("; +2 more)")


def test_param_change_with_identical_output_stops_at_that_stage(chain_pipeline: Path) -> None:
    run(chain_pipeline)
    make_pipeline(chain_pipeline.parent, chain(b={"params": {"unused": 7}}))
    CALLS.clear()
    result = run(chain_pipeline)
    assert result.ran == ["b"]          # b's outputs are byte-identical, so c's deps did not change
    assert result.skipped == ["a", "c", "d"]


def test_edited_input_reruns_and_touched_but_identical_input_does_not(chain_pipeline: Path) -> None:
    run(chain_pipeline)
    source = chain_pipeline.parent / "in/d.txt"
    source.write_text("delta")  # same bytes, new mtime
    assert run(chain_pipeline).ran == []
    source.write_text("DELTA, edited")
    assert [st.reasons for st in status(chain_pipeline) if st.name == "d"] == [["dep changed: in/d.txt"]]
    assert run(chain_pipeline).ran == ["d"]


def test_folder_dep_is_hashed_by_relative_paths_and_contents(tmp_path: Path) -> None:
    write(tmp_path / "in/a.txt", "alpha")
    pipeline = make_pipeline(tmp_path, {"j": {"type": "toy_concat", "deps": {"parts": ["in"]}}})
    assert run(pipeline).ran == ["j"]
    write(tmp_path / "in/sub/b.txt", "beta")  # a file added deep inside
    assert [st.reasons for st in status(pipeline)] == [["dep changed: in"]]
    assert run(pipeline).ran == ["j"]
    assert (tmp_path / "artifacts/j/joined/all.txt").read_text() == "alphabeta"
    (tmp_path / "in/sub/b.txt").rename(tmp_path / "in/sub/c.txt")  # same bytes, new name
    assert run(pipeline).ran == ["j"]
    assert run(pipeline).ran == []


def test_deleted_or_edited_output_reruns_its_stage(chain_pipeline: Path) -> None:
    run(chain_pipeline)
    out = chain_pipeline.parent / "artifacts/d/result.txt"
    out.unlink()
    assert [st.reasons for st in status(chain_pipeline) if st.name == "d"] == [["out missing: artifacts/d/result.txt"]]
    assert run(chain_pipeline).ran == ["d"]
    assert out.read_text() == "DELTA"
    out.write_text("tampered")
    assert run(chain_pipeline).ran == ["d"]
    assert out.read_text() == "DELTA"
    (chain_pipeline.parent / "artifacts/c/joined/count.txt").write_text("99")  # inside a folder out
    assert run(chain_pipeline).ran == ["c"]


def test_failing_stage_leaves_prior_artifacts_and_lock_untouched(chain_pipeline: Path) -> None:
    root = chain_pipeline.parent
    run(chain_pipeline)
    before = snapshot(root)
    write(root / "in/a.txt", "changed")
    make_pipeline(root, chain(b={"params": {"fail": "error"}}))
    CALLS.clear()
    with pytest.raises(StageError, match=r"stage 'b'.*RuntimeError: boom"):
        run(chain_pipeline)
    assert CALLS == ["a", "b"]
    after = snapshot(root)
    assert after["artifacts/b/result.txt"] == before["artifacts/b/result.txt"]   # not "half-written"
    assert after["artifacts/c/joined/all.txt"] == before["artifacts/c/joined/all.txt"]
    assert after["artifacts/a/result.txt"] == b"CHANGED"                         # a succeeded: committed
    assert not list(root.glob("artifacts/**/*kgpipe-tmp*")), "temporary outputs must be cleaned up"
    lock = (root / ".kgpipe/p/lock.json").read_text()
    assert '"prefix": ""' in lock and "fail" in lock and '"fail": null' in lock  # b's old entry kept
    # the next run redoes b (and what follows) once the cause is fixed
    make_pipeline(root, chain())
    assert run(chain_pipeline).ran == ["b", "c"]


def test_interrupted_stage_leaves_artifacts_and_lock_untouched(chain_pipeline: Path) -> None:
    root = chain_pipeline.parent
    run(chain_pipeline)
    before = snapshot(root)
    make_pipeline(root, chain(d={"params": {"fail": "interrupt"}}))
    with pytest.raises(KeyboardInterrupt):
        run(chain_pipeline)
    assert snapshot(root) == before
    assert not (root / ".kgpipe/p/run.owner").exists()
    # the workspace lock was released: a new run can start at once
    make_pipeline(root, chain())
    assert run(chain_pipeline).ran == []


def test_scratch_folder_survives_a_failure_and_is_removed_on_success(chain_pipeline: Path) -> None:
    root = chain_pipeline.parent
    make_pipeline(root, chain(d={"params": {"fail": "error"}}))
    with pytest.raises(StageError):
        run(chain_pipeline)
    scratch = list((root / ".kgpipe/p/scratch").glob("d-*"))
    assert len(scratch) == 1 and (scratch[0] / "attempts").read_text() == "x"
    with pytest.raises(StageError):
        run(chain_pipeline)
    assert (scratch[0] / "attempts").read_text() == "xx"  # same fingerprint, same folder: resumable
    make_pipeline(root, chain())
    run(chain_pipeline)
    assert not list((root / ".kgpipe/p/scratch").glob("d-*"))


def test_until_only_force_and_dry_run(chain_pipeline: Path) -> None:
    root = chain_pipeline.parent
    assert run(chain_pipeline, until="b").ran == ["a", "b"]
    assert run(chain_pipeline, only="d").ran == ["d"]
    dry = run(chain_pipeline, dry_run=True)
    assert dry.ran == [] and list(dry.would_run) == ["c"] and dry.would_run["c"] == ["never run"]
    assert not (root / "artifacts/c").exists()
    assert run(chain_pipeline).ran == ["c"]
    assert run(chain_pipeline, force=True, until="b").ran == ["a", "b"]
    with pytest.raises(PipelineError, match="no stage named 'zz'"):
        run(chain_pipeline, until="zz")


def test_only_fails_clearly_when_upstream_output_is_missing(chain_pipeline: Path) -> None:
    with pytest.raises(StageError, match=r"dep missing: artifacts/a/result\.txt"):
        run(chain_pipeline, only="b")


def test_stage_type_version_bump_makes_it_stale(chain_pipeline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run(chain_pipeline)
    monkeypatch.setattr(toy_stages.ToyUpper, "version", 2)
    reasons = {st.name: st.reasons for st in status(chain_pipeline)}
    assert reasons["a"] == ["stage type changed (toy_upper v1 -> toy_upper v2)"]
    assert run(chain_pipeline).ran == ["a", "b", "d"]  # c: b's output is unchanged


HOLD_LOCK = """
import sys, time
from pathlib import Path
from kgpipe.config import load_pipeline
from kgpipe.runner import Workspace
import tests.toy_stages  # registers the toy stage types
lock = Workspace(load_pipeline(sys.argv[1])).acquire(wait=0)
Path(sys.argv[2]).write_text("held")
time.sleep(float(sys.argv[3]))
lock.release()
"""


def test_second_run_on_the_same_workspace_fails_or_waits(chain_pipeline: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(chain_pipeline), str(ready), "1.5"],
                              cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "lock holder did not start"
            time.sleep(0.05)
        with pytest.raises(LockedError, match=rf"another kgpipe run is using .*\(pid {holder.pid} "):
            run(chain_pipeline)
        assert not list((chain_pipeline.parent / "artifacts").rglob("*.txt"))  # nothing written
        assert run(chain_pipeline, wait=30).ran == ["a", "b", "c", "d"]  # queued behind the holder
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()
        holder.wait()


# --- validation before anything runs -------------------------------------------------------------------


def test_cycle_is_rejected(tmp_path: Path) -> None:
    path = make_pipeline(tmp_path, {
        "x": {"type": "toy_upper", "deps": {"source": "artifacts/y/result.txt"}},
        "y": {"type": "toy_upper", "deps": {"source": "artifacts/x/result.txt"}},
    })
    with pytest.raises(PipelineError, match=r"cycle between stages: (x -> y -> x|y -> x -> y)"):
        run(path)
    assert not (tmp_path / "artifacts").exists()


def test_stage_reading_its_own_output_is_a_cycle(tmp_path: Path) -> None:
    path = make_pipeline(tmp_path, {"x": {"type": "toy_upper", "deps": {"source": "artifacts/x/result.txt"}}})
    with pytest.raises(PipelineError, match="cycle: stage 'x' reads its own out"):
        run(path)


def test_two_stages_writing_the_same_out_are_rejected_with_the_line(tmp_path: Path) -> None:
    write(tmp_path / "in.txt", "i")
    path = tmp_path / "p.yaml"
    path.write_text(
        "stages:\n"
        "  x:\n    type: toy_upper\n    deps: {source: in.txt}\n    outs: {result: shared.txt}\n"
        "  y:\n    type: toy_upper\n    deps: {source: in.txt}\n    outs:\n      result: shared.txt\n")
    with pytest.raises(PipelineError) as err:
        run(path)
    assert "stages 'x' and 'y' both write shared.txt" in str(err.value)
    assert err.value.line == 10 and str(path) in str(err.value)


def test_missing_dep_unknown_type_param_and_dep_name_all_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    cases = {
        "    deps: {source: nowhere.txt}\n": ("does not exist and no stage produces it", 4),
        "    deps: {source: p.yaml}\n    params:\n      prefx: 1\n": ("unknown key 'prefx'", 6),
        "    deps: {source: p.yaml}\n    params:\n      prefix: [1]\n": ("params.prefix", 6),
        "    deps: {sauce: p.yaml}\n": ("unknown dep 'sauce'", 4),
        "    deps: {}\n": ("missing required dep 'source'", 2),
    }
    for body, (message, line) in cases.items():
        path.write_text("stages:\n  x:\n    type: toy_upper\n" + body)
        with pytest.raises(PipelineError) as err:
            run(path)
        assert message in str(err.value) and err.value.line == line, (body, str(err.value))
    path.write_text("stages:\n  x:\n    type: toy_uper\n")
    with pytest.raises(PipelineError, match=r"p.yaml:3: stage 'x': unknown stage type 'toy_uper'") as err:
        run(path)
    assert "toy_upper" in (err.value.hint or "")
    path.write_text("stages:\n  x:\n    type: toy_upper\n  x:\n    type: toy_upper\n")
    with pytest.raises(PipelineError, match=r"p\.yaml:4: duplicate key 'x'"):
        run(path)
    path.write_text("stages: [unclosed\n")
    with pytest.raises(PipelineError, match="invalid YAML"):
        run(path)
    with pytest.raises(PipelineError, match="pipeline file not found"):
        run(tmp_path / "absent.yaml")


def test_track_reports_the_total_of_sized_items_only(tmp_path: Path) -> None:
    events: list[tuple[str, int, int | None]] = []
    ctx = StageContext(stage="s", params=None, inputs={}, outputs={}, root=tmp_path, scratch_dir=tmp_path / "x",
                       on_progress=lambda _stage, description, done, total: events.append((description, done, total)))
    assert list(ctx.track(["a", "b", "c"], description="list", every=2)) == ["a", "b", "c"]
    assert events == [("list", 0, 3), ("list", 2, 3), ("list", 3, 3)]
    events.clear()
    assert list(ctx.track(iter("ab"), description="iterator")) == ["a", "b"]   # no len(): no total
    assert events == [("iterator", 0, None), ("iterator", 1, None), ("iterator", 2, None), ("iterator", 2, None)]


def test_a_folder_output_is_an_empty_folder_and_a_file_output_a_free_name(tmp_path: Path) -> None:
    write(tmp_path / "in/a.txt", "x")
    pipeline = make_pipeline(tmp_path, {"p": {"type": "toy_probe", "deps": {"source": "in/a.txt"}}})
    run(pipeline)
    assert status(pipeline)[0].summary == {"folder_is_dir": True, "folder_entries": 0, "file_exists": False}
    assert (tmp_path / "artifacts/p/probe/copy.txt").read_text() == "x"
    assert (tmp_path / "artifacts/p/probe.txt").read_text() == "ok"


def test_a_stage_is_given_the_dep_hashes_its_lock_entry_records(chain_pipeline: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """StageContext.input_hash answers with the runner's hashes (a stage that keys a cache on its deps, as
    extract does, need not read them again), and computes one for a path the runner did not hash."""
    from kgpipe.config import load_pipeline
    from kgpipe.lockfile import LockFile
    from kgpipe.runner import Workspace

    seen: dict[str, dict[Path, str | None]] = {}
    concat = toy_stages.ToyConcat.run

    def run_concat(self: toy_stages.ToyConcat, ctx: StageContext) -> None:
        seen[ctx.stage] = dict(ctx.input_hashes)
        assert [ctx.input_hash(p) for p in ctx.input("parts")] == list(ctx.input_hashes.values())
        other = chain_pipeline.parent / "in" / "d.txt"
        assert other not in ctx.input_hashes and ctx.input_hash(other) is not None
        concat(self, ctx)

    monkeypatch.setattr(toy_stages.ToyConcat, "run", run_concat)
    run(chain_pipeline)
    pipe = load_pipeline(chain_pipeline)
    entry = LockFile.read(Workspace(pipe).lock_path).stages["c"]
    assert {pipe.rel(path): digest for path, digest in seen["c"].items()} == entry.deps
    assert len(entry.deps) == 2 and all(entry.deps.values())
