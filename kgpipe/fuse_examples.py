"""A few pairs of names worth explaining in a fuse run with learned weights, for its summary (the report's and the
explorer's run page): chosen from what the run wrote, deterministically, and explained as `kgpipe explain` would
explain them (kgpipe.fuse_explain.FusedRun).

The stage keeps no scored pairs, so the candidates come from mention_entities, text by text (a text's mentions
and the entities they are in, as `kgpipe explain` reads a text):
- merged: in the entities with the most distinct mention texts (MERGES of them), each other text against the
  entity's most frequent one (at most TEXTS_PER_MERGE each);
- kept apart: texts that share a word of their normalised names (at least 3 characters) and whose mentions are
  in no common entity, taken word by word in an order given by a hash of the word (a sample of the whole
  vocabulary, not its start), words shared by at most WORD_TEXTS texts, at most APART_PAIRS pairs.
All candidates are scored on one Explainer, and three are shown: the merged pair with the lowest probability, the
kept-apart pair with the highest, and in the largest merge its most frequent text with the next one (when that
pair is not the first already). A merged pair may score low: a seed link, or a chain of other pairs, can join
names whose own probability is low, which is what the picture is there to show.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kgpipe.fuse_explain import FusedPairExplanation, FusedRun

MERGES = 50
TEXTS_PER_MERGE = 20
WORD_TEXTS = 25
APART_PAIRS = 5000
MAX_MENTIONS = 200_000   # above this the summary shows no examples (the scorer's build grows with the run)


@dataclass(frozen=True)
class Example:
    """A pair of texts, why it was chosen, and its explanation."""

    why: str
    head: str
    tail: str
    explained: FusedPairExplanation


@dataclass(frozen=True)
class _Text:
    position: int            # its representative record in the run
    entities: frozenset[str]


class _Texts:
    """Mention texts as `kgpipe explain` reads them: a text stands for its own mentions only where the run's
    name index reads it as itself (not as a more frequent spelling of the same letters)."""

    def __init__(self, run: FusedRun) -> None:
        self.run = run
        self.found: dict[str, _Text | None] = {}

    def get(self, text: str) -> _Text | None:
        if text not in self.found:
            from kgpipe.errors import InputError

            try:
                record, side = self.run.names.find(text)
            except InputError:
                record = None
            self.found[text] = (_Text(self.run.position[record.id], frozenset(side.entities))
                                if record is not None and side.text == text else None)
        return self.found[text]

    def together(self, head: str, tail: str) -> bool:
        """Both texts read as themselves, as two records, with a common entity."""
        a, b = self.get(head), self.get(tail)
        return a is not None and b is not None and a.position != b.position and bool(a.entities & b.entities)

    def apart(self, head: str, tail: str) -> bool:
        """Both texts read as themselves, as two records, with no common entity."""
        a, b = self.get(head), self.get(tail)
        return a is not None and b is not None and a.position != b.position and not a.entities & b.entities

    def positions(self, pairs: list[tuple[str, str]]) -> tuple[list[int], list[int]]:
        found = [(self.get(h), self.get(t)) for h, t in pairs]
        return [a.position for a, _ in found if a], [b.position for _, b in found if b]


def _merged_candidates(run: FusedRun) -> list[tuple[int, str, str]]:
    """(merge rank, main text, other text): the largest merges first."""
    texts_of: dict[str, Counter[str]] = {}
    for record in run.records:
        entity = run.names.entity_of.get(record.id)
        if entity is not None:
            texts_of.setdefault(entity, Counter())[record.name] += 1
    merges = sorted((e for e, texts in texts_of.items() if len(texts) > 1),
                    key=lambda e: (-len(texts_of[e]), -sum(texts_of[e].values()), e))[:MERGES]
    out = []
    for rank, entity in enumerate(merges):
        ordered = sorted(texts_of[entity], key=lambda t: (-texts_of[entity][t], t))
        out += [(rank, ordered[0], other) for other in ordered[1:TEXTS_PER_MERGE + 1]]
    return out


def _words(key: str) -> Iterable[str]:
    return {w for w in key.split() if len(w) >= 3}


def _apart_candidates(run: FusedRun, texts: _Texts) -> list[tuple[str, str]]:
    from kgpipe.kg.normalize import normalize_name

    options = run.names.options
    by_word: dict[str, set[str]] = {}
    for name in sorted({r.name for r in run.records}):
        for word in _words(normalize_name(name, options)):
            by_word.setdefault(word, set()).add(name)
    order = sorted((w for w, names in by_word.items() if 2 <= len(names) <= WORD_TEXTS),
                   key=lambda w: (hashlib.blake2b(w.encode(), digest_size=8).digest(), w))
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for word in order:
        names = sorted(by_word[word])
        for i, head in enumerate(names):
            for tail in names[i + 1:]:
                if (head, tail) in seen or not texts.apart(head, tail):
                    continue
                seen.add((head, tail))
                pairs.append((head, tail))
                if len(pairs) >= APART_PAIRS:
                    return pairs
    return pairs


def example_pairs(run: FusedRun) -> list[Example]:
    """The run's example pairs (none to three), in the order of the module's description."""
    texts = _Texts(run)
    merged = [(rank, head, tail) for rank, head, tail in _merged_candidates(run) if texts.together(head, tail)]
    apart = _apart_candidates(run, texts)

    def best(pairs: list[tuple[str, str]], sign: float) -> tuple[str, str]:
        """The pair with the lowest (sign 1) or highest (sign -1) probability, ties by the texts."""
        score = run.explainer.probabilities(*texts.positions(pairs)).tolist()
        return min(zip(score, pairs, strict=True), key=lambda found: (sign * found[0], found[1]))[1]

    chosen: list[tuple[str, str, str]] = []
    if merged:
        chosen.append(("merged, the lowest probability", *best([(h, t) for _, h, t in merged], 1.0)))
    if apart:
        chosen.append(("kept apart, the highest probability", *best(apart, -1.0)))
    if merged and merged[0][0] == 0 and merged[0][1:] != chosen[0][1:]:
        chosen.append(("the largest merge", *merged[0][1:]))
    return [Example(why, head, tail, run.explain(head, tail)) for why, head, tail in chosen]
