"""Entity search by label or alias: exact label, then alias, then prefix (of the label or of one of its words),
then fuzzy (rapidfuzz, typo-tolerant); ties within a tier by mention count. Labels are normalised and indexed
once per snapshot, so a query costs dictionary and bisect look-ups plus one rapidfuzz pass.
"""

from __future__ import annotations

import bisect
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kgpipe.kg.iri import local_name

if TYPE_CHECKING:
    import pandas as pd

TIERS = ("exact", "alias", "prefix", "fuzzy")
FUZZY_CUTOFF = 75.0     # rapidfuzz WRatio, 0-100
MIN_PREFIX = 2          # shorter queries match whole labels and aliases only
MIN_FUZZY = 3           # nor are shorter ones matched fuzzily (every short word is 'close' to them)


def normalise(text: str) -> str:
    """Case-folded, accents removed, whitespace collapsed: 'Émile  Zola' -> 'emile zola'."""
    if text.isascii():
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split())


@dataclass(frozen=True)
class Hit:
    row: int            # position in the entities table
    match: str          # one of TIERS
    score: float        # 100 for exact, alias and prefix; rapidfuzz's score for fuzzy


class SearchIndex:
    """Normalised labels and aliases of an entities table (fuse's columns: label, aliases, type,
    mention_count)."""

    def __init__(self, entities: pd.DataFrame) -> None:
        import numpy as np

        self.labels = [normalise(str(x)) for x in entities["label"]]
        self.types: list[str | None] = [t if isinstance(t, str) and t else None for t in entities["type"]]
        self.mentions = np.asarray(entities["mention_count"], dtype=np.int64)
        self._by_label: dict[str, list[int]] = {}
        for row, label in enumerate(self.labels):
            self._by_label.setdefault(label, []).append(row)
        self._by_alias: dict[str, list[int]] = {}
        self.alias_rows: list[int] = []
        self.alias_names: list[str] = []
        for row, aliases in enumerate(entities["aliases"]):
            for alias in {normalise(str(a)) for a in (aliases if aliases is not None else ())}:
                if alias and alias != self.labels[row]:
                    self._by_alias.setdefault(alias, []).append(row)
                    self.alias_rows.append(row)
                    self.alias_names.append(alias)
        # (label or one of its words, row), sorted: a prefix is a contiguous range
        words = {(w, row) for row, label in enumerate(self.labels) for w in (label, *label.split()[1:])}
        self._prefixes = sorted(words)
        self._prefix_keys = [w for w, _ in self._prefixes]
        self._names = self.labels + self.alias_names           # the fuzzy tier's candidates
        self._name_rows = list(range(len(self.labels))) + self.alias_rows
        self._by_type: dict[str, tuple[list[str], list[int]]] = {}

    def _type_ok(self, row: int, wanted: str | None) -> bool:
        if wanted is None:
            return True
        kind = self.types[row]
        return kind is not None and (kind == wanted or local_name(kind).casefold() == wanted.casefold())

    def _candidates(self, type: str | None) -> tuple[list[str], list[int]]:
        """The fuzzy tier's candidates (labels and aliases, with their rows) of one type, kept per type asked."""
        if type is None:
            return self._names, self._name_rows
        found = self._by_type.get(type)
        if found is None:
            keep = [i for i, row in enumerate(self._name_rows) if self._type_ok(row, type)]
            found = ([self._names[i] for i in keep], [self._name_rows[i] for i in keep])
            if len(self._by_type) > 64:   # types come from requests: keep the cache bounded
                self._by_type.clear()
            self._by_type[type] = found
        return found

    def search(self, query: str, *, type: str | None = None, limit: int = 20) -> list[Hit]:
        """The best `limit` entities for a query, ranked exact label > alias > prefix > fuzzy, then by score
        (fuzzy only), then by mention count."""
        from rapidfuzz import fuzz, process

        q = normalise(query)
        if not q or limit < 1:
            return []
        best: dict[int, Hit] = {}

        def add(row: int, match: str, score: float) -> None:
            if self._type_ok(row, type) and row not in best:
                best[row] = Hit(row, match, score)

        for row in self._by_label.get(q, ()):
            add(row, "exact", 100.0)
        for row in self._by_alias.get(q, ()):
            add(row, "alias", 100.0)
        if len(q) >= MIN_PREFIX:
            start = bisect.bisect_left(self._prefix_keys, q)
            end = bisect.bisect_left(self._prefix_keys, q + "\U0010ffff", lo=start)
            for _, row in self._prefixes[start:end]:
                add(row, "prefix", 100.0)
        if len(best) < limit and len(q) >= MIN_FUZZY:
            # candidates: labels and aliases of the wanted type; rapidfuzz scores them in C++ with a cutoff
            names, rows = self._candidates(type)
            found = process.extract(q, names, scorer=fuzz.WRatio, processor=None, score_cutoff=FUZZY_CUTOFF,
                                    limit=limit + len(best) + 10)
            for _, score, index in found:
                add(rows[index], "fuzzy", round(float(score), 1))
        ranked = sorted(best.values(), key=lambda h: (TIERS.index(h.match), -h.score, -int(self.mentions[h.row]),
                                                      self.labels[h.row], h.row))
        return ranked[:limit]
