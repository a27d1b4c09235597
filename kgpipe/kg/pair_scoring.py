"""Resolution step: scoring node pairs, a map over chunks of pairs with the node table (features, types,
contexts, attributes) as a read-only argument, and the guard's scorer that reuses those scores.

Every function here is module-level and every argument plain picklable data, so a distributed engine can
ship the table to workers once and map `score_pairs` over blocks of pairs; a pair's score does not depend on
the other pairs in its chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from kgpipe.kg.codes import find_sorted
from kgpipe.kg.nodes import Nodes
from kgpipe.kg.similarity import NameFeatures, NodeTable, ResolutionConfig


class _Scored(Protocol):
    @property
    def score(self) -> np.ndarray: ...


class PairTable(Protocol):
    """What scores node pairs: a NodeTable (fixed weights) or a LearnedTable (learned match probabilities)."""

    def score(self, left: np.ndarray, right: np.ndarray) -> _Scored: ...


def node_table(nodes: Nodes, features: NameFeatures, config: ResolutionConfig,
               type_parents: Mapping[str, str] | None = None) -> NodeTable:
    """The scorer's view of the nodes: name features, type, pooled context and attributes per node."""
    return NodeTable(features, nodes.name_of_node, list(nodes.types), list(nodes.contexts), list(nodes.attributes),
                     config, type_parents)


def score_pairs(table: PairTable, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Combined score of each node pair (left[i], right[i])."""
    return table.score(left, right).score


def score_pair_chunk(table: PairTable, pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """score_pairs as an engine task: the table shared (sent to workers once), a chunk of (left, right) the item."""
    left, right = pairs
    return score_pairs(table, left, right)


def chunk_pairs(total: int, size: int | None = None) -> list[slice]:
    """Consecutive slices of at most `size` pairs (default kgpipe.kg.chunking.PAIRS) covering `total`: the driver
    scores pairs in chunks to bound memory (and report progress); any chunking gives the same scores."""
    from kgpipe.kg import chunking

    return chunking.spans(total, chunking.PAIRS if size is None else size)


def pair_codes(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """smaller * n + larger of each pair (int64 whatever the ids' dtype: n * n overflows int32)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    return np.minimum(a, b) * n + np.maximum(a, b)


class KnownScores:
    """The guard's scorer: pairs blocking already proposed keep the score they got (looked up by pair code);
    only the others are scored with the table. A small class rather than a closure, so it pickles."""

    def __init__(self, table: PairTable, left: np.ndarray, right: np.ndarray, scores: np.ndarray, n: int) -> None:
        codes = pair_codes(left, right, n)
        self.table = table
        self.n = n
        if len(codes) and not (codes[1:] >= codes[:-1]).all():
            order = np.argsort(codes, kind="stable")
            codes, scores = codes[order], scores[order]
        # blocking gives the pairs in code order where every name is one node (as in er_scale): the scores are
        # then kept as they are; a sorted copy of both costs the driver 16 bytes a pair (58 MB at 1M mentions)
        self.codes = codes
        self.scores = scores

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        wanted = pair_codes(a, b, self.n)
        out = np.empty(len(a), dtype=np.float64)
        found, at = find_sorted(self.codes, wanted)
        out[found] = self.scores[at[found]]
        # the rest in chunks: the scorer holds a score array per signal for the pairs it is given, and the guard
        # of a component of millions of nodes asks for tens of millions of pairs at once
        missing = np.flatnonzero(~found)
        for sl in chunk_pairs(len(missing)):
            at = missing[sl]
            out[at] = score_pairs(self.table, a[at], b[at])
        return out
