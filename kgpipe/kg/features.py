"""Resolution step: name features, in three stages. A map reads each unique name (tokens, acronyms, parts,
institution phrase, n-grams) and returns its chunk as arrays, every string numbered within the chunk; the
chunks are merged into one numbering and the corpus statistics computed from it (acronym expansions, IDF, typo
word pairs); then the feature matrices are assembled.

Reading a name looks at that name alone, so the map gives the same result for any split of the names into
chunks; merging numbers every string in order of first occurrence over all names, as the one loop that preceded
these steps did, so the columns, the scores and their floating-point sums are unchanged. Nothing per name is
held as Python objects outside a chunk's task: at millions of names the driver holds arrays only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kgpipe.kg.institution import InstitutionPhrase, institution_core
from kgpipe.kg.name_columns import PHRASE_KINDS, Definitions, NameColumns, acronym_expansions, key_ngrams
from kgpipe.kg.normalize import (
    acronyms_used,
    is_acronym_like,
    name_parts,
    name_tokens,
    normalize_name,
)
from kgpipe.kg.resolution_config import ResolutionConfig

if TYPE_CHECKING:
    from kgpipe.engine.base import Executor
    from kgpipe.kg.normalize import NormalizeOptions

_SEGMENTED = re.compile(r"[,;/()\[\]]|\s[-–—]+\s|--+")


@dataclass
class NameFeatures:
    """Per unique name: normalised key, weighted token matrix, n-gram matrix and acronym ids."""

    keys: list[str]
    tokens: Any             # scipy CSR (names x token vocabulary), IDF weights
    token_mass: np.ndarray  # row sums of `tokens`
    token_bits: Any         # the same pattern with ones
    grams: Any              # CSR (names x n-gram vocabulary), ones
    gram_count: np.ndarray
    as_acronym: np.ndarray  # id of the name read as an acronym ('mit' for MIT), -1 if not acronym-like
    initials: np.ndarray    # id of the initials of its words ('mit' for Massachusetts Institute of ...), -1
    numbers: Any            # CSR (names x numbers): the numerals in each name
    segments: Any           # CSR (parts x token vocabulary), IDF weights: each token of a name in one part
    segment_start: np.ndarray  # first row of `segments` per name (n + 1 offsets)
    segment_mass: np.ndarray   # row sums of `segments`
    typo_codes: np.ndarray | None = None     # sorted codes u * vocabulary + t of words one typo apart
    typo_credit: np.ndarray | None = None    # the credit of each (at most 1)
    has_typo: np.ndarray | None = None       # per word: whether any word is one typo from it
    head: np.ndarray | None = None           # class id of the name's institution head word, -1 if none
    institution: dict[str, Any] | None = None  # 'pre', 'post', 'qualifier': CSR (names x token vocabulary) of
    #                                            the institution phrase's words of that kind, ones


@dataclass(frozen=True, slots=True)
class NameReading:
    """What the later steps need from one name's text, read once."""

    key: str
    tokens: tuple[str, ...]                 # identity-bearing words of the key
    acronyms: tuple[str, ...]               # words written as acronyms ('uc' in 'UC Berkeley')
    # per comma-separated part (None: one part): its words and its acronyms
    parts: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] | None
    institution: InstitutionPhrase | None
    as_acronym: str | None                  # the name read as an acronym ('mit' for M.I.T.)
    initials: str | None                    # the initials of its words ('mit' for Massachusetts Inst...)
    numbers: tuple[str, ...]                # distinct numerals, leading zeros dropped, in text order


@dataclass(frozen=True, slots=True)
class NameWords:
    """A name's token columns before numbering: its words (acronyms as '#uc' tokens, followed by the words
    they stand for), the part each word comes from, and the number of parts."""

    words: tuple[str, ...]
    part_of: tuple[int, ...]
    part_count: int


