"""Resolution step: what the name features need from a chunk of names, as arrays with every string numbered
within the chunk, and the merge of chunks into the numbering one pass over all names gives.

A chunk is read on a worker; the driver receives arrays and one small vocabulary per chunk, never an object
per name. Merging numbers strings in order of first occurrence: each chunk's vocabulary, in its own order,
extends the one before, which is the order a single loop over the names would have met them in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kgpipe.kg.normalize import acronym_definitions, char_ngrams

if TYPE_CHECKING:
    from kgpipe.kg.features import NameReading, NameWords
    from kgpipe.kg.normalize import NormalizeOptions

PHRASE_KINDS = ("pre", "post", "qualifier")


def renumber(index: dict[str, int], vocabulary: Sequence[str]) -> np.ndarray:
    """The ids in `index` of a chunk's vocabulary, extending `index` in the chunk's order (int32)."""
    return np.fromiter((index.setdefault(s, len(index)) for s in vocabulary), dtype=np.int32, count=len(vocabulary))


def _remapped(remap: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return remap[ids] if len(ids) else ids.astype(np.int32)


@dataclass(frozen=True)
class Numbered:
    """Strings per name, numbered: `vocabulary` in order of first occurrence, `ids` every name's strings (in the
    order the name gives them, never a set's order: that changes with the hash seed, i.e. per worker process) as
    positions in it, `count` how many each name has. Arrays rather than a tuple of strings per name."""

    vocabulary: tuple[str, ...]
    ids: np.ndarray     # int32
    count: np.ndarray   # int32, one per name

    @classmethod
    def of(cls, rows: Iterable[Sequence[str]]) -> Numbered:
        """Number the strings of each row (a name's strings, distinct within it) over all rows."""
        index: dict[str, int] = {}
        ids: list[int] = []
        count: list[int] = []
        for row in rows:
            count.append(len(row))
            ids.extend([index.setdefault(s, len(index)) for s in row])
        return cls(tuple(index), np.asarray(ids, dtype=np.int32), np.asarray(count, dtype=np.int32))

    @classmethod
    def merge(cls, runs: Iterable[Numbered]) -> Numbered:
        """Consecutive runs as one, numbered as `of` numbers the whole."""
        index: dict[str, int] = {}
        ids, counts = [], []
        for run in runs:
            ids.append(_remapped(renumber(index, run.vocabulary), run.ids))
            counts.append(run.count)
        return cls(tuple(index), np.concatenate(ids) if ids else np.zeros(0, np.int32),
                   np.concatenate(counts) if counts else np.zeros(0, np.int32))

    def per_name(self) -> np.ndarray:
        """For rows of at most one string: its id per name, -1 where the name has none (int64)."""
        out = np.full(len(self.count), -1, dtype=np.int64)
        out[self.count > 0] = self.ids
        return out


def key_ngrams(keys: Sequence[str], ngram: int) -> Numbered:
    """The distinct character n-grams of each key (about twenty a name), numbered over the keys."""
    return Numbered.of(list(dict.fromkeys(char_ngrams(key, ngram))) for key in keys)


@dataclass(frozen=True)
class NameColumns:
    """What the feature matrices need from a run of names. A name's words (acronym tokens and the words they
    stand for included) and then its institution phrase's words share one vocabulary, numbered in that order,
    as the token columns are; acronym keys (the name read as an acronym, or its initials: one or the other),
    institution heads, numerals and n-grams each have their own."""

    vocabulary: tuple[str, ...]
    words: np.ndarray              # int32 vocabulary ids of every (name, word), name after name
    word_count: np.ndarray         # int32 per name
    part_of: np.ndarray            # int32 per (name, word): the comma-separated part the word comes from
    part_count: np.ndarray         # int32 per name
    phrase_words: tuple[np.ndarray, ...]   # per PHRASE_KINDS: vocabulary ids of the phrase's words of that kind
    phrase_count: tuple[np.ndarray, ...]   # per PHRASE_KINDS: int32 per name
    heads: Numbered                # at most one per name
    acronym_keys: Numbered         # at most one per name
    is_acronym: np.ndarray         # bool per name: its key is the name read as an acronym (else its initials)
    numbers: Numbered
    grams: Numbered                # character n-grams of the keys

    @classmethod
    def of(cls, readings: Sequence[NameReading], words: Sequence[NameWords], grams: Numbered) -> NameColumns:
        """The columns of a run of names from their readings and words (on the worker that read them)."""
        index: dict[str, int] = {}
        ids: list[int] = []
        part_of: list[int] = []
        phrase_ids: list[list[int]] = [[] for _ in PHRASE_KINDS]
        phrase_count: list[list[int]] = [[] for _ in PHRASE_KINDS]
        for reading, name in zip(readings, words, strict=True):
            ids.extend([index.setdefault(token, len(index)) for token in name.words])
            part_of.extend(name.part_of)
            found = reading.institution
            for k, kind in enumerate(PHRASE_KINDS):
                phrase = getattr(found, kind) if found is not None else ()
                phrase_ids[k].extend([index.setdefault(word, len(index)) for word in phrase])
                phrase_count[k].append(len(phrase))
        return cls(
            tuple(index), np.asarray(ids, dtype=np.int32), _int32([len(name.words) for name in words]),
            _int32(part_of), _int32([name.part_count for name in words]),
            tuple(_int32(x) for x in phrase_ids), tuple(_int32(x) for x in phrase_count),
            Numbered.of([r.institution.head] if r.institution is not None else () for r in readings),
            Numbered.of([key] if key is not None else () for key in (
                r.as_acronym if r.as_acronym is not None else r.initials for r in readings)),
            np.array([r.as_acronym is not None for r in readings], dtype=bool),
            Numbered.of(r.numbers for r in readings), grams)

    @classmethod
    def merge(cls, runs: Iterable[NameColumns]) -> NameColumns:
        """Consecutive runs as one, numbered as `of` over all their names would number them. Takes the runs as
        they come (an iterator of task results): each is renumbered and its vocabularies dropped."""
        index: dict[str, int] = {}
        parts: dict[str, list[np.ndarray]] = {}
        phrase_words: list[list[np.ndarray]] = [[] for _ in PHRASE_KINDS]
        phrase_count: list[list[np.ndarray]] = [[] for _ in PHRASE_KINDS]
        heads, keys, numbers, grams = [], [], [], []
        for run in runs:
            remap = renumber(index, run.vocabulary)
            for name in ("words", "word_count", "part_of", "part_count", "is_acronym"):
                value = getattr(run, name)
                parts.setdefault(name, []).append(_remapped(remap, value) if name == "words" else value)
            for k in range(len(PHRASE_KINDS)):
                phrase_words[k].append(_remapped(remap, run.phrase_words[k]))
                phrase_count[k].append(run.phrase_count[k])
            heads.append(run.heads)
            keys.append(run.acronym_keys)
            numbers.append(run.numbers)
            grams.append(run.grams)

        def joined(name: str, dtype: type) -> np.ndarray:
            chunks = parts.get(name, [])
            return np.concatenate(chunks) if chunks else np.zeros(0, dtype)

        return cls(tuple(index), joined("words", np.int32), joined("word_count", np.int32),
                   joined("part_of", np.int32), joined("part_count", np.int32),
                   tuple(np.concatenate(x) if x else np.zeros(0, np.int32) for x in phrase_words),
                   tuple(np.concatenate(x) if x else np.zeros(0, np.int32) for x in phrase_count),
                   Numbered.merge(heads), Numbered.merge(keys), joined("is_acronym", bool), Numbered.merge(numbers),
                   Numbered.merge(grams))


def _int32(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


# --- acronym definitions ---------------------------------------------------------------------------------

def _digest(words: Sequence[str]) -> int:
    """64 bits of the words (a collision between two expansions of the same initials has odds of about 2^-64
    per pair); not Python's hash, which changes per process."""
    return int.from_bytes(hashlib.blake2b("\x1f".join(words).encode(), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class Definitions:
    """The acronym definitions ((initials, words) each part of a name spells out) of a run of names, counted:
    one row per distinct definition, the words as a digest, with where it first occurs (name, then its place
    among that name's definitions). Arrays, since nearly every name of two or more words defines its initials."""

    initials: Numbered       # one initials id per distinct definition (count: ones)
    words: np.ndarray        # uint64 digest of the words
    count: np.ndarray        # int64 occurrences
    first_name: np.ndarray   # int64 global name index of the first occurrence
    first_part: np.ndarray   # int64 its position among that name's definitions

    @classmethod
    def of(cls, raw_names: Sequence[str], keys: Sequence[str], options: NormalizeOptions,
           start: int = 0) -> Definitions:
        """Count the definitions of names `start`, `start + 1`, ... (a map over chunks of names)."""
        rows: dict[tuple[str, int], list[int]] = {}   # (initials, digest) -> [count, name, part]
        for offset, (raw, key) in enumerate(zip(raw_names, keys, strict=True)):
            for part, (initials, words) in enumerate(acronym_definitions(raw, options, key)):
                row = rows.setdefault((initials, _digest(words)), [0, start + offset, part])
                row[0] += 1
        table = np.array(list(rows.values()), dtype=np.int64).reshape(-1, 3)
        return cls(Numbered.of([initials] for initials, _ in rows),
                   np.array([digest for _, digest in rows], dtype=np.uint64), table[:, 0], table[:, 1], table[:, 2])


def acronym_expansions(runs: Iterable[Definitions], raw_names: Sequence[str], keys: Sequence[str],
                       options: NormalizeOptions) -> dict[str, tuple[str, ...]]:
    """Acronym -> the words it abbreviates, learnt from the names themselves: the expansion seen most often (the
    first seen among equals), kept only when it accounts for at least half of the definitions of those initials
    (else it is ambiguous). The words of each winner are read again from the name where it first occurs."""
    merged = list(runs)
    initials = Numbered.merge(run.initials for run in merged)
    which = initials.ids.astype(np.int64)
    if not len(which):
        return {}
    words = np.concatenate([run.words for run in merged])
    count = np.concatenate([run.count for run in merged])
    first = np.stack([np.concatenate([run.first_name for run in merged]),
                      np.concatenate([run.first_part for run in merged])], axis=1)
    # one row per distinct (initials, words): counts summed, the earliest occurrence kept
    order = np.lexsort((first[:, 1], first[:, 0], words, which))
    which, words, count, first = which[order], words[order], count[order], first[order]
    starts = np.flatnonzero(np.r_[True, (which[1:] != which[:-1]) | (words[1:] != words[:-1])])
    which, words, first = which[starts], words[starts], first[starts]
    count = np.add.reduceat(count, starts)
    # per initials: the most frequent, ties to the first seen
    order = np.lexsort((first[:, 1], first[:, 0], -count, which))
    which, words, count, first = which[order], words[order], count[order], first[order]
    group = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])
    total = np.add.reduceat(count, group)
    out = {}
    for g, all_of_them in zip(group.tolist(), total.tolist(), strict=True):
        if count[g] * 2 < all_of_them:
            continue
        name, part = first[g].tolist()
        found, spelt = acronym_definitions(raw_names[name], options, keys[name])[part]
        if _digest(spelt) != int(words[g]) or found != initials.vocabulary[which[g]]:
            raise AssertionError(f"acronym definition {found!r} of name {name} read differently the second time")
        out[found] = spelt
    return out
