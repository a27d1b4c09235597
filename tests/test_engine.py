"""Engines: the `executor:` block (pipeline, stage, command line), the checks made before any stage runs, and the
Ray engine's tasks and actor pools on a simulated two-node cluster (tests/ray_cluster.py)."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tests.toy_stages  # noqa: F401  (registers the toy stage types)
from kgpipe.cli import app
from kgpipe.config import load_pipeline
from kgpipe.engine import ExecutorConfig, LocalExecutor
from kgpipe.errors import PipelineError, StageError
from kgpipe.runner import run, stage_executors, status

cli = CliRunner()


def pipeline_file(folder: Path, executor: str = "", stage_executor: str = "", stage_type: str = "toy_upper",
                  params: str = "{}") -> Path:
    (folder / "in.txt").write_text("hello")
    text = "version: 1\n" + (f"executor: {executor}\n" if executor else "") + textwrap.dedent(f"""\
        stages:
          up:
            type: {stage_type}
            deps: {{source: in.txt}}
            params: {params}
        """) + (f"    executor: {stage_executor}\n" if stage_executor else "")
    path = folder / "pipeline.yaml"
    path.write_text(text)
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def connect(ray_cluster) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_cluster.address, include_dashboard=False, log_to_driver=False)


# --- the executor block --------------------------------------------------------------------------------


def test_stage_keys_override_the_pipeline_and_the_command_line_overrides_both(tmp_path: Path) -> None:
    path = pipeline_file(tmp_path, executor="{engine: ray, address: auto, max_restarts: 1}",
                         stage_executor="{resources: {GPU: 1}, max_restarts: 5}")
    pipe = load_pipeline(path)
    assert pipe.executor == ExecutorConfig(engine="ray", address="auto", max_restarts=1)
    assert pipe.stages["up"].executor == ExecutorConfig(engine="ray", address="auto", max_restarts=5,
                                                        resources={"GPU": 1.0})
    forced = stage_executors(pipe, ["up"], engine="local")["up"]
    assert forced.engine == "local" and forced.resources == {"GPU": 1.0}
    assert stage_executors(pipe, ["up"], address="10.0.0.1:6379")["up"].address == "10.0.0.1:6379"


@pytest.mark.parametrize(("executor", "stage_executor", "key", "message"), [
    ("{engine: spark}", "", "executor:", "engine"),
    ("{engine: ray, workers: 0}", "", "executor:", "workers"),
    ("", "{nodes: 3}", "    executor:", "unknown key 'nodes'"),
    ("{engine: ray, temp_dir: spill}", "", "executor:", "temp_dir lies inside the project"),
])
def test_bad_executor_blocks_name_the_line(tmp_path: Path, executor: str, stage_executor: str, key: str,
                                           message: str) -> None:
    path = pipeline_file(tmp_path, executor=executor, stage_executor=stage_executor)
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    assert message in str(info.value)
    assert info.value.line == line_of(path, key)


def test_the_engine_is_not_part_of_a_stage_fingerprint(tmp_path: Path) -> None:
    path = pipeline_file(tmp_path)
    run(path)
    path.write_text(path.read_text().replace("version: 1\n", "version: 1\nexecutor: {engine: ray, address: auto}\n"))
    assert [s.stale for s in status(path)] == [False]


def test_a_bad_engine_on_the_command_line_is_a_pipeline_error(tmp_path: Path) -> None:
    result = cli.invoke(app, ["run", str(pipeline_file(tmp_path)), "--engine", "spark"])
    assert result.exit_code == 2 and "--engine" in result.output and "Traceback" not in result.output


# --- checks before any stage runs (exit 7: the environment; exit 2: the file) ---------------------------


def test_ray_missing_names_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = cli.invoke(app, ["run", str(pipeline_file(tmp_path)), "--engine", "ray"])
    assert result.exit_code == 7, result.output
    assert "pip install 'kgpipe[ray]'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "artifacts").exists()


def test_an_unreachable_address_fails_fast_with_exit_7(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = pipeline_file(tmp_path, executor=f'{{engine: ray, address: "127.0.0.1:{port}", timeout_s: 5}}')
    started = time.monotonic()
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 7, result.output
    assert f"pipeline.yaml:{line_of(path, 'executor:')}" in result.output
    assert "no Ray cluster answers there" in result.output and "ray start --head" in result.output
    assert time.monotonic() - started < 15
    assert not (tmp_path / "artifacts").exists()


def test_ray_client_addresses_are_refused(tmp_path: Path) -> None:
    path = pipeline_file(tmp_path, executor='{engine: ray, address: "ray://head:10001"}')
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "ray job submit" in result.output


def test_a_resource_no_node_has_fails_before_any_stage(tmp_path: Path, ray_cluster) -> None:
    path = pipeline_file(tmp_path, executor=f'{{engine: ray, address: "{ray_cluster.address}"}}',
                         stage_executor="{resources: {GPU: 1}}")
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 7, result.output
    assert "GPU: 1" in result.output and "no node of the Ray cluster has" in result.output
    assert f"pipeline.yaml:{line_of(path, '    executor:')}" in result.output
    assert not (tmp_path / "artifacts").exists()


def test_a_dep_outside_the_shared_folders_is_refused_on_ray(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x")
    path = pipeline_file(project, executor="{engine: ray, address: auto}")
    path.write_text(path.read_text().replace("source: in.txt", f"source: {outside}"))
    with pytest.raises(PipelineError, match="outside the project and allow_outside"):
        run(path)


# --- the Ray engine on a two-node cluster -------------------------------------------------------------


def test_a_remote_stage_runs_on_a_worker_and_commits_as_locally(tmp_path: Path, ray_cluster) -> None:
    path = pipeline_file(tmp_path, executor=f'{{engine: ray, address: "{ray_cluster.address}"}}',
                         stage_type="toy_remote")
    result = run(path)
    assert result.summaries["up"]["pid"] != os.getpid()
    assert result.summaries["up"]["progress_forwarded"] is False
    assert (tmp_path / "artifacts/up/result.txt").read_text() == "HELLO"
    local = run(path, engine="local", force=True)
    assert local.summaries["up"]["pid"] == os.getpid()


def test_a_failing_remote_stage_leaves_earlier_outputs(tmp_path: Path, ray_cluster) -> None:
    path = pipeline_file(tmp_path, executor=f'{{engine: ray, address: "{ray_cluster.address}"}}',
                         stage_type="toy_remote")
    run(path)
    before = (tmp_path / "artifacts/up/result.txt").read_bytes()
    lock = (tmp_path / ".kgpipe/pipeline/lock.json").read_bytes()
    path.write_text(path.read_text().replace("params: {}", "params: {fail: error}"))
    with pytest.raises(StageError, match="boom"):
        run(path)
    assert (tmp_path / "artifacts/up/result.txt").read_bytes() == before
    assert (tmp_path / ".kgpipe/pipeline/lock.json").read_bytes() == lock


class Doubler:
    """A worker that counts how often it is built and, where told, kills its process on a batch."""

    def __init__(self, marker: str, crash_on: int | None) -> None:
        self.marker, self.crash_on = Path(marker), crash_on
        with self.marker.open("a") as f:
            f.write(f"built {os.getpid()}\n")

    def __call__(self, batch: list[int]) -> list[int]:
        if self.crash_on in batch:
            crashes = self.marker.with_suffix(".crash")
            if not crashes.exists() or "always" in self.marker.name:
                crashes.write_text("x")
                os._exit(1)  # the actor's process dies, as a segfault in a native library would kill it
        time.sleep(0.01 * (batch[0] % 3))  # finish out of order
        return [2 * x for x in batch]


def batches(n: int) -> list[list[int]]:
    return [list(range(i, min(i + 5, n))) for i in range(0, n, 5)]


def test_map_ordered_keeps_input_order_and_builds_each_worker_once(tmp_path: Path, ray_cluster) -> None:
    from kgpipe.engine.ray import RayExecutor

    connect(ray_cluster)
    marker = tmp_path / "built"
    expected = list(LocalExecutor(ExecutorConfig(), "s").map_ordered(Doubler, (str(marker), None), batches(60),
                                                                     what="t"))
    marker.unlink()
    got = list(RayExecutor(ExecutorConfig(engine="ray", workers=2), "s").map_ordered(
        Doubler, (str(marker), None), batches(60), what="t"))
    assert got == expected == [[2 * x for x in b] for b in batches(60)]
    assert len(marker.read_text().splitlines()) == 2


def test_a_worker_that_dies_once_is_restarted_and_the_results_are_unchanged(tmp_path: Path, ray_cluster) -> None:
    from kgpipe.engine.ray import RayExecutor

    connect(ray_cluster)
    marker = tmp_path / "once"
    got = list(RayExecutor(ExecutorConfig(engine="ray", workers=2, max_restarts=2, max_task_retries=2), "s")
               .map_ordered(Doubler, (str(marker), 23), batches(40), what="t"))
    assert got == [[2 * x for x in b] for b in batches(40)]
    assert marker.with_suffix(".crash").exists()
    assert len(marker.read_text().splitlines()) >= 3  # two actors, one rebuilt after the crash


def test_retries_are_finite_and_the_failure_is_a_stage_error(tmp_path: Path, ray_cluster) -> None:
    from kgpipe.engine.ray import RayExecutor

    connect(ray_cluster)
    marker = tmp_path / "always"
    started = time.monotonic()
    with pytest.raises(StageError, match="worker died and the retries ran out") as info:
        list(RayExecutor(ExecutorConfig(engine="ray", workers=1, max_restarts=1, max_task_retries=1), "extract")
             .map_ordered(Doubler, (str(marker), 7), batches(20), what="documents 5-9"))
    assert "documents 5-9" in str(info.value) and info.value.stage == "extract"
    assert time.monotonic() - started < 60


def scaled(table: dict[str, int], item: str) -> tuple[str, int, int]:
    return item, table[item], os.getpid()


def test_map_tasks_sends_the_shared_table_once_and_keeps_order(ray_cluster) -> None:
    from kgpipe.engine.ray import RayExecutor

    connect(ray_cluster)
    table = {f"k{i}": i * i for i in range(200)}
    items = [f"k{i}" for i in reversed(range(200))]
    local = [r[:2] for r in LocalExecutor(ExecutorConfig(), "s").map_tasks(scaled, items, shared=(table,), what="t")]
    remote = list(RayExecutor(ExecutorConfig(engine="ray"), "s").map_tasks(scaled, items, shared=(table,), what="t"))
    assert [r[:2] for r in remote] == local == [(k, table[k]) for k in items]
    assert {r[2] for r in remote} - {os.getpid()}  # ran in worker processes



def test_a_shared_value_is_put_once_for_several_maps(ray_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Executor.share: on Ray the value is put in the object store once and every map_tasks that names it reads
    that copy (a plain shared value is put once per map); locally the value itself; the same results."""
    import ray

    from kgpipe.engine import Shared
    from kgpipe.engine.ray import RayExecutor

    connect(ray_cluster)
    table = {f"k{i}": i * i for i in range(50)}
    items = [f"k{i}" for i in range(50)]
    puts: list[object] = []
    real_put = ray.put
    monkeypatch.setattr(ray, "put", lambda value, **kw: puts.append(value) or real_put(value, **kw))
    executor = RayExecutor(ExecutorConfig(engine="ray"), "s")
    handle = executor.share(table)
    assert isinstance(handle, Shared) and puts == [table]
    first = [r[:2] for r in executor.map_tasks(scaled, items, shared=(handle,), what="t")]
    second = [r[:2] for r in executor.map_tasks(scaled, items[::-1], shared=(handle,), what="t")]
    assert puts == [table] and first == second[::-1] == [(k, table[k]) for k in items]
    list(executor.map_tasks(scaled, items, shared=(table,), what="t"))
    assert len(puts) == 2  # a plain value: put by the map itself
    local = LocalExecutor(ExecutorConfig(), "s")
    assert local.share(table).held is table
    assert [r[:2] for r in local.map_tasks(scaled, items, shared=(local.share(table),), what="t")] == first

