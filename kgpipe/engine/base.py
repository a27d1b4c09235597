"""What an engine offers a stage: run the stage, run one function where the engine puts work, and map a
stateful worker over batches with results in input order. Steps never know which engine runs them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from kgpipe.engine.config import ExecutorConfig
from kgpipe.errors import StageError

T = TypeVar("T")
B = TypeVar("B")
R = TypeVar("R")
B_in = TypeVar("B_in", contravariant=True)
R_out = TypeVar("R_out", covariant=True)
V_co = TypeVar("V_co", covariant=True)


class Worker(Protocol[B_in, R_out]):
    """A stateful worker built once per process (e.g. a spaCy pipeline loaded once) and called per batch.
    Built from a picklable factory: a class plus its constructor arguments, never a loaded model."""

    def __call__(self, batch: B_in) -> R_out: ...


class Hosted:
    """Hosts a Worker in an engine's process (a Ray actor, a local worker process): built once there, called per
    batch. A worker that cannot be built (a model missing on the node) fails each call with its own error, rather
    than as a dead process, which would be restarted and then read as a batch that kills its workers."""

    def __init__(self, worker: type, args: tuple[Any, ...]) -> None:
        self.error: Exception | None = None
        try:
            self.worker = worker(*args)
        except Exception as exc:
            self.error = exc

    def run(self, batch: Any) -> Any:
        if self.error is not None:
            raise self.error
        return self.worker(batch)


@dataclass(frozen=True)
class Shared(Generic[V_co]):
    """A value placed once where an engine's tasks read it (Executor.share), passed in map_tasks' `shared`: the
    value itself on the local engine, a reference to the stored copy on a distributed one (the caller may then
    drop its own copy, and several mapped steps send it once, not once each)."""

    held: Any


class BatchLost(StageError):
    """The worker running batch `index` (its position in map_ordered's batches) died, and so did every retry:
    the caller knows what the batch held and can say which item killed it. `tries` says how it was tried, for
    the caller's own message ("on each of 4 tries (max_task_retries 3)")."""

    def __init__(self, stage: str, message: str, *, index: int, tries: str, hint: str | None = None) -> None:
        super().__init__(stage, message, hint=hint)
        self.index = index
        self.tries = tries


class Executor(ABC):
    """An engine bound to one stage's executor config."""

    name: ClassVar[str]

    def __init__(self, config: ExecutorConfig, stage: str) -> None:
        self.config = config
        self.stage = stage

    @property
    def distributed(self) -> bool:
        return False

    def parallelism(self) -> int:
        """Workers that map_tasks and map_ordered run at once (without `processes`): 1 in this process."""
        return 1

    def with_overrides(self, **overrides: Any) -> Executor:
        """The same engine for the same stage with some config keys changed (e.g. no retries)."""
        return type(self)(self.config.with_overrides(overrides), self.stage)

    @abstractmethod
    def call(self, fn: Callable[..., T], *args: Any, what: str) -> T:
        """fn(*args) where the engine runs single-process work, with the stage's resources; `what` names it in
        errors."""

    def share(self, value: T) -> Shared[T]:
        """`value` as map_tasks' shared arguments read it; in this process, the value itself."""
        return Shared(value)

    @staticmethod
    def _local(shared: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(s.held if isinstance(s, Shared) else s for s in shared)

    @abstractmethod
    def map_tasks(self, fn: Callable[..., R], items: Iterable[Any], *, shared: tuple[Any, ...] = (),
                  what: str) -> Iterator[R]:
        """fn(*shared, item) for each item, as stateless tasks; `shared` (a feature table, corpus statistics) is
        sent to the workers once, not with every item (a Shared from `share` is not sent again); results in the
        order of `items`."""

    @abstractmethod
    def components(self, n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Connected components of nodes 0..n-1 under the edges (left[i], right[i]): per node, the smallest node
        id of its component. The one step with an implementation per engine (scipy here; a distributed
        algorithm on Ray, kgpipe.kg.components), tested to agree."""

    @abstractmethod
    def map_ordered(self, worker: type[Worker[B, R]], worker_args: tuple[Any, ...], batches: Iterable[B], *,
                    what: str, processes: int | None = None) -> Iterator[R]:
        """worker(*worker_args) built once per process, called on each batch; results in the order of `batches`.
        `processes`: on the local engine, that many child processes (None: this process); a distributed engine
        sizes its pool from its config (`workers`) and ignores it. When a worker process dies and the engine's
        retries run out, BatchLost names the batch."""

