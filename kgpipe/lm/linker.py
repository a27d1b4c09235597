"""Entity linking for new text: an alias table from the fused entities (exact, then normalised, then
fuzzy with rapidfuzz), candidates ranked by string score, type agreement and prior (mention count);
NIL when nothing passes the threshold.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kgpipe.kg.normalize import normalize_name
from kgpipe.vocab import DEFAULT_TYPE_PARENTS, compatible


@dataclass(frozen=True)
class Candidate:
    entity_id: str
    label: str
    kg_type: str | None
    alias: str
    method: str          # exact, normalized or fuzzy
    string_score: float  # 0..1
    score: float         # combined ranking score


@dataclass(frozen=True)
class LinkerWeights:
    string: float = 0.7
    type: float = 0.2
    prior: float = 0.1


class EntityLinker:
    """Links mention strings to entity ids of an entities table (id, label, type, aliases, mention_count)."""

    def __init__(self, entities: Iterable[Mapping[str, Any]], *, normalize: Callable[[str], str] = normalize_name,
                 fuzzy_cutoff: float = 88.0, nil_threshold: float = 0.6,
                 weights: LinkerWeights = LinkerWeights(),
                 type_parents: Mapping[str, str] = DEFAULT_TYPE_PARENTS, max_candidates: int = 10) -> None:
        self.normalize = normalize
        self.fuzzy_cutoff = fuzzy_cutoff
        self.nil_threshold = nil_threshold
        self.weights = weights
        self.type_parents = type_parents
        self.max_candidates = max_candidates
        self.entities: list[tuple[str, str, str | None]] = []
        counts: list[int] = []
        self._exact: dict[str, set[int]] = defaultdict(set)
        self._normal: dict[str, set[int]] = defaultdict(set)
        for row in entities:
            index = len(self.entities)
            kg_type = row.get("type")
            self.entities.append((row["id"], row["label"], kg_type if isinstance(kg_type, str) else None))
            counts.append(int(row.get("mention_count") or 0))
            aliases = row.get("aliases")
            for alias in [row["label"], *(list(aliases) if aliases is not None else [])]:
                if alias:
                    self._exact[alias].add(index)
                    if key := normalize(alias):
                        self._normal[key].add(index)
        self._keys = list(self._normal)
        top = max(counts, default=0)
        self._prior = [math.log1p(c) / math.log1p(top) if top else 0.0 for c in counts]

    def __len__(self) -> int:
        return len(self.entities)

    def _type_score(self, index: int, kg_type: str | None) -> float:
        entity_type = self.entities[index][2]
        if kg_type is None or entity_type is None:
            return 0.5
        return 1.0 if compatible(kg_type, entity_type, self.type_parents) else 0.0

    def candidates(self, mention: str, kg_type: str | None = None) -> list[Candidate]:
        """Ranked candidates: every exact or normalised alias match, else the best fuzzy ones."""
        from rapidfuzz import fuzz, process

        found: dict[int, tuple[str, str, float]] = {}
        for index in self._exact.get(mention, ()):
            found[index] = (mention, "exact", 1.0)
        key = self.normalize(mention)
        for index in self._normal.get(key, ()):
            found.setdefault(index, (mention, "normalized", 0.95))
        if not found and key:
            for alias_key, score, _ in process.extract(key, self._keys, scorer=fuzz.WRatio,
                                                       score_cutoff=self.fuzzy_cutoff, limit=self.max_candidates):
                for index in self._normal[alias_key]:
                    if index not in found or found[index][2] < score / 100 * 0.9:
                        found[index] = (alias_key, "fuzzy", score / 100 * 0.9)
        ranked = []
        for index, (alias, method, string_score) in found.items():
            type_score = self._type_score(index, kg_type)
            if type_score == 0.0:
                continue  # a PERSON mention never links to a city
            total = (self.weights.string * string_score + self.weights.type * type_score
                     + self.weights.prior * self._prior[index])
            entity_id, label, entity_type = self.entities[index]
            ranked.append(Candidate(entity_id, label, entity_type, alias, method, string_score, total))
        ranked.sort(key=lambda c: (-c.score, c.entity_id))
        return ranked[: self.max_candidates]

    def link(self, mention: str, kg_type: str | None = None) -> Candidate | None:
        """The best candidate, or None (NIL) when its score is below the threshold."""
        ranked = self.candidates(mention, kg_type)
        return ranked[0] if ranked and ranked[0].score >= self.nil_threshold else None
