"""The local engine: everything in this process, as kgpipe always ran."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

from kgpipe.engine.base import B, Executor, R, Worker

T = TypeVar("T")


class LocalExecutor(Executor):
    name = "local"

    @classmethod
    def in_process(cls, stage: str = "?") -> LocalExecutor:
        """The default engine, for code called without one (a StageContext built by hand, the resolution
        drivers called from benchmarks, notebooks and tests)."""
        from kgpipe.engine.config import ExecutorConfig

        return cls(ExecutorConfig(), stage)

    def call(self, fn: Callable[..., T], *args: Any, what: str) -> T:
        return fn(*args)

    def map_tasks(self, fn: Callable[..., R], items: Iterable[Any], *, shared: tuple[Any, ...] = (),
                  what: str) -> Iterator[R]:
        args = self._local(shared)
        for item in items:
            yield fn(*args, item)

    def components(self, n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        from kgpipe.kg.components import components_local

        return components_local(n, left, right)

    def map_ordered(self, worker: type[Worker[B, R]], worker_args: tuple[Any, ...], batches: Iterable[B], *,
                    what: str, processes: int | None = None) -> Iterator[R]:
        if processes is not None:
            from kgpipe.engine.pool import ProcessMap

            yield from ProcessMap(worker, worker_args, processes, stage=self.stage, what=what)(batches)
            return
        built = worker(*worker_args)
        for batch in batches:
            yield built(batch)
