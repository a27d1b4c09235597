"""Entity resolution, the public entry point: records (a name, optional type, attributes, context, anchor
and source) in, clusters of records that denote one entity out. The fuse stage, the record-linkage
benchmarks and the scale benchmark all call `resolve`.

>>> from kgpipe.kg.resolve import Record, resolve
>>> result = resolve([Record("1", "MIT"), Record("2", "Massachusetts Institute of Technology"),
...                   Record("3", "M.I.T."), Record("4", "Harvard University")])
>>> sorted(sorted(c) for c in result.clusters)
[['1', '2', '3'], ['4']]

Records with the same normalised name, type, anchor and attributes form one node (their contexts pooled):
identical names of one type are never told apart by context alone; anchors (e.g. a seed entity chosen by
the linker) do that. Nodes are ordered by content, not by input order, so reruns and added records do not
reorder the decisions about untouched ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kgpipe.kg.blocking import block_names
from kgpipe.kg.cluster import cluster_nodes, one_to_one
from kgpipe.kg.codes import find_sorted
from kgpipe.kg.normalize import acronyms_used, is_acronym_like, normalize_name
from kgpipe.kg.similarity import NodeTable, ResolutionConfig, featurize_names

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int | None], None]


def _peak_mb() -> float:
    """Peak resident memory of this process so far (MB), for the per-step report."""
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (ImportError, OSError):  # not on every platform
        return float("nan")


@dataclass(frozen=True)
class Record:
    """One thing to resolve: a mention, a seed label, a bibliographic record, an affiliation string."""

    id: str
    name: str
    source: str = ""
    type: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    context: frozenset[str] = frozenset()   # e.g. normalised names of entities it co-occurs with
    anchor: str | None = None               # same anchor: same entity; different anchors: different


@dataclass
class Resolution:
    """Clusters of records, the nodes they were reduced to and the accepted pairs, with counts."""

    record_ids: list[str]
    labels: np.ndarray              # cluster number per record (0.. in order of first record)
    node_of: np.ndarray             # node per record
    node_names: list[str]           # normalised name per node
    accepted: tuple[np.ndarray, np.ndarray, np.ndarray]  # node pairs accepted, with their scores
    stats: dict[str, Any]
    name_of_node: np.ndarray | None = None       # unique-name index per node
    candidate_names: np.ndarray | None = None    # (m, 2) name pairs proposed by blocking

    @property
    def clusters(self) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in range(int(self.labels.max(initial=-1)) + 1)]
        for record_id, label in zip(self.record_ids, self.labels.tolist(), strict=True):
            out[label].append(record_id)
        return out

    def cluster_of(self) -> dict[str, int]:
        return dict(zip(self.record_ids, self.labels.tolist(), strict=True))


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, float) and value != value:
        return None
    return value


def _node_pairs(name_pairs: np.ndarray, nodes_of_name: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Expand name pairs to node pairs, and add pairs of nodes that share a name."""
    single = np.array([len(ns) == 1 for ns in nodes_of_name], dtype=bool)
    first = np.array([ns[0] for ns in nodes_of_name], dtype=np.int64)
    u, v = name_pairs[:, 0], name_pairs[:, 1]
    simple = single[u] & single[v]
    left = [first[u[simple]]]
    right = [first[v[simple]]]
    extra_l: list[int] = []
    extra_r: list[int] = []
    for a, b in zip(u[~simple].tolist(), v[~simple].tolist(), strict=True):
        for x in nodes_of_name[a]:
            for y in nodes_of_name[b]:
                extra_l.append(x)
                extra_r.append(y)
    for name_nodes in nodes_of_name:
        for i, x in enumerate(name_nodes):
            for y in name_nodes[i + 1:]:
                extra_l.append(x)
                extra_r.append(y)
    left.append(np.asarray(extra_l, dtype=np.int64))
    right.append(np.asarray(extra_r, dtype=np.int64))
    return np.concatenate(left), np.concatenate(right)


