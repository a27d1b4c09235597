"""The local engine's worker processes (extract's n_process): results in input order from workers built once per
process, a batch that kills its process tried once more in a fresh one and then named, a worker that cannot be
built failing with its own error; and the extract stage with n_process 2 writing the bytes of n_process 1, with a
worker killed on the way, or naming the document that kills every worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kgpipe.engine import BatchLost, LocalExecutor
from kgpipe.errors import DependencyMissingError
from kgpipe.nlp import extract_worker
from kgpipe.runner import run
from tests.test_extract import write_inputs
from tests.test_extract_ray import (
    BAD_DOCS,
    assert_the_killer_is_named,
    extract_outs,
    extract_summary,
    forget_cached,
    out_bytes,
    third_range_document,
)


class Square:
    """Squares numbers; a number in `kill` ends its process (once per marker file, if given); says its pid."""

    builds = 0

    def __init__(self, kill: tuple[int, ...] = (), marker: str | None = None) -> None:
        self.kill = kill
        self.marker = marker
        Square.builds += 1
        self.build = Square.builds

    def __call__(self, batch: int) -> tuple[int, int, int]:
        if batch in self.kill and (self.marker is None or not Path(self.marker).exists()):
            if self.marker is not None:
                Path(self.marker).touch()
            os._exit(70)
        return batch * batch, os.getpid(), self.build


class Unbuildable:
    def __init__(self) -> None:
        raise DependencyMissingError("model 'nothing' is not installed", hint="pip install nothing")

    def __call__(self, batch: int) -> int:
        return batch


def mapped(worker: type, args: tuple, batches: list[int], processes: int | None = 2) -> list:
    return list(LocalExecutor.in_process("test").map_ordered(worker, args, iter(batches), what="test",
                                                             processes=processes))


def test_results_come_in_input_order_from_workers_built_once_per_process() -> None:
    results = mapped(Square, (), list(range(40)))
    assert [r[0] for r in results] == [i * i for i in range(40)]
    pids = {pid for _, pid, _ in results}
    assert len(pids) == 2 and os.getpid() not in pids
    assert {build for _, _, build in results} == {1}  # each child built its one worker, none per batch
    assert mapped(Square, (), list(range(40)), processes=None) == [(i * i, os.getpid(), Square.builds)
                                                                   for i in range(40)]


def test_a_batch_that_kills_its_process_once_is_run_again(tmp_path: Path) -> None:
    marker = tmp_path / "died"
    results = mapped(Square, ((7,), str(marker)), list(range(20)))
    assert marker.exists()
    assert [r[0] for r in results] == [i * i for i in range(20)]


def test_a_batch_that_kills_every_process_is_named() -> None:
    seen = []
    with pytest.raises(BatchLost) as info:
        for result in LocalExecutor.in_process("test").map_ordered(Square, ((5,),), iter(range(20)), what="test",
                                                                   processes=2):
            seen.append(result[0])
    assert info.value.index == 5 and seen == [0, 1, 4, 9, 16]
    assert info.value.tries == "in the pool and again in a fresh process"


def test_a_worker_that_cannot_be_built_fails_with_its_own_error() -> None:
    with pytest.raises(DependencyMissingError, match="model 'nothing' is not installed") as info:
        mapped(Unbuildable, (), [1, 2, 3])
    assert info.value.hint == "pip install nothing" and info.value.exit_code == 7


@pytest.fixture(scope="module")
def sample_n1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict[str, bytes],
                                                                  dict[str, object]]:
    from tests.sample_pipeline import write_sample_pipeline

    folder = tmp_path_factory.mktemp("sample_n1")
    pipeline = write_sample_pipeline(folder)
    run(pipeline, until="extract")
    return pipeline, extract_outs(pipeline), out_bytes(folder), extract_summary(pipeline)


def with_n_process(pipeline: Path, n: int) -> None:
    import yaml

    cfg = yaml.safe_load(pipeline.read_text(encoding="utf-8"))
    cfg["stages"]["extract"].setdefault("params", {})["n_process"] = n
    pipeline.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


def test_n_process_2_writes_the_bytes_of_one_process_with_a_worker_killed_once(
        sample_n1, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every other document (and the one that kills) dropped from the extract cache: the two processes get
    ranges of rows with gaps, the rest comes from the cache, and the bytes are those of one full run."""
    pipeline, outs, data, summary = sample_n1
    folder = pipeline.parent
    monkeypatch.setattr(extract_worker, "RANGE_CHARS", 8_000)  # a dozen ranges over the two processes
    marker = tmp_path / "crashed"
    fault = third_range_document(folder)
    monkeypatch.setenv(extract_worker.FAULT_ENV, f"{fault}@{marker}")
    dropped = forget_cached(pipeline, "rowid % 2 = 0 OR doc_id = ?", fault)
    with_n_process(pipeline, 2)
    run(pipeline, only="extract", force=True)
    assert marker.exists(), "the fault hook never fired: no worker died"
    assert out_bytes(folder) == data
    assert extract_outs(pipeline) == outs
    incremental = extract_summary(pipeline)
    assert (incremental.pop("documents_computed"), incremental.pop("documents_reused")) == \
        (dropped, summary["documents"] - dropped)
    assert incremental == {k: v for k, v in summary.items() if k not in ("documents_computed", "documents_reused")}