def test_components_agree_on_both_engines(ray_cluster) -> None:
    import numpy as np

    from kgpipe.engine.ray import RayExecutor

    connect(ray_cluster)
    rng = np.random.default_rng(3)
    chain = np.arange(40)
    left = np.concatenate([chain[:-1], rng.integers(400, 1000, 300)])
    right = np.concatenate([chain[1:], rng.integers(400, 1000, 300)])
    order = rng.permutation(len(left))
    local = LocalExecutor(ExecutorConfig(), "fuse").components(1200, left[order], right[order])
    remote = RayExecutor(ExecutorConfig(engine="ray"), "fuse").components(1200, left[order], right[order])
    assert (remote == local).all()
    assert (local[:40] == 0).all() and local[1100] == 1100  # the chain's minimum; a node in no edge


def test_the_checks_hold_when_this_process_is_already_connected(tmp_path: Path, ray_cluster) -> None:
    import ray

    connect(ray_cluster)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = pipeline_file(tmp_path, executor=f'{{engine: ray, address: "127.0.0.1:{port}", timeout_s: 5}}')
    assert cli.invoke(app, ["run", str(unreachable)]).exit_code == 7
    client = pipeline_file(tmp_path, executor='{engine: ray, address: "ray://head:10001"}')
    assert cli.invoke(app, ["run", str(client)]).exit_code == 2
    reuse = pipeline_file(tmp_path, executor="{engine: ray, address: auto}", stage_type="toy_remote")
    result = run(reuse)
    assert result.summaries["up"]["pid"] != os.getpid()
    assert ray.is_initialized()  # the caller's connection is left open
