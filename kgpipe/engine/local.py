"""The local engine: everything in this process, as kgpipe always ran."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from kgpipe.engine.base import B, Executor, R, Worker

T = TypeVar("T")


class LocalExecutor(Executor):
    name = "local"

    def call(self, fn: Callable[..., T], *args: Any, what: str) -> T:
        return fn(*args)

    def map_tasks(self, fn: Callable[..., R], items: Iterable[Any], *, shared: tuple[Any, ...] = (),
                  what: str) -> Iterator[R]:
        for item in items:
            yield fn(*shared, item)

    def map_ordered(self, worker: type[Worker[B, R]], worker_args: tuple[Any, ...], batches: Iterable[B], *,
                    what: str) -> Iterator[R]:
        built = worker(*worker_args)
        for batch in batches:
            yield built(batch)