def test_a_document_that_kills_every_process_is_named_and_nothing_is_committed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_the_killer_is_named(write_inputs(tmp_path, BAD_DOCS, n_process=2), monkeypatch,
                               "in the pool and again in a fresh process")


def test_ranges_shrink_so_that_a_small_corpus_keeps_every_worker_busy() -> None:
    assert extract_worker.range_docs(100_000, 1) == extract_worker.RANGE_DOCS
    assert extract_worker.range_docs(100_000, 2) == extract_worker.RANGE_DOCS
    assert extract_worker.range_docs(165, 2) == 21  # 8 ranges: 4 per worker
    assert extract_worker.range_docs(3, 4) == 1
    docs = [(f"d{i}", "Max Born lived in Breslau.") for i in range(165)]
    ranges = list(extract_worker.document_ranges(docs, extract_worker.range_docs(len(docs), 2)))
    assert len(ranges) == 8 and [d for r in ranges for d in r.pairs] == docs
    assert [r.first_row for r in ranges] == [1 + 21 * i for i in range(8)]


def test_a_lost_range_whose_documents_all_go_through_alone_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A range lost on a worker that another range killed (on Ray, ranges queued on one actor share its
    deaths) is run document by document; none kills, so those rows stand and the ranges after it go on."""
    docs = [(f"d{i}", text) for i, (_, text) in enumerate(BAD_DOCS * 3)]
    monkeypatch.setattr(extract_worker, "RANGE_DOCS", 3)  # four ranges
    pipeline = write_inputs(tmp_path, docs)
    run(pipeline)
    data, outs, summary = out_bytes(tmp_path), extract_outs(pipeline), extract_summary(pipeline)
    forget_cached(pipeline)  # every document goes to the engine again
    original = LocalExecutor.map_ordered
    calls = []

    def losing(self, worker, worker_args, batches, *, what, processes=None):  # type: ignore[no-untyped-def]
        calls.append(what)
        if len(calls) > 1:
            yield from original(self, worker, worker_args, batches, what=what, processes=processes)
            return
        batches = iter(batches)
        first, _ = next(batches), next(batches)  # two ranges handed out: the first comes back, the second is lost
        yield from original(self, worker, worker_args, [first], what=what, processes=processes)
        raise BatchLost("extract", "lost", index=1, tries="twice")

    monkeypatch.setattr(LocalExecutor, "map_ordered", losing)
    with caplog.at_level("WARNING"):
        run(pipeline, force=True)
    assert len(calls) == 3  # the map, the lost range alone, the map again from the range after it
    assert "documents.parquet rows 4-6: the worker process died twice, but each document went through alone" \
        in caplog.text
    assert out_bytes(tmp_path) == data and extract_outs(pipeline) == outs and extract_summary(pipeline) == summary
