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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kgpipe.kg.blocking import block_names
from kgpipe.kg.cluster import cluster_nodes, one_to_one
from kgpipe.kg.nodes import Nodes, RecordColumns, build_nodes, name_keys, node_pairs, source_sides
from kgpipe.kg.pair_scoring import KnownScores, PairTable, chunk_pairs, node_table, pair_codes, score_pair_chunk
from kgpipe.kg.similarity import NodeTable, ResolutionConfig, featurize_names

if TYPE_CHECKING:
    from kgpipe.engine.base import Executor
    from kgpipe.kg.learned_scoring import LearnedTable
    from kgpipe.kg.learned_weights import LearnedWeights
    from kgpipe.kg.normalize import NormalizeOptions

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

    record_ids: Sequence[str]
    labels: np.ndarray              # cluster number per record (0.. in order of first record)
    node_of: np.ndarray             # node per record
    node_names: list[str]           # normalised name per node
    accepted: tuple[np.ndarray, np.ndarray, np.ndarray]  # node pairs accepted, with their scores
    stats: dict[str, Any]
    name_of_node: np.ndarray | None = None       # unique-name index per node
    candidate_names: np.ndarray | None = None    # (m, 2) name pairs proposed by blocking (keep_candidates)
    learned: LearnedWeights | None = None        # the match weights scored with (learn=em)
    code_pairs: np.ndarray | None = None         # (m, 2) node pairs added for a shared rare code (keep_candidates)

    @property
    def clusters(self) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in range(int(self.labels.max(initial=-1)) + 1)]
        for record_id, label in zip(self.record_ids, self.labels.tolist(), strict=True):
            out[label].append(record_id)
        return out

    def cluster_of(self) -> dict[str, int]:
        return dict(zip(self.record_ids, self.labels.tolist(), strict=True))


class _Steps:
    """Wall seconds, CPU seconds (this process's, all its threads: not an engine's workers elsewhere) and peak
    memory after each step, for the resolution stats."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.peaks: dict[str, float] = {}
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    def done(self, step: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.peaks[step] = _peak_mb()
        self.seconds[step] = now - self.started
        self.cpu_seconds[step] = cpu - self.cpu_started
        self.started, self.cpu_started = now, cpu


def resolve(records: Iterable[Record] | RecordColumns, config: ResolutionConfig | None = None, *,
            one_to_one_sources: tuple[str, str] | None = None, type_parents: Mapping[str, str] | None = None,
            progress: Progress | None = None, executor: Executor | None = None,
            keep_candidates: bool = False) -> Resolution:
    """Cluster records that denote the same entity.

    records: Record objects, or RecordColumns (the same as columns: what to pass at millions of records).
    config: signals, weights, threshold, blocking (defaults in ResolutionConfig). one_to_one_sources:
    record linkage between two sources, every record from one of them: each record is matched to at most
    one record of the other source and never to a record of its own. type_parents: the type hierarchy for
    type compatibility (default: kgpipe.vocab's). executor: the engine the mapped steps run on (name keys,
    name features, blocking keys and bands, pair scoring, components, the guard); default: this process. Every
    engine gives the same resolution. keep_candidates: return blocking's name pairs too (`candidate_names`, and
    with learn=em the node pairs added for a shared code, `code_pairs`: for measuring blocking); otherwise they
    are dropped once expanded to node pairs.
    """
    from kgpipe.engine.local import LocalExecutor

    executor = executor or LocalExecutor.in_process("resolve")
    config = config or ResolutionConfig()
    records = records if isinstance(records, RecordColumns) else RecordColumns.of(records)
    _check_sources(records, one_to_one_sources)
    steps = _Steps()
    nodes = build_nodes(records, record_keys(records.names, config, executor), config, one_to_one_sources)
    steps.done("nodes")
    features = featurize_names(list(nodes.spellings), config, keys=list(nodes.names), executor=executor)
    table = node_table(nodes, features, config, type_parents)
    steps.done("features")
    blocked = block_names(features, config.blocking, config.ngram, progress, executor)
    steps.done("blocking")
    left, right = node_pairs(blocked.pairs, nodes.name_of_node, len(nodes.names))
    candidate_names = blocked.pairs if keep_candidates else None
    blocking_stats = blocked.stats
    del blocked
    side = source_sides(nodes.sources, one_to_one_sources) if one_to_one_sources is not None else None
    if side is not None:
        cross = side[left] != side[right]
        left, right = left[cross], right[cross]
    pair_table: PairTable = table
    threshold, group_threshold, learned, learn_stats = config.threshold, config.cluster_threshold, None, {}
    code_pairs = None
    if config.learn == "em":
        learned_scorer = _learned_table(table, nodes)
        left, right = named_pairs(nodes, left, right)
        added = named_pairs(nodes, *_code_pairs(learned_scorer, left, right, side))
        left, right = np.concatenate([left, added[0]]), np.concatenate([right, added[1]])
        pair_table, learned = _with_learned_weights(learned_scorer, nodes, left, right, side)
        del learned_scorer
        threshold, group_threshold = config.em.threshold, None
        learn_stats = {"em_iterations": learned.iterations, "em_converged": learned.converged,
                       "em_prior": round(learned.prior, 6), "em_pairs": learned.pairs,
                       "code_block_pairs": len(added[0])}
        code_pairs = np.stack(added, axis=1) if keep_candidates else None
        steps.done("learning")
    scores = _score_in_chunks(pair_table, left, right, progress, executor)
    steps.done("scoring")
    cluster_stats: dict[str, Any] = {}
    if side is not None:
        node_labels = one_to_one(len(nodes), left, right, scores, threshold, side)
    else:
        # the table goes where the guard's tasks read it; the driver then drops its own copy
        scorer = executor.share(KnownScores(pair_table, left, right, scores, len(nodes)))
        del table, features, pair_table
        node_labels, cstats = cluster_nodes(
            len(nodes), left, right, scores, threshold, anchors=nodes.anchor_ids(),
            guard=config.guard == "average", scorer=scorer,
            max_exact=config.max_exact_component, group_threshold=group_threshold, executor=executor)
        cluster_stats = {k: v for k, v in vars(cstats).items() if k != "extra"}
    steps.done("clustering")
    labels = record_labels(node_labels, nodes.node_of)
    accepted = scores >= threshold
    stats = {
        "records": len(records), "nodes": len(nodes), "names": len(nodes.names),
        **{f"blocking_{k}": v for k, v in blocking_stats.items()},
        "scored_pairs": len(scores), "accepted_pairs": int(accepted.sum()),
        "clusters": int(labels.max(initial=-1)) + 1, **cluster_stats, **learn_stats,
        "seconds": {k: round(v, 3) for k, v in steps.seconds.items()},
        "cpu_seconds": {k: round(v, 3) for k, v in steps.cpu_seconds.items()},
        "peak_mb_after": steps.peaks,
    }
    return Resolution(records.ids, labels, nodes.node_of, list(nodes.keys),
                      (left[accepted], right[accepted], scores[accepted]), stats, nodes.name_of_node, candidate_names,
                      learned, code_pairs)


def _learned_table(table: NodeTable, nodes: Nodes) -> LearnedTable:
    from kgpipe.kg.learned_scoring import learned_table

    return learned_table(table, nodes)


def _code_pairs(scorer: LearnedTable, left: np.ndarray, right: np.ndarray, side: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """learn=em with code_blocks: the node pairs that share a rare code (across the sides in one-to-one
    linkage) and are not among the candidate pairs (left, right) already, in code order."""
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if not scorer.config.em.code_blocks:
        return none
    a, b = scorer.identifiers.shared_code_pairs()
    if side is not None:
        cross = side[a] != side[b]
        a, b = a[cross], b[cross]
    if not len(a):
        return none
    n = len(scorer)
    new = ~np.isin(pair_codes(a, b, n), pair_codes(left, right, n))
    return a[new], b[new]


def _with_learned_weights(scorer: LearnedTable, nodes: Nodes, left: np.ndarray, right: np.ndarray,
                          side: np.ndarray | None) -> tuple[LearnedTable, LearnedWeights]:
    """learn=em: the learned scorer with the weights the config gives or learned on the candidate pairs
    (left, right)."""
    from kgpipe.kg.learned_scoring import given_weights, learn_weights

    weights = given_weights(scorer.config) or learn_weights(scorer, left, right, nodes.node_of, side)
    return scorer.with_weights(weights), weights


def named_pairs(nodes: Nodes, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose nodes both have a name. Blocking pairs records by their names; records without one (only
    attributes) share the empty name, which pairs each of them with all the others: that is no blocking, and
    learned weights would take whatever attribute they happen to share for a match."""
    named = np.array([bool(key) for key in nodes.names], dtype=bool)[nodes.name_of_node]
    keep = named[left] & named[right]
    return (left, right) if keep.all() else (left[keep], right[keep])


