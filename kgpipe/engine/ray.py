"""The Ray engine: the driver (this process, on a cluster node) connects once per run; a stage's work runs as
Ray tasks and actors with its declared resources and finite retries. Ray is optional (`pip install kgpipe[ray]`)."""

from __future__ import annotations

import collections
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from kgpipe.engine.base import B, BatchLost, Executor, Hosted, R, Shared, Worker
from kgpipe.engine.config import ExecutorConfig
from kgpipe.errors import DependencyMissingError, KgpipeError, PipelineError, StageError

log = logging.getLogger(__name__)
T = TypeVar("T")
PIP_RAY = "pip install 'kgpipe[ray]'  (Ray core and Ray Data, on the driver and every node)"


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise DependencyMissingError(f"executor engine 'ray' needs the ray package, which is not installed ({exc})",
                                     hint=f"{PIP_RAY}, or use engine: local") from None
    return ray


def _answer_within(seconds: float, fn: Callable[[], T], what: str, hint: str) -> T:
    """fn() in a thread, given up after `seconds`: Ray's own calls wait forever on a cluster that does not answer."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"kgpipe-{what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise DependencyMissingError(f"the Ray cluster did not answer within {seconds:g} s ({what})", hint=hint)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _reachable(address: str, seconds: float) -> str | None:
    """Why host:port cannot be reached, or None: a plain TCP connect, so a wrong address fails in seconds."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"'{address}' is not host:port"
    try:
        with socket.create_connection((host, int(port)), timeout=seconds):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


class RaySession:
    """This process's connection to a Ray cluster, shared by every stage of a run; closed by the run that
    opened it (a connection made by the caller, e.g. a notebook or a test, is left open)."""

    _current: RaySession | None = None

    def __init__(self, address: str, opened: bool) -> None:
        self.address = address
        self.opened = opened

    @classmethod
    def connect(cls, config: ExecutorConfig, where: Callable[[str], tuple[Path, int | None]]) -> RaySession:
        """Connect (or reuse this process's connection). `where(key)` gives the pipeline file and line of an
        executor key, for messages."""
        ray = import_ray()
        address = config.address
        file, line = where("address")
        if address.startswith("ray://"):
            raise PipelineError(f"executor.address '{address}' is a Ray Client address, which kgpipe does not use",
                                file=file, line=line, hint="run the driver on a cluster node: `ray job submit -- "
                                "kgpipe run --engine ray --address auto` (artifacts are written where it runs)")
        hint = ("start a cluster (`ray start --head` on one node, `ray start --address HEAD:6379` on the others), "
                "give its head's host:port, or use address: local")
        if address not in ("auto", "local"):
            why = _reachable(address, config.timeout_s)
            if why is not None:
                raise DependencyMissingError(f"{file}:{line}: executor.address {address}: no Ray cluster "
                                             f"answers there ({why})", hint=hint)
        if ray.is_initialized():
            # this run's earlier stage, or the caller (a notebook, a test) connected: one process has one Ray
            # connection, so reuse it (leaving a caller's open) unless the file names another cluster
            connected = ray.get_runtime_context().gcs_address
            if address not in ("auto", "local", connected):
                raise PipelineError(f"executor.address {address}: this process is already connected to the Ray "
                                    f"cluster at {connected}", file=file, line=line,
                                    hint="one process uses one cluster: give that address, or auto")
            if cls._current is None:
                cls._current = RaySession(connected, opened=False)
            return cls._current
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.WARNING, "configure_logging": False, "address": address}
        if address == "local":  # a new Ray instance for this run, never another run's (Ray's own "local")
            kwargs.update(num_cpus=config.num_cpus, _temp_dir=config.temp_dir,
                          object_store_memory=int(config.object_store_memory) if config.object_store_memory else None)
        try:  # in this (main) thread: Ray installs its signal handlers here; host:port was probed above
            ray.init(**kwargs)
        except ConnectionError as exc:
            raise DependencyMissingError(f"{file}:{line}: executor.address {address}: cannot connect to a Ray "
                                         f"cluster ({exc})", hint=hint) from None
        cls._current = RaySession(ray.get_runtime_context().gcs_address, opened=True)
        return cls._current

    @classmethod
    def close(cls) -> None:
        session, cls._current = cls._current, None
        if session is not None and session.opened:
            import ray

            ray.shutdown()


def _split_resources(resources: dict[str, float]) -> dict[str, Any]:
    """Ray takes CPU and GPU as num_cpus/num_gpus and everything else under resources."""
    rest = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
    options: dict[str, Any] = {"num_cpus": resources.get("CPU", 1)}
    if "GPU" in resources:
        options["num_gpus"] = resources["GPU"]
    if rest:
        options["resources"] = rest
    return options


