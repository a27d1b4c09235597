"""Linking resolved entities to the seed KG, and minting ids from content for the rest.

Exact first: a name that is a seed label or alias (after normalisation) of exactly one type-compatible seed
entity links to it; when several seed entities share the name (two cities called Cambridge), the one with
most evidence near the mention wins: names of its neighbours in the seed graph ('Harvard' for Cambridge,
Massachusetts) and words of its other names ('England'), nearer mentions counting more; a tie links to
none. Then similarity: a cluster that no name linked is compared with seed names using the resolution
signals and links above `link_threshold`. Otherwise an id is minted from content, the canonical label and
type, never from order, so that adding a document leaves the ids of untouched entities as they were.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kgpipe.kg.normalize import SPECIAL_LETTERS, NormalizeOptions, name_tokens, normalize_name
from kgpipe.kg.similarity import NodeTable, ResolutionConfig, featurize_names


@dataclass
class SeedEntityInfo:
    iri: str
    label: str
    aliases: list[str]
    types: list[str]
    sources: list[str]
    keys: set[str] = field(default_factory=set)            # normalised label and aliases
    neighbour_keys: set[str] = field(default_factory=set)  # normalised names of its neighbours in the seed graph
    own_words: set[str] = field(default_factory=set)       # words of its own names ('england' in 'Cambridge, England')
    degree: int = 0


class SeedIndex:
    """Seed entities by normalised name, with the context that tells same-named entities apart: the names
    of their neighbours in the seed graph and the words of their own other names."""

    def __init__(self, entities: Iterable[Mapping], triples: Iterable[Mapping], options: NormalizeOptions) -> None:
        self.options = options
        self.entities: dict[str, SeedEntityInfo] = {}
        self.by_key: dict[str, list[str]] = defaultdict(list)
        for row in entities:
            info = SeedEntityInfo(row["iri"], row["label"], list(row["aliases"]), list(row["types"]),
                                  list(row["sources"]))
            info.keys = {k for k in (normalize_name(n, options) for n in [info.label, *info.aliases]) if k}
            info.own_words = {w for key in info.keys for w in name_tokens(key, options)}
            self.entities[info.iri] = info
            for key in info.keys:
                self.by_key[key].append(info.iri)
        neighbours: dict[str, set[str]] = defaultdict(set)
        for row in triples:
            head, tail = row["head"], row["tail"]
            if head in self.entities and tail in self.entities and head != tail:
                neighbours[head].add(tail)
                neighbours[tail].add(head)
        for iri, info in self.entities.items():
            for other in neighbours.get(iri, ()):
                info.neighbour_keys |= self.entities[other].keys
            info.degree = len(neighbours.get(iri, ()))
        # evidence shared by many seed entities (the country most things are in) says little
        n = max(len(self.entities), 1)
        key_df = Counter(k for info in self.entities.values() for k in info.neighbour_keys)
        word_df = Counter(w for info in self.entities.values() for w in info.own_words)
        self.key_weight = {k: math.log((1 + n) / (1 + c)) + 1.0 for k, c in key_df.items()}
        self.word_weight = {w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in word_df.items()}

    def candidates(self, key: str, kg_type: str | None, compatible) -> list[str]:
        return [iri for iri in self.by_key.get(key, ()) if self.type_ok(iri, kg_type, compatible)]

    def type_ok(self, iri: str, kg_type: str | None, compatible) -> bool:
        types = self.entities[iri].types
        return not types or kg_type is None or any(compatible(kg_type, t) for t in types)

    def context_score(self, iri: str, context: Mapping[str, float], own_key: str) -> float:
        """Evidence for `iri` from context names (key -> proximity weight): a context name that is the name
        of one of its neighbours, or that shares a word with its other names ('England')."""
        info = self.entities[iri]
        skip = set(name_tokens(own_key, self.options))
        score = 0.0
        for key, proximity in context.items():
            evidence = self.key_weight.get(key, 0.0) if key in info.neighbour_keys else 0.0
            words = (set(name_tokens(key, self.options)) & info.own_words) - skip
            evidence += sum(self.word_weight.get(w, 1.0) for w in words)
            score += proximity * evidence
        return score

    def context_keys(self, iri: str) -> frozenset[str]:
        info = self.entities[iri]
        return frozenset(info.neighbour_keys | info.keys)


@dataclass
class ExactLink:
    iri: str | None
    candidates: int
    how: str            # 'unique', 'context', 'gazetteer', 'ambiguous', 'none'


def link_exact(key: str, kg_type: str | None, context: Mapping[str, float], gazetteer: Iterable[str],
               index: SeedIndex, compatible) -> ExactLink:
    """The seed entity an exact name denotes. When several share the name, context decides: `context` maps
    the names around the mention to a proximity weight (nearer names count more); a tie links to none."""
    candidates = index.candidates(key, kg_type, compatible)
    hinted = [iri for iri in gazetteer if iri in index.entities and index.type_ok(iri, kg_type, compatible)]
    if not candidates:
        return ExactLink(hinted[0], len(hinted), "gazetteer") if len(set(hinted)) == 1 else ExactLink(
            None, 0, "none")
    if len(candidates) == 1:
        return ExactLink(candidates[0], 1, "unique")
    scores = {iri: index.context_score(iri, context, key) for iri in candidates}
    for iri in hinted:  # the extractor's gazetteer choice counts as one more piece of evidence
        if iri in scores:
            scores[iri] += 1.0
    best = max(scores.values())
    winners = sorted(iri for iri, s in scores.items() if s == best)
    if best > 0 and len(winners) == 1:
        return ExactLink(winners[0], len(candidates), "context")
    return ExactLink(None, len(candidates), "ambiguous")


def link_by_similarity(cluster_names: Sequence[Sequence[str]], cluster_types: Sequence[str | None],
                       cluster_context: Sequence[frozenset[str]], index: SeedIndex, config: ResolutionConfig,
                       threshold: float, type_parents: Mapping[str, str] | None = None
                       ) -> list[tuple[str | None, float]]:
    """For each cluster (its distinct names), the most similar seed entity at or above threshold, and the
    score: the best resolution score between any of its names and any seed label or alias. cluster_context:
    normalised names the cluster's mentions co-occur with (compared with the seed entity's neighbours)."""
    from kgpipe.kg.blocking import block_names

    seed_names: list[tuple[str, str]] = []  # (raw name, iri)
    for iri, info in index.entities.items():
        for name in dict.fromkeys([info.label, *info.aliases]):
            seed_names.append((name, iri))
    owners: list[tuple[str, int]] = [(name, k) for k, names in enumerate(cluster_names) for name in names]
    out: list[tuple[str | None, float]] = [(None, 0.0)] * len(cluster_names)
    if not owners or not seed_names:
        return out
    raw = [name for name, _ in owners] + [name for name, _ in seed_names]
    keys = [normalize_name(r, index.options) for r in raw]
    unique = sorted(set(keys))
    position = {k: i for i, k in enumerate(unique)}
    spelling = {k: r for k, r in zip(keys, raw, strict=True)}
    # linking asks for the same name, not one inside the other: 'England' is not 'Cambridge, England', and
    # 'Harald Bohr' is not the seed's 'Bohr' (Niels); containment is left to clustering, where the guard
    # weighs it against the rest of the cluster
    config = config.model_copy(update={"token_containment": 0.0})
    features = featurize_names([spelling[k] for k in unique], config)
    n_cluster = len(owners)
    types = [cluster_types[k] for _, k in owners] + [None] * len(seed_names)
    contexts = [cluster_context[k] for _, k in owners] + [index.context_keys(iri) for _, iri in seed_names]
    table = NodeTable(features, np.array([position[k] for k in keys]), types, contexts, [{}] * len(raw), config,
                      type_parents)
    blocked = block_names(features, config.blocking, config.ngram)
    nodes_of_name: dict[int, list[int]] = defaultdict(list)
    for node, key in enumerate(keys):
        nodes_of_name[position[key]].append(node)
    left, right = [], []
    pairs = [*blocked.pairs.tolist(), *[(i, i) for i in range(len(unique))]]
    for a, b in pairs:
        for x in nodes_of_name[a]:
            for y in nodes_of_name[b]:
                lo, hi = min(x, y), max(x, y)
                if lo < n_cluster <= hi:
                    left.append(lo)
                    right.append(hi)
    if not left:
        return out
    scores = table.score(np.array(left), np.array(right)).score
    best: dict[int, tuple[float, str]] = {}
    for node, seed_node, score in zip(left, right, scores.tolist(), strict=True):
        cluster = owners[node][1]
        iri = seed_names[seed_node - n_cluster][1]
        if score < threshold or not index.type_ok(iri, cluster_types[cluster], _compat(type_parents)):
            continue
        current = best.get(cluster)
        if current is None or (score, current[1]) > (current[0], iri):  # ties: the smaller IRI
            best[cluster] = (score, iri)
    for cluster, (score, iri) in best.items():
        out[cluster] = (iri, round(score, 4))
    return out


def _compat(type_parents: Mapping[str, str] | None):
    from kgpipe.vocab import DEFAULT_TYPE_PARENTS, compatible

    parents = DEFAULT_TYPE_PARENTS if type_parents is None else type_parents
    return lambda a, b: compatible(a, b, parents)


def slug(text: str) -> str:
    """An IRI-safe readable fragment: 'Zürich University' -> 'Zurich_University'."""
    text = unicodedata.normalize("NFKD", text.translate(SPECIAL_LETTERS))
    ascii_text = "".join(ch for ch in text if not unicodedata.combining(ch)).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_")[:80] or "entity"


def content_hash(*parts: str, length: int = 8) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:length]


def mint_ids(entities: Sequence[tuple[str, str | None, str]], namespace: str,
             options: NormalizeOptions) -> list[str]:
    """Ids for new entities from (canonical label, type, tie-breaker) each: namespace + slug + hash of the
    normalised label and the type. Entities that would share an id (same label and type, kept apart by
    resolution) all add a hash of their tie-breaker (content too, e.g. their first mention's id)."""
    base = [f"{namespace}{slug(label)}_{content_hash(normalize_name(label, options), kg_type or '')}"
            for label, kg_type, _ in entities]
    counts = Counter(base)
    return [b if counts[b] == 1 else f"{b}_{content_hash(tie)}" for b, (_, _, tie) in zip(base, entities,
                                                                                          strict=True)]


def link_seed_graphs(index: SeedIndex, compatible) -> dict[str, str]:
    """Seed entities of different seed files that are one entity: the same normalised label, compatible
    types, and the only entity with that label in each file. Returns iri -> canonical iri (the smallest)."""
    by_label: dict[str, list[SeedEntityInfo]] = defaultdict(list)
    for info in index.entities.values():
        by_label[normalize_name(info.label, index.options)].append(info)
    canonical: dict[str, str] = {}
    for group in by_label.values():
        if len(group) < 2:
            continue
        per_source = Counter(s for info in group for s in set(info.sources))
        if any(c > 1 for c in per_source.values()):
            continue  # two entities of one file share the label: the files say they differ
        if not all(any(compatible(a, b) for a in x.types for b in y.types) or not x.types or not y.types
                   for x in group for y in group):
            continue
        head = min(info.iri for info in group)
        for info in group:
            canonical[info.iri] = head
    return canonical
