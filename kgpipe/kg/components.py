"""Connected components labelled by their smallest node id, on two engines: scipy in-process (local), and
iterated large-star / small-star over Ray Datasets (Kiveris et al., SoCC 2014) where no process holds every edge."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from kgpipe.errors import DependencyMissingError, StageError

if TYPE_CHECKING:  # Ray is an optional extra; kgpipe imports without it
    import ray.data

log = logging.getLogger(__name__)

# Fibonacci hashing: node ids are often contiguous or share a stride, so `id % partitions` alone could put
# a whole id range in one partition; multiplying by 2^64/phi spreads them.
_HASH = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.zeros(0, dtype=np.int64)

Batch = dict[str, np.ndarray]  # a Ray Data batch in "numpy" format: column name -> array


def components_local(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component label per node 0..n-1: the smallest node id of its component (int64; isolated nodes and
    nodes with only self-loops label themselves). Edges are undirected; duplicates are harmless."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    if left.shape != right.shape:
        raise ValueError(f"components_local: {len(left)} left ends but {len(right)} right ends")
    if n == 0:
        return _EMPTY.copy()
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, raw = connected_components(graph, directed=False)
    smallest = np.full(raw.max(initial=0) + 1, n, dtype=np.int64)
    np.minimum.at(smallest, raw, np.arange(n, dtype=np.int64))
    return smallest[raw]


# ---- the reducers: pure numpy over a batch that holds *every* edge of the nodes it keys on ----
#
# Both engines label a node by the minimum id of its component, so labels do not depend on the engine, on
# partitioning or on edge order. This is the one fuse step with two implementations (issue 16): union-find
# and BFS need the whole graph in one process, which is what the Ray engine exists to avoid.
#
# The distributed algorithm keeps an edge set with the input's components and rewrites it until it is a set
# of stars centred on each component's minimum:
# - large-star: every node u links each neighbour v > u to m(u), the smallest of u and its neighbours;
# - small-star: every node u links itself and each neighbour v < u to the smallest of those neighbours.
# Each is a reducer over the edges of one node; on Ray one call handles a hash partition of nodes with numpy
# (one Python call per partition, not per node). A step that changes no edge returns its input; once a
# large-star and a small-star in a row change nothing, no node has both smaller and larger neighbours and
# none has two smaller ones: the edges are stars around the minima. Alternating the two converges in
# O(log^2 n) rounds (the paper's bound; about log n in practice); a long chain, label propagation's worst
# case (n rounds), takes about log n.

def _sorted_unique_pairs(key: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs sorted by (key, other) with duplicates removed."""
    order = np.lexsort((other, key))
    key, other = key[order], other[order]
    keep = np.ones(len(key), dtype=bool)
    keep[1:] = (key[1:] != key[:-1]) | (other[1:] != other[:-1])
    return key[keep], other[keep]