def _check_sources(records: RecordColumns, one_to_one_sources: tuple[str, str] | None) -> None:
    if one_to_one_sources is not None:
        strays = set(records.sources if records.sources is not None else [""]) - set(one_to_one_sources)
        if strays:
            raise ValueError(f"one-to-one linkage between {one_to_one_sources}: records from other sources "
                             f"{sorted(strays)[:3]}")


def record_labels(node_labels: np.ndarray, node_of: np.ndarray) -> np.ndarray:
    """A cluster number per record, clusters numbered in order of their first record (stable for a fixed
    input order)."""
    record_node_labels = node_labels[node_of]
    _, first_pos, inverse = np.unique(record_node_labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first_pos))
    return rank[inverse].astype(np.int64)


def record_keys(names: Sequence[str], config: ResolutionConfig, executor: Executor) -> list[str]:
    """The normalised name of each record: each distinct spelling normalised once, a map over chunks of
    spellings (name_keys) on the executor."""
    from kgpipe.kg import chunking

    spellings = list(dict.fromkeys(names))
    options = config.normalize.options()
    keys = chunking.flat_map(executor, _name_keys_chunk, (spellings[s] for s in chunking.spans(
        len(spellings), chunking.NAMES)), shared=(options,), what="normalise names")
    key_of = dict(zip(spellings, keys, strict=True))
    return [key_of[name] for name in names]


def _name_keys_chunk(options: NormalizeOptions, texts: list[str]) -> list[str]:
    return name_keys(texts, options)


def _score_in_chunks(table: PairTable, left: np.ndarray, right: np.ndarray, progress: Progress | None,
                     executor: Executor) -> np.ndarray:
    """Scores of every pair: score_pairs over chunks of pairs on the executor, the table sent once."""
    out = np.empty(len(left), dtype=np.float64)
    spans = chunk_pairs(len(left))
    chunks = executor.map_tasks(score_pair_chunk, ((left[sl], right[sl]) for sl in spans), shared=(table,),
                                what="score pairs")
    for sl, scores in zip(spans, chunks, strict=True):
        out[sl] = scores
        if progress:
            progress("score pairs", sl.stop, len(left))
    return out