def check_resources(config: ExecutorConfig, where: Callable[[str], tuple[Path, int | None]], stage: str) -> None:
    """Some alive node must hold everything one task of the stage asks for; Ray itself would wait forever."""
    ray = import_ray()
    wanted = {"CPU": 1.0, **config.resources}
    nodes = _answer_within(config.timeout_s, ray.nodes, "resource query",
                           hint="check the cluster (`ray status`), or raise executor.timeout_s")
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    if any(all(node.get(k, 0.0) >= v for k, v in wanted.items()) for node in alive):
        return
    totals: dict[str, float] = {}
    for node in alive:
        for k, v in node.items():
            if not k.startswith("node:"):
                totals[k] = totals.get(k, 0.0) + v
    missing = sorted(k for k, v in wanted.items() if not any(node.get(k, 0.0) >= v for node in alive))
    key = missing[0] if missing else "resources"
    file, line = where(f"resources.{key}" if key in config.resources else "resources")
    have = ", ".join(f"{k} {v:g}" for k, v in sorted(totals.items()) if k in ("CPU", "GPU") or k in wanted)
    raise DependencyMissingError(
        f"{file}:{line}: stage '{stage}': executor.resources asks for "
        + ", ".join(f"{k}: {wanted[k]:g}" for k in missing)
        + f", which no node of the Ray cluster has (the cluster: {have or 'nothing of that'})",
        hint="add a node that has it (`ray start --resources ...` / --num-gpus), or change the stage's "
        "executor.resources")


def _unwrap(exc: BaseException) -> BaseException:
    """The error a task raised, without Ray's wrapper, so a KgpipeError keeps its class and exit code."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, config: ExecutorConfig, stage: str) -> None:
        super().__init__(config, stage)
        self.options = _split_resources(config.resources)

    @property
    def distributed(self) -> bool:
        return True

    def _get(self, refs: Any, what: str, index: int | None = None) -> Any:
        ray = import_ray()
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            cause = _unwrap(exc)
            if isinstance(cause, KgpipeError):
                raise cause from None
            raise StageError(self.stage, f"{what}: {type(cause).__name__}: {cause}") from exc
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError) as exc:
            message = (f"{what}: a Ray worker died and the retries ran out (max_restarts "
                       f"{self.config.max_restarts}, max_task_retries {self.config.max_task_retries}): "
                       f"{type(exc).__name__}")
            hint = ("see the worker's log under Ray's session folder (`ray logs`); earlier artifacts and the lock "
                    "file are untouched")
            if index is not None:
                raise BatchLost(self.stage, message, index=index, hint=hint,
                                tries=f"on each of {1 + self.config.max_task_retries} tries (max_task_retries "
                                      f"{self.config.max_task_retries})") from None
            raise StageError(self.stage, message, hint=hint) from None

    def call(self, fn: Callable[..., T], *args: Any, what: str) -> T:
        ray = import_ray()
        remote = ray.remote(max_retries=self.config.max_task_retries, **self.options)(fn)
        return self._get(remote.remote(*args), what)

    def parallelism(self) -> int:
        """`workers`, else as many as the cluster's CPUs hold."""
        ray = import_ray()
        return self.config.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // self.options["num_cpus"]))

    def _in_flight(self) -> int:
        """Tasks or batches submitted ahead of the one the driver waits for: enough to keep every worker busy,
        few enough that the driver never holds the whole input's results."""
        return 2 * self.parallelism()

    def share(self, value: T) -> Shared[T]:
        """`value` put in the object store once: map_tasks calls that share it pass the reference."""
        return Shared(import_ray().put(value))

    def map_tasks(self, fn: Callable[..., R], items: Iterable[Any], *, shared: tuple[Any, ...] = (),
                  what: str) -> Iterator[R]:
        ray = import_ray()
        remote = ray.remote(max_retries=self.config.max_task_retries, **self.options)(fn)
        # once, in the object store (a Shared is there already); tasks read it from there
        refs = [value.held if isinstance(value, Shared) else ray.put(value) for value in shared]
        limit = self._in_flight()
        pending: collections.deque = collections.deque()
        for item in items:
            pending.append(remote.remote(*refs, item))
            if len(pending) >= limit:
                yield self._get(pending.popleft(), what)
        while pending:
            yield self._get(pending.popleft(), what)

    def components(self, n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Large-star/small-star over a Ray Dataset of the edges (kgpipe.kg.components): only one label per
        node comes back to the driver, never the edges of a round."""
        from kgpipe.kg.components import RayComponentsStats, components_ray, labels_from_dataset

        ray = import_ray()
        if len(left) == 0:
            return np.arange(n, dtype=np.int64)
        import pyarrow as pa

        table = pa.table({"u": np.asarray(left, dtype=np.int64), "v": np.asarray(right, dtype=np.int64)})
        blocks = max(1, int(ray.cluster_resources().get("CPU", 1)))  # one input block per CPU, at least
        step = -(-table.num_rows // blocks)
        edges = ray.data.from_arrow([table.slice(i, step) for i in range(0, table.num_rows, step)])
        self.components_stats = RayComponentsStats()
        return labels_from_dataset(components_ray(edges, stats=self.components_stats, stage=self.stage), n)

    def map_ordered(self, worker: type[Worker[B, R]], worker_args: tuple[Any, ...], batches: Iterable[B], *,
                    what: str, processes: int | None = None) -> Iterator[R]:
        ray = import_ray()
        size = self.parallelism()
        actor_class = ray.remote(max_restarts=self.config.max_restarts,
                                 max_task_retries=self.config.max_task_retries, **self.options)(Hosted)
        actors = [actor_class.remote(worker, worker_args) for _ in range(size)]
        pending: collections.deque = collections.deque()
        try:
            for index, batch in enumerate(batches):
                pending.append((index, actors[index % size].run.remote(batch)))
                if len(pending) >= 2 * size:  # see _in_flight
                    at, ref = pending.popleft()
                    yield self._get(ref, what, at)
            while pending:
                at, ref = pending.popleft()
                yield self._get(ref, what, at)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