def _group_starts(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a sorted key: the start index of each run and, per row, the index of its run."""
    new = np.ones(len(key), dtype=bool)
    new[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(new)
    return starts, np.cumsum(new) - 1


def large_star(key: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Large-star over directed rows key -> other, where every undirected edge is present in both directions.

    Returns edges (child, parent) with parent < child, and per edge whether it differs from the input edge
    it replaces (parent != key). Self-loops are dropped (the final labelling adds every node back).
    """
    key, other = _sorted_unique_pairs(key, other)
    starts, run = _group_starts(key)
    if len(key) == 0:
        return _EMPTY, _EMPTY, np.zeros(0, dtype=np.int8)
    smallest = np.minimum(np.minimum.reduceat(other, starts), key[starts])[run]
    up = other > key
    parent = smallest[up]
    return other[up], parent, (parent != key[up]).astype(np.int8)


def small_star(child: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small-star over edges (child, parent) with parent < child, holding every edge of each child.

    Each child u with smaller neighbours N links u and every v in N to min(N). Returns edges (child, parent)
    with parent < child, and per edge whether it is new (v != u: the edge (u, min N) was already there).
    """
    child, parent = _sorted_unique_pairs(child, parent)
    if len(child) == 0:
        return _EMPTY, _EMPTY, np.zeros(0, dtype=np.int8)
    starts, run = _group_starts(child)
    smallest = parent[starts][run]  # rows are sorted by parent within a child: its first is min(N)
    moved = parent != smallest      # v in N other than min(N): relinked to min(N)
    out_child = np.concatenate([child[starts], parent[moved]])
    out_parent = np.concatenate([parent[starts], smallest[moved]])
    changed = np.concatenate([np.zeros(len(starts), dtype=np.int8), np.ones(int(moved.sum()), dtype=np.int8)])
    return out_child, out_parent, changed


# ---- Ray: the same reducers, one call per hash partition of nodes ----

def _partition_of(ids: np.ndarray, partitions: int) -> np.ndarray:
    return ((ids.astype(np.int64).view(np.uint64) * _HASH) >> np.uint64(32)) % np.uint64(partitions)


def _both_directions(batch: Batch, partitions: int) -> Batch:
    u, v = batch["u"].astype(np.int64), batch["v"].astype(np.int64)
    key, other = np.concatenate([u, v]), np.concatenate([v, u])
    return {"key": key, "other": other, "part": _partition_of(key, partitions)}


def _by_child(batch: Batch, partitions: int) -> Batch:
    u, v = batch["u"], batch["v"]
    return {"key": u, "other": v, "part": _partition_of(u, partitions)}


def _large_star_group(batch: Batch) -> Batch:
    child, parent, changed = large_star(batch["key"], batch["other"])
    return {"u": child, "v": parent, "changed": changed}


def _small_star_group(batch: Batch) -> Batch:
    child, parent, changed = small_star(batch["key"], batch["other"])
    return {"u": child, "v": parent, "changed": changed}


def _endpoint_labels(batch: Batch, partitions: int) -> Batch:
    # every node of the input proposes itself, so nodes with only self-loops get a label too
    node = np.concatenate([batch["u"], batch["v"]]).astype(np.int64)
    return {"node": node, "label": node, "part": _partition_of(node, partitions)}


def _star_labels(batch: Batch, partitions: int) -> Batch:
    # a converged edge (child, centre) proposes the centre, which is smaller than the child's own id
    return {"node": batch["u"], "label": batch["v"], "part": _partition_of(batch["u"], partitions)}


def _min_label_group(batch: Batch) -> Batch:
    node, label = _sorted_unique_pairs(batch["node"], batch["label"])
    starts, _ = _group_starts(node)
    return {"node": node[starts], "label": label[starts]}


@dataclass
class RayComponentsStats:
    """What a components_ray call did, for the stage summary's timings (never for artifacts)."""

    edges: int = 0
    partitions: int = 0
    rounds: int = 0                                        # large-star + small-star pairs started
    changed: list[int] = field(default_factory=list)        # edges changed by each step, in order
    seconds: float = 0.0


def _require_ray_data() -> None:
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise DependencyMissingError(
            "connected components on the Ray engine need Ray Data, which is not installed",
            hint="pip install 'kgpipe[ray]' (or use engine: local)") from exc


def _rooted_for_sort_shuffle(edges: ray.data.Dataset) -> ray.data.Dataset:
    """The edges as a materialised Dataset whose own DataContext uses Ray Data's task-based sort shuffle.

    Why: the default hash shuffle (SHUFFLE_V2) starts aggregator actors for every groupby and aggregate,
    about 10 s each on the two-node test cluster, against about 0.15 s for the sort shuffle's tasks; this
    algorithm runs two dozen shuffles. A Dataset seals a copy of the current DataContext when it is created
    and its descendants share that copy, so the setting is made for this root only and the caller's context
    is restored at once. The blocks move as object references; the driver does not read them.
    """
    import ray.data
    from ray.data.context import ShuffleStrategy

    refs = edges.to_arrow_refs()
    context = ray.data.DataContext.get_current()
    saved = context.shuffle_strategy
    context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    try:
        return ray.data.from_arrow_refs(refs)
    finally:
        context.shuffle_strategy = saved


def components_ray(edges: ray.data.Dataset, *, partitions: int | None = None, max_rounds: int | None = None,
                   stats: RayComponentsStats | None = None, stage: str = "fuse") -> ray.data.Dataset:
    """Connected components of an undirected edge Dataset (int64 columns `u`, `v`) on the connected Ray
    cluster: a materialised Dataset of (`node`, `label`) rows, one per node that appears in an edge, label =
    the smallest node id of its component. Self-loops and duplicate edges are allowed.

    The driver only reads scalars (row counts and per-step sums of changed edges); every edge stays in the
    object store. partitions: hash partitions of nodes per step (default: enough for ~250k edges each, at
    least twice the cluster's CPUs); all edges of one node, a star centre's included, meet in one task.
    max_rounds: a safety cap (default 2*ceil(log2(edges+2))^2 + 8, above the paper's O(log^2 n) bound); a
    run that exceeds it raises StageError rather than looping on a bug. stats, when given, is filled in.
    """
    _require_ray_data()
    import ray
    import ray.data

    started = time.perf_counter()
    stats = stats if stats is not None else RayComponentsStats()
    names = set(edges.schema().names) if edges.schema() is not None else set()
    if not {"u", "v"} <= names:
        raise StageError(stage, f"connected components: the edge Dataset has columns {sorted(names)}, "
                                "not `u` and `v`", hint="pass accepted pairs as int64 columns u, v")
    root = _rooted_for_sort_shuffle(edges.select_columns(["u", "v"]))
    n_edges = root.count()
    stats.edges = n_edges
    if n_edges == 0:
        import pyarrow as pa

        empty = pa.table({"node": pa.array([], pa.int64()), "label": pa.array([], pa.int64())})
        stats.seconds = time.perf_counter() - started
        return ray.data.from_arrow(empty).materialize()

    if partitions is None:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        partitions = max(2 * cpus, math.ceil(n_edges / 250_000))
    stats.partitions = partitions
    if max_rounds is None:
        max_rounds = 2 * math.ceil(math.log2(n_edges + 2)) ** 2 + 8

    def step(ds: ray.data.Dataset, keyed: Callable[..., Batch],
             reducer: Callable[[Batch], Batch]) -> tuple[ray.data.Dataset, int]:
        out = (ds.map_batches(partial(keyed, partitions=partitions), batch_format="numpy")
               .groupby("part", num_partitions=partitions)
               .map_groups(reducer, batch_format="numpy")
               .materialize())
        changed = int(out.sum("changed") or 0) if out.count() else 0
        stats.changed.append(changed)
        return out, changed

    current = root
    quiet = 0  # consecutive steps that changed nothing
    while quiet < 2:
        if stats.rounds == max_rounds:
            raise StageError(stage, f"connected components did not converge in {max_rounds} rounds of "
                                    f"large-star/small-star over {n_edges} edges (changed per step: "
                                    f"{stats.changed[-6:]})",
                             hint="this is a bug in kgpipe: report it with the pipeline and the edge count")
        stats.rounds += 1
        for keyed, reducer in ((_both_directions, _large_star_group), (_by_child, _small_star_group)):
            current, changed = step(current, keyed, reducer)
            quiet = quiet + 1 if changed == 0 else 0
            log.debug("components round %d: %d edges, %d changed", stats.rounds, current.count(), changed)
            if quiet == 2:
                break

    candidates = root.map_batches(
        partial(_endpoint_labels, partitions=partitions), batch_format="numpy")
    stars = current.map_batches(partial(_star_labels, partitions=partitions), batch_format="numpy")
    labels = (candidates.union(stars)
              .groupby("part", num_partitions=partitions)
              .map_groups(_min_label_group, batch_format="numpy")
              .materialize())
    stats.seconds = time.perf_counter() - started
    log.info("connected components on Ray: %d edges, %d rounds, %.1f s", n_edges, stats.rounds, stats.seconds)
    return labels


def labels_from_dataset(ds: ray.data.Dataset, n: int) -> np.ndarray:
    """components_ray's (node, label) rows as components_local's array over nodes 0..n-1 (nodes in no edge
    label themselves). This collects on the driver, which is fine: it holds one row per node, not per edge."""
    labels = np.arange(n, dtype=np.int64)
    for batch in ds.iter_batches(batch_format="numpy", batch_size=1 << 20):
        node = np.asarray(batch["node"], dtype=np.int64)
        if len(node) and (node.min() < 0 or node.max() >= n):
            bad = node[(node < 0) | (node >= n)][0]
            raise ValueError(f"labels_from_dataset: node {bad} lies outside 0..{n - 1}")
        labels[node] = batch["label"]
    return labels