def resolve(records: Iterable[Record], config: ResolutionConfig | None = None, *,
            one_to_one_sources: tuple[str, str] | None = None, type_parents: Mapping[str, str] | None = None,
            progress: Progress | None = None) -> Resolution:
    """Cluster records that denote the same entity.

    config: signals, weights, threshold, blocking (defaults in ResolutionConfig). one_to_one_sources:
    record linkage between two sources, every record from one of them: each record is matched to at most
    one record of the other source and never to a record of its own. type_parents: the type hierarchy for
    type compatibility (default: kgpipe.vocab's).
    """
    config = config or ResolutionConfig()
    records = list(records)
    timings: dict[str, float] = {}
    peaks: dict[str, float] = {}
    started = time.perf_counter()
    options = config.normalize.options()
    if one_to_one_sources is not None:
        strays = {r.source for r in records} - set(one_to_one_sources)
        if strays:
            raise ValueError(f"one-to-one linkage between {one_to_one_sources}: records from other sources "
                             f"{sorted(strays)[:3]}")

    # --- nodes: records that no signal can tell apart --------------------------------------------------
    attr_names = sorted(config.attributes)
    key_cache: dict[str, str] = {}  # the same spelling recurs: normalise it once
    keys = [key_cache[r.name] if r.name in key_cache else key_cache.setdefault(r.name, normalize_name(r.name, options))
            for r in records]
    del key_cache
    node_key_of: list[tuple[str, ...]] = []
    for record, key in zip(records, keys, strict=True):
        attrs = repr(tuple(_freeze(record.attributes.get(a)) for a in attr_names)) if attr_names else ""
        node_key: tuple[str, ...] = (key, record.type or "", record.anchor or "", attrs)
        if one_to_one_sources is not None:  # linkage keeps every record apart within its source
            node_key += (record.source, record.id)
        node_key_of.append(node_key)
    unique_keys = sorted(set(node_key_of))  # strings only: content order
    node_index = {k: i for i, k in enumerate(unique_keys)}
    node_of = np.array([node_index[k] for k in node_key_of], dtype=np.int64)
    n_nodes = len(unique_keys)
    contexts: list[set[str]] = [set() for _ in range(n_nodes)]
    node_attrs: list[Mapping[str, Any]] = [{} for _ in range(n_nodes)]
    node_type: list[str | None] = [None] * n_nodes
    node_anchor: list[str | None] = [None] * n_nodes
    node_source = [""] * n_nodes
    spellings: dict[str, set[str]] = {}
    for record, node, key in zip(records, node_of.tolist(), keys, strict=True):
        contexts[node] |= record.context
        node_attrs[node] = record.attributes
        node_type[node] = record.type
        node_anchor[node] = record.anchor
        node_source[node] = record.source
        spellings.setdefault(key, set()).add(record.name)
    # one spelling per name, chosen by content (not input order): the one with most acronyms written as
    # such wins, since acronym detection needs the capitals ('MIT', not 'Mit')
    raw_of_name = {key: next(iter(texts)) if len(texts) == 1 else min(
        texts, key=lambda t: (-is_acronym_like(t), -len(acronyms_used(t, options)), t))
        for key, texts in spellings.items()}
    del spellings
    names = sorted(raw_of_name)
    name_index = {k: i for i, k in enumerate(names)}
    name_of_node = np.array([name_index[k[0]] for k in unique_keys], dtype=np.int64)
    nodes_of_name: list[list[int]] = [[] for _ in names]
    for node, name in enumerate(name_of_node.tolist()):
        nodes_of_name[name].append(node)
    peaks["nodes"] = _peak_mb()
    timings["nodes"] = time.perf_counter() - started

    # --- features, blocking, scoring -------------------------------------------------------------------
    t = time.perf_counter()
    features = featurize_names([raw_of_name[k] for k in names], config, keys=names)
    table = NodeTable(features, name_of_node, node_type, [frozenset(c) for c in contexts], node_attrs, config,
                      type_parents)
    peaks["features"] = _peak_mb()
    timings["features"] = time.perf_counter() - t
    t = time.perf_counter()
    blocked = block_names(features, config.blocking, config.ngram, progress)
    peaks["blocking"] = _peak_mb()
    timings["blocking"] = time.perf_counter() - t
    t = time.perf_counter()
    left, right = _node_pairs(blocked.pairs, nodes_of_name)
    if one_to_one_sources is not None:
        side = np.array([0 if s == one_to_one_sources[0] else 1 for s in node_source], dtype=np.int64)
        cross = side[left] != side[right]
        left, right = left[cross], right[cross]
    scores = _score_in_chunks(table, left, right, progress)
    peaks["scoring"] = _peak_mb()
    timings["scoring"] = time.perf_counter() - t

    # --- clustering --------------------------------------------------------------------------------------
    t = time.perf_counter()
    anchor_names = sorted({a for a in node_anchor if a})
    anchor_id = {a: i for i, a in enumerate(anchor_names)}
    anchors = np.array([anchor_id[a] if a else -1 for a in node_anchor], dtype=np.int64)
    cluster_stats: dict[str, Any] = {}
    if one_to_one_sources is not None:
        node_labels = one_to_one(n_nodes, left, right, scores, config.threshold, side)
    else:
        node_labels, cstats = cluster_nodes(
            n_nodes, left, right, scores, config.threshold, anchors=anchors, guard=config.guard == "average",
            scorer=_reusing_scorer(table, left, right, scores, n_nodes), max_exact=config.max_exact_component,
            group_threshold=config.cluster_threshold)
        cluster_stats = {k: v for k, v in vars(cstats).items() if k != "extra"}
    peaks["clustering"] = _peak_mb()
    timings["clustering"] = time.perf_counter() - t

    # clusters numbered in order of their first record: stable for a fixed input order
    record_node_labels = node_labels[node_of]
    _, first_pos, inverse = np.unique(record_node_labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first_pos))
    labels = rank[inverse].astype(np.int64)
    accepted = scores >= config.threshold
    stats = {
        "records": len(records), "nodes": n_nodes, "names": len(names),
        **{f"blocking_{k}": v for k, v in blocked.stats.items()},
        "scored_pairs": len(scores), "accepted_pairs": int(accepted.sum()),
        "clusters": int(labels.max(initial=-1)) + 1, **cluster_stats,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "peak_mb_after": peaks,
    }
    return Resolution([r.id for r in records], labels, node_of, [unique_keys[i][0] for i in range(n_nodes)],
                      (left[accepted], right[accepted], scores[accepted]), stats, name_of_node, blocked.pairs)


def _reusing_scorer(table: NodeTable, left: np.ndarray, right: np.ndarray, scores: np.ndarray, n: int):
    """The guard's scorer: pairs blocking already proposed keep the score they got (looked up by pair
    code); only the others are scored."""
    codes = np.minimum(left, right) * n + np.maximum(left, right)
    order = np.argsort(codes, kind="stable")
    known_codes, known_scores = codes[order], scores[order]

    def scorer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        wanted = np.minimum(a, b) * n + np.maximum(a, b)
        out = np.empty(len(a), dtype=np.float64)
        found, at = find_sorted(known_codes, wanted)
        out[found] = known_scores[at[found]]
        missing = ~found
        if missing.any():
            out[missing] = table.score(a[missing], b[missing]).score
        return out

    return scorer


def _score_in_chunks(table: NodeTable, left: np.ndarray, right: np.ndarray, progress: Progress | None,
                     chunk: int = 1_000_000) -> np.ndarray:
    out = np.empty(len(left), dtype=np.float64)
    for start in range(0, len(left), chunk):
        sl = slice(start, start + chunk)
        out[sl] = table.score(left[sl], right[sl]).score
        if progress:
            progress("score pairs", min(start + chunk, len(left)), len(left))
    return out
