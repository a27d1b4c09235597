"""Graph merge on resolved entities: relations rewritten onto canonical entity ids, relation IRIs of the
text and the seed KGs aligned, duplicate triples merged (count, sources, best confidence), and the numbers
of the fusion report: overlap between source graphs and conflicts on functional relations.

>>> overlap({"a", "b", "c"}, {"b", "c", "d", "e"})
{'shared': 2, 'sizes': [3, 4], 'jaccard': 0.4, 'overlap_coefficient': 0.6667}
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def relation_key(iri_or_name: str) -> str:
    """What a relation is called, whatever the vocabulary: 'http://x.org/worksFor', 'works_for' and
    'http://kgpipe.org/relation/works_for' all give 'works_for'."""
    local = iri_or_name.rstrip("/#")
    for sep in ("#", "/", ":"):
        if sep in local:
            local = local.rsplit(sep, 1)[1]
            break
    return re.sub(r"[^a-z0-9]+", "_", _CAMEL.sub("_", local).lower()).strip("_")


class RelationAligner:
    """Maps every relation IRI to one canonical IRI: explicit aliases first, then (if enabled) relations
    with the same key share one IRI, the seed KG's own where it has one (the fused graph keeps the seed's
    vocabulary)."""

    def __init__(self, seed_relations: Iterable[str], text_relations: Iterable[str], *,
                 by_name: bool = True, aliases: Mapping[str, str] | None = None) -> None:
        self.aliases = dict(aliases or {})
        self.by_name = by_name
        self.canonical: dict[str, str] = {}
        if by_name:
            for iri in sorted(set(text_relations)):
                self.canonical.setdefault(relation_key(iri), iri)
            for iri in sorted(set(seed_relations), reverse=True):  # the smallest seed IRI wins
                self.canonical[relation_key(iri)] = iri

    def __call__(self, iri: str) -> str:
        iri = self.aliases.get(iri, iri)
        return self.canonical.get(relation_key(iri), iri) if self.by_name else iri

    def mapping(self, iris: Iterable[str]) -> dict[str, str]:
        return {iri: self(iri) for iri in sorted(set(iris)) if self(iri) != iri}


@dataclass
class TripleMerge:
    """Triples keyed by (head, relation, tail): how often they were stated, by which sources and graphs,
    and the best confidence."""

    count: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    sources: dict[tuple[str, str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    graphs: dict[tuple[str, str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    confidence: dict[tuple[str, str, str], float] = field(default_factory=dict)
    self_loops: int = 0

    def add(self, head: str, relation: str, tail: str, *, source: str, graph: str, confidence: float) -> None:
        if head == tail:
            self.self_loops += 1  # e.g. 'MIT ... part of the Massachusetts Institute of Technology'
            return
        key = (head, relation, tail)
        self.count[key] += 1
        self.sources[key].add(source)
        self.graphs[key].add(graph)
        self.confidence[key] = max(self.confidence.get(key, 0.0), float(confidence))

    def rows(self) -> list[dict[str, Any]]:
        return [{"head": h, "relation": r, "tail": t, "count": self.count[(h, r, t)],
                 "sources": sorted(self.sources[(h, r, t)]), "confidence": round(self.confidence[(h, r, t)], 6)}
                for h, r, t in sorted(self.count)]

    def edges_of(self, graph: str) -> set[tuple[str, str, str]]:
        return {key for key, graphs in self.graphs.items() if graph in graphs}


def overlap(a: set, b: set) -> dict[str, Any]:
    """Jaccard (shared over union) and overlap coefficient (shared over the smaller set)."""
    shared = len(a & b)
    union = len(a | b)
    smaller = min(len(a), len(b))
    return {"shared": shared, "sizes": [len(a), len(b)],
            "jaccard": round(shared / union, 4) if union else 0.0,
            "overlap_coefficient": round(shared / smaller, 4) if smaller else 0.0}


def graph_overlaps(nodes: Mapping[str, set], edges: Mapping[str, set]) -> list[dict[str, Any]]:
    """Node and edge overlap for every pair of source graphs (names sorted)."""
    out = []
    for a, b in combinations(sorted(nodes), 2):
        out.append({"graphs": [a, b], "nodes": overlap(nodes[a], nodes[b]),
                    "edges": overlap(edges.get(a, set()), edges.get(b, set()))})
    return out


def functional_conflicts(merge: TripleMerge, functional: set[str], labels: Mapping[str, str]) -> list[dict]:
    """Heads with more than one tail for a relation declared functional (e.g. born_in)."""
    tails: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
    for key in merge.count:
        head, relation, _ = key
        if relation in functional:
            tails[(head, relation)].append(key)
    conflicts = []
    for (head, relation), keys in sorted(tails.items()):
        if len(keys) < 2:
            continue
        # most often said first, then the most confident, then by tail
        ranked = sorted(keys, key=lambda k: (-merge.count[k], -round(merge.confidence[k], 4), k[2]))
        values = [{"tail": t, "label": labels.get(t, t), "count": merge.count[(h, r, t)],
                   "confidence": round(merge.confidence[(h, r, t)], 4),
                   "sources": sorted(merge.sources[(h, r, t)])[:10]} for h, r, t in ranked]
        conflicts.append({"head": head, "label": labels.get(head, head), "relation": relation, "values": values})
    return conflicts