def read_names(raw_names: Sequence[str], keys: Sequence[str], config: ResolutionConfig) -> list[NameReading]:
    """Read each name (a map over names: `raw_names[i]` is an original spelling, `keys[i]` its key)."""
    options = config.normalize.options()
    institutions = config.institution_mismatch < 1
    head_words = frozenset(config.institution_heads)  # parsed only where the key has a head word
    out = []
    for raw, key in zip(raw_names, keys, strict=True):
        # interned: a handful of words recur across millions of names, held once (and pickled once per chunk)
        tokens = list(map(sys.intern, name_tokens(key, options)))
        parts = None
        if _SEGMENTED.search(raw):
            found_parts = name_parts(raw, options)
            if len(found_parts) >= 2:
                parts = tuple((tuple(name_tokens(" ".join(words), options)),
                               tuple(acronyms_used(part, options)) if config.acronyms else ())
                              for part, words in found_parts)
        institution = (institution_core(raw, options, config.institution_heads, config.unit_words)
                       if institutions and not head_words.isdisjoint(tokens) else None)
        as_acronym = initials = None
        if config.acronyms:
            if is_acronym_like(raw):
                as_acronym = key.replace(" ", "")
            elif len(tokens) >= 2:
                initials = "".join(t[0] for t in tokens)
        out.append(NameReading(
            key, tuple(tokens), tuple(acronyms_used(raw, options)) if config.acronyms else (), parts, institution,
            as_acronym, initials, tuple(dict.fromkeys(w.lstrip("0") or "0" for w in key.split() if w.isdigit()))))
    return out


def _words(tokens: Sequence[str], acronyms: Sequence[str], expansions: dict[str, tuple[str, ...]]) -> list[str]:
    # acronyms written as such ('UC' in 'UC Berkeley') are tokens of their own, and stand for the words
    # they abbreviate elsewhere among the names; two spelt-out names with the same initials share nothing
    extra = ["#" + acronym for acronym in acronyms]
    for acronym in acronyms if expansions else []:
        extra.extend(expansions.get(acronym, ()))
    return list(dict.fromkeys([*tokens, *extra]))


def name_words(readings: Sequence[NameReading], expansions: dict[str, tuple[str, ...]]) -> list[NameWords]:
    """Each name's words and the part each comes from (a map over names, with the expansions broadcast)."""
    out = []
    for reading in readings:
        words = _words(reading.tokens, reading.acronyms, expansions)
        if reading.parts is None:
            out.append(NameWords(tuple(words), (0,) * len(words), 1))
            continue
        where: dict[str, int] = {}  # the first part that has the word
        for index, (part_tokens, part_acronyms) in enumerate(reading.parts):
            for token in _words(part_tokens, part_acronyms, expansions):
                where.setdefault(token, index)
        part_of = [where.get(token, 0) for token in words]
        out.append(NameWords(tuple(words), tuple(part_of), max(part_of) + 1))
    return out


def typo_word_pairs(words: Sequence[str], min_length: int = 5, max_group: int = 50) -> list[tuple[int, int, float]]:
    """(i, j, credit) for words one edit apart (substitution, insertion, deletion or transposition; two edits
    for words of 8+ letters), found through their one-deletion variants instead of comparing all pairs."""
    from rapidfuzz.distance import OSA

    groups: dict[str, list[int]] = {}
    for i, word in enumerate(words):
        if len(word) < min_length or not word.isalpha():
            continue
        for variant in {word, *(word[:k] + word[k + 1:] for k in range(len(word)))}:
            groups.setdefault(variant, []).append(i)
    candidates: set[tuple[int, int]] = set()
    for members in groups.values():
        if 1 < len(members) <= max_group:
            candidates.update((a, b) for x, a in enumerate(members) for b in members[x + 1:])
    out = []
    for a, b in sorted(candidates):
        wa, wb = words[a], words[b]
        edits = OSA.distance(wa, wb)
        if edits <= 1 or (edits == 2 and min(len(wa), len(wb)) >= 8):
            out.append((a, b, 1.0 - edits / max(len(wa), len(wb))))
    return out


