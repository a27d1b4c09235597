"""The local engine's worker processes: a stateful Worker built once in each of N child processes and mapped over
batches, results in input order. The extract stage's `n_process` runs here, so each process extracts whole
document ranges (as a Ray actor does) rather than only parsing them for this process to finish.

A batch whose process dies (a native crash in a model) is run again alone in a fresh single-process pool; if
that process dies too, the batch is lost (BatchLost names its index), else its result stands and the map goes on
with a fresh pool. So every batch is tried at most twice, and a crash never loops."""

from __future__ import annotations

import collections
import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from kgpipe.engine.base import BatchLost, Hosted

_hosted: Hosted | None = None  # this child process's worker, built by _build


def _build(worker: type, args: tuple[Any, ...]) -> None:
    global _hosted
    _hosted = Hosted(worker, args)


def _run(batch: Any) -> Any:
    assert _hosted is not None  # the pool's initializer built it
    return _hosted.run(batch)


def _context() -> Any:
    """fork where the platform has it: a child starts at once, with the modules (and a model loaded earlier)
    this process already holds, and without importing the caller's __main__ again, which a script or notebook
    that calls kgpipe.run at top level would not survive; else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class ProcessMap:
    """map_ordered over `processes` child processes, at most 2 x processes batches in flight."""

    def __init__(self, worker: type, worker_args: tuple[Any, ...], processes: int, *, stage: str, what: str) -> None:
        self.worker = worker
        self.worker_args = worker_args
        self.processes = processes
        self.stage = stage
        self.what = what

    def _pool(self, processes: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=processes, mp_context=_context(), initializer=_build,
                                   initargs=(self.worker, self.worker_args))

    def __call__(self, batches: Iterable[Any]) -> Iterator[Any]:
        pending: collections.deque[tuple[int, Any, Future]] = collections.deque()
        pool = self._pool(self.processes)
        try:
            for index, batch in enumerate(batches):
                pending.append((index, batch, pool.submit(_run, batch)))
                while len(pending) >= 2 * self.processes or (pending and pending[0][2].done()):
                    result, pool = self._next(pending, pool)
                    yield result
            while pending:
                result, pool = self._next(pending, pool)
                yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _next(self, pending: collections.deque, pool: ProcessPoolExecutor) -> tuple[Any, ProcessPoolExecutor]:
        """The first pending batch's result, and the pool to go on with (a fresh one when a process died: the
        batches in flight are submitted to it again, each after the one that failed has been run alone)."""
        index, batch, future = pending[0]
        try:
            result = future.result()
        except BrokenProcessPool:
            pool.shutdown(wait=True, cancel_futures=True)
            result = self._alone(index, batch)
            pool = self._pool(self.processes)
            for i, (at, held, _) in enumerate(pending):
                if i:
                    pending[i] = (at, held, pool.submit(_run, held))
        pending.popleft()
        return result, pool

    def _alone(self, index: int, batch: Any) -> Any:
        single = self._pool(1)
        try:
            return single.submit(_run, batch).result()
        except BrokenProcessPool:
            raise BatchLost(self.stage, f"{self.what}: a worker process died on this batch, in the pool and again in "
                            "a fresh process", index=index, tries="in the pool and again in a fresh process",
                            hint="a native library crashed (or the process ran out of memory); earlier artifacts "
                            "and the lock file are untouched") from None
        finally:
            single.shutdown(wait=True, cancel_futures=True)