def _csr(rows: Any, cols: Any, vals: Any, shape: tuple[int, int]):
    from scipy import sparse

    data = np.ones(len(rows), dtype=np.float64) if vals is None else np.asarray(vals, dtype=np.float64)
    matrix = sparse.csr_matrix((data, (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
                               shape=shape)
    matrix.sum_duplicates()
    return matrix


def _ones(rows: Any, cols: Any, shape: tuple[int, int]):
    matrix = _csr(rows, cols, None, shape)
    matrix.data[:] = 1.0
    return matrix


def _csr_rows(counts: Any, cols: np.ndarray, vals: np.ndarray | None, shape: tuple[int, int]):
    """_csr (or _ones, vals None) for entries given row by row: `counts[i]` entries of row i, their columns
    distinct within the row. Built as CSR directly, without the row and column arrays in int64 and the
    conversion from COO that _csr pays (tens of millions of n-grams at a few million names); the same
    canonical matrix (sorted columns per row)."""
    from scipy import sparse

    indptr = np.r_[0, np.cumsum(np.asarray(counts, dtype=np.int64))]
    index_type = np.int32 if max(shape) < 2**31 and len(cols) < 2**31 else np.int64
    data = np.ones(len(cols), dtype=np.float64) if vals is None else np.asarray(vals, dtype=np.float64)
    matrix = sparse.csr_matrix((data, np.asarray(cols, dtype=index_type), indptr.astype(index_type)), shape=shape)
    matrix.sort_indices()
    return matrix


def feature_matrices(keys: Sequence[str], columns: NameColumns, config: ResolutionConfig) -> NameFeatures:
    """The corpus statistics (IDF over the names, smoothed, acronym tokens weighted; word pairs one typo apart)
    and the sparse matrices and id arrays the scorer and blocking read, from the merged columns of the names."""
    n = len(keys)
    vocabulary = columns.vocabulary
    size = max(len(vocabulary), 1)
    word_count = columns.word_count.astype(np.int64)
    cols = columns.words.astype(np.int64)
    token_weight = np.array([config.acronym_token_weight if t.startswith("#") else 1.0 for t in vocabulary])
    counts = np.bincount(cols, minlength=len(vocabulary)).astype(np.float64)
    # smoothed IDF over the names being resolved: common words (University, of, Inc) weigh little
    idf = (np.log((1.0 + n) / (1.0 + counts)) + config.idf_offset) * (token_weight if len(token_weight) else 1.0)
    bits = _csr_rows(word_count, cols, None, (n, size))
    weighted = _csr_rows(word_count, cols, idf[cols], (n, size))
    segment_start = np.r_[0, np.cumsum(columns.part_count.astype(np.int64))].astype(np.int64)
    part_rows = np.repeat(segment_start[:-1], word_count) + columns.part_of
    segments = _csr(part_rows, cols, idf[cols], (int(segment_start[-1]), size))
    grams = _csr_rows(columns.grams.count, columns.grams.ids, None, (n, max(len(columns.grams.vocabulary), 1)))
    numbers = _ones(_rows_of(columns.numbers.count), columns.numbers.ids.astype(np.int64),
                    (n, max(len(columns.numbers.vocabulary), 1)))
    key = columns.acronym_keys.per_name()
    as_acronym = np.where(columns.is_acronym, key, -1)
    initials = np.where(columns.is_acronym, -1, key)
    typo_codes = typo_credit = has_typo = None
    typo = typo_word_pairs(vocabulary, config.typo_min_length) if config.typo_words else []
    if typo:
        a, b, credit = (np.array(x) for x in zip(*typo, strict=True))
        codes = np.r_[a, b].astype(np.int64) * size + np.r_[b, a]
        order = np.argsort(codes)
        typo_codes, typo_credit = codes[order], np.r_[credit, credit][order]
        has_typo = np.zeros(size, dtype=bool)
        has_typo[a] = has_typo[b] = True
    head = phrases = None
    if config.institution_mismatch < 1:
        head = columns.heads.per_name()
        phrases = {kind: _ones(_rows_of(count), ids.astype(np.int64), (n, size)) for kind, ids, count in zip(
            PHRASE_KINDS, columns.phrase_words, columns.phrase_count, strict=True)}
    return NameFeatures(list(keys), weighted, np.asarray(weighted.sum(axis=1)).ravel(), bits,
                        grams, np.asarray(grams.sum(axis=1)).ravel(), as_acronym, initials, numbers, segments,
                        segment_start, np.asarray(segments.sum(axis=1)).ravel(), typo_codes, typo_credit, has_typo,
                        head, phrases)


def _rows_of(count: np.ndarray) -> np.ndarray:
    """The row index of every entry of rows with `count` entries each."""
    return np.repeat(np.arange(len(count), dtype=np.int64), count)


def typo_spread(features: NameFeatures):
    """Words x words CSR: the credit of each word one typo from another (empty without typo words)."""
    size = features.token_bits.shape[1]
    if features.typo_codes is None or features.typo_credit is None:
        return _csr([], [], [], (size, size))
    return _csr(features.typo_codes // size, features.typo_codes % size, features.typo_credit, (size, size))


def soft_bits(features: NameFeatures):
    """token_bits spread to the words one typo away (credit < 1), at most 1 per word: names x words. Never
    stored (in a dense vocabulary a word has hundreds of typo neighbours, so its rows are long); the scorer
    computes what it needs pair by pair (similarity.soft_dot) and blocking reads it a few words at a time.
    The reference both are tested against."""
    bits = features.token_bits
    soft = bits + bits @ typo_spread(features)
    soft.data = np.minimum(soft.data, 1.0)
    return soft


def count_definitions_chunk(options: NormalizeOptions, chunk: tuple[Sequence[str], Sequence[str], int]
                            ) -> Definitions:
    """Definitions.of as an engine task: (raw names, keys, index of the first) the item."""
    raw_names, keys, start = chunk
    return Definitions.of(raw_names, keys, options, start)


def name_columns_chunk(config: ResolutionConfig, expansions: dict[str, tuple[str, ...]],
                       chunk: tuple[Sequence[str], Sequence[str]]) -> NameColumns:
    """Read a chunk of names (raw names, keys) and return its columns, as an engine task: the config and the
    acronym expansions shared."""
    raw_names, keys = chunk
    readings = read_names(raw_names, keys, config)
    return NameColumns.of(readings, name_words(readings, expansions), key_ngrams(keys, config.ngram))


def featurize_names(raw_names: Sequence[str], config: ResolutionConfig,
                    keys: Sequence[str] | None = None, executor: Executor | None = None) -> NameFeatures:
    """Features of unique names; `raw_names[i]` is one original spelling of name i (for acronym casing),
    `keys[i]` its normalised key if already known. The driver over the steps above: counting acronym
    definitions and reading names are maps over chunks of names on the executor (default: in this process);
    their results are merged here as they arrive, and the statistics and matrices computed once."""
    from kgpipe.engine.local import LocalExecutor
    from kgpipe.kg import chunking

    executor = executor or LocalExecutor.in_process("resolve")
    options = config.normalize.options()
    keys = list(keys) if keys is not None else [normalize_name(name, options) for name in raw_names]
    spans = chunking.spans(len(keys), chunking.NAMES)
    expansions: dict[str, tuple[str, ...]] = {}
    if config.acronyms and config.expand_acronyms:
        counted = executor.map_tasks(count_definitions_chunk, ((raw_names[s], keys[s], s.start) for s in spans),
                                     shared=(options,), what="acronym definitions")
        expansions = acronym_expansions(counted, raw_names, keys, options)
    columns = NameColumns.merge(executor.map_tasks(
        name_columns_chunk, ((raw_names[s], keys[s]) for s in spans), shared=(config, expansions),
        what="read names"))
    return feature_matrices(keys, columns, config)
