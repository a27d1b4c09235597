"""Resolution step: name features, in three stages. A map reads each unique name once (tokens, acronyms,
parts, institution phrase, n-grams); corpus statistics are computed once from what it read (acronym
expansions, token vocabulary, IDF, typo word pairs, id tables); then the feature matrices are assembled.

Reading a name looks at that name alone, so `read_names` and `name_words` give the same result for any split
of the names into chunks; every id and column is numbered in name order by the statistics step, as the one
loop that preceded these steps numbered them, so the scores and their floating-point sums are unchanged.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kgpipe.kg.institution import InstitutionPhrase, institution_core
from kgpipe.kg.normalize import (
    acronym_definitions,
    acronyms_used,
    char_ngrams,
    is_acronym_like,
    name_parts,
    name_tokens,
    normalize_name,
)
from kgpipe.kg.resolution_config import ResolutionConfig

if TYPE_CHECKING:
    from kgpipe.engine.base import Executor

_PHRASE_KINDS = ("pre", "post", "qualifier")
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
    definitions: tuple[tuple[str, tuple[str, ...]], ...]  # (initials, words) each part spells out
    # per comma-separated part (None: one part): its words and its acronyms
    parts: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] | None
    institution: InstitutionPhrase | None
    as_acronym: str | None                  # the name read as an acronym ('mit' for M.I.T.)
    initials: str | None                    # the initials of its words ('mit' for Massachusetts Inst...)
    numbers: tuple[str, ...]                # distinct numerals, leading zeros dropped, in text order


@dataclass(frozen=True)
class Grams:
    """The distinct character n-grams of a run of names, numbered: `vocabulary` in order of first occurrence,
    `ids` every name's n-grams (in text order, never a set's order: that changes with the hash seed, i.e. per
    worker process) as positions in it, `count` how many each name has. Arrays rather than a tuple of strings
    per name: a name has about twenty n-grams, and millions of names would hold them as Python strings."""

    vocabulary: tuple[str, ...]
    ids: np.ndarray     # int32
    count: np.ndarray   # int32, one per name

    @classmethod
    def of(cls, keys: Sequence[str], ngram: int) -> Grams:
        """The n-grams of these keys (a map over names: numbered within the run)."""
        index: dict[str, int] = {}
        ids: list[int] = []
        count = np.empty(len(keys), dtype=np.int32)
        for i, key in enumerate(keys):
            grams = dict.fromkeys(char_ngrams(key, ngram))
            count[i] = len(grams)
            ids.extend([index.setdefault(gram, len(index)) for gram in grams])
        return cls(tuple(index), np.asarray(ids, dtype=np.int32), count)

    @classmethod
    def merge(cls, runs: Sequence[Grams]) -> Grams:
        """Consecutive runs as one, numbered in order of first occurrence over all of them (the numbering
        `of` gives the whole): each run's vocabulary, in its own order, extends the one before."""
        index: dict[str, int] = {}
        ids, counts = [], []
        for run in runs:
            remap = np.array([index.setdefault(gram, len(index)) for gram in run.vocabulary], dtype=np.int32)
            ids.append(remap[run.ids] if len(run.ids) else run.ids)
            counts.append(run.count)
        return cls(tuple(index), np.concatenate(ids) if ids else np.zeros(0, np.int32),
                   np.concatenate(counts) if counts else np.zeros(0, np.int32))


@dataclass(frozen=True, slots=True)
class NameWords:
    """A name's token columns before numbering: its words (acronyms as '#uc' tokens, followed by the words
    they stand for), the part each word comes from, and the number of parts."""

    words: tuple[str, ...]
    part_of: tuple[int, ...]
    part_count: int


@dataclass(frozen=True)
class CorpusStats:
    """Computed once over all names: acronym expansions, the token vocabulary (column order) with its IDF,
    words one typo apart, and the id tables of n-grams, numerals, acronym keys and institution heads."""

    expansions: dict[str, tuple[str, ...]]
    vocabulary: tuple[str, ...]
    idf: np.ndarray
    typo_pairs: tuple[np.ndarray, np.ndarray, np.ndarray]   # word a, word b, credit (a < b)
    grams: Grams               # every name's n-grams, numbered over all names
    number_vocabulary: tuple[str, ...]
    acronym_keys: tuple[str, ...]
    heads: tuple[str, ...]
    word_columns: np.ndarray   # the vocabulary column of every (name, word), in name order: numbered here anyway


def read_names(raw_names: Sequence[str], keys: Sequence[str], config: ResolutionConfig) -> list[NameReading]:
    """Read each name (a map over names: `raw_names[i]` is an original spelling, `keys[i]` its key)."""
    options = config.normalize.options()
    institutions = config.institution_mismatch < 1
    head_words = frozenset(config.institution_heads)  # parsed only where the key has a head word
    expand = config.acronyms and config.expand_acronyms
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
            key, tuple(tokens), tuple(acronyms_used(raw, options)) if config.acronyms else (),
            tuple(acronym_definitions(raw, options, key)) if expand else (), parts, institution, as_acronym,
            initials, tuple(dict.fromkeys(w.lstrip("0") or "0" for w in key.split() if w.isdigit()))))
    return out


def acronym_expansions(readings: Sequence[NameReading]) -> dict[str, tuple[str, ...]]:
    """Acronym -> the words it abbreviates, learnt from the names themselves: the expansion seen most often,
    kept only when it accounts for at least half of the parts with those initials (else it is ambiguous)."""
    seen: dict[str, Counter] = {}
    for reading in readings:
        for initials, words in reading.definitions:
            seen.setdefault(initials, Counter())[words] += 1
    out = {}
    for initials, counts in seen.items():
        words, count = counts.most_common(1)[0]
        if count * 2 >= sum(counts.values()):
            out[initials] = words
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


def corpus_statistics(readings: Sequence[NameReading], words: Sequence[NameWords], grams: Sequence[Grams],
                      config: ResolutionConfig, expansions: dict[str, tuple[str, ...]]) -> CorpusStats:
    """Vocabularies and id tables numbered in name order (a name's words, then its institution phrase's), IDF
    over the names (smoothed; acronym tokens weighted), and the word pairs one typo apart. `grams`: the n-grams
    of consecutive runs of the names (Grams.of per chunk), numbered here over all of them."""
    vocab: dict[str, int] = {}
    acronym_ids: dict[str, int] = {}
    head_ids: dict[str, int] = {}
    number_ids: dict[str, int] = {}
    columns: list[int] = []  # the column of every (name, word): a name's words are distinct
    for reading, name in zip(readings, words, strict=True):
        columns.extend([vocab.setdefault(token, len(vocab)) for token in name.words])
        found = reading.institution
        if found is not None:
            head_ids.setdefault(found.head, len(head_ids))
            for kind in _PHRASE_KINDS:
                for word in getattr(found, kind):
                    vocab.setdefault(word, len(vocab))
        key = reading.as_acronym if reading.as_acronym is not None else reading.initials
        if key is not None:  # one or the other, never both
            acronym_ids.setdefault(key, len(acronym_ids))
        for number in reading.numbers:
            number_ids.setdefault(number, len(number_ids))
    vocabulary = tuple(vocab)
    n = len(readings)
    token_weight = np.array([config.acronym_token_weight if t.startswith("#") else 1.0 for t in vocabulary])
    counts = np.bincount(np.asarray(columns, dtype=np.int64), minlength=len(vocabulary)).astype(np.float64)
    # smoothed IDF over the names being resolved: common words (University, of, Inc) weigh little
    idf = (np.log((1.0 + n) / (1.0 + counts)) + config.idf_offset) * (token_weight if len(token_weight) else 1.0)
    typo = typo_word_pairs(vocabulary, config.typo_min_length) if config.typo_words else []
    a, b, credit = ((np.array(x) for x in zip(*typo, strict=True)) if typo else
                    (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)))
    return CorpusStats(expansions, vocabulary, idf, (a, b, credit), Grams.merge(grams), tuple(number_ids),
                       tuple(acronym_ids), tuple(head_ids), np.asarray(columns, dtype=np.int64))


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


def feature_matrices(readings: Sequence[NameReading], words: Sequence[NameWords], stats: CorpusStats,
                     config: ResolutionConfig) -> NameFeatures:
    """The sparse matrices and id arrays the scorer and blocking read, from the readings and the statistics."""
    n = len(readings)
    size = max(len(stats.vocabulary), 1)
    word_count = np.array([len(name.words) for name in words], dtype=np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), word_count)
    cols = stats.word_columns
    bits = _csr_rows(word_count, cols, None, (n, size))
    weighted = _csr_rows(word_count, cols, stats.idf[cols], (n, size))
    segment_start = np.r_[0, np.cumsum([name.part_count for name in words])].astype(np.int64)
    part_rows = segment_start[rows] + np.array(
        [p for name in words for p in name.part_of], dtype=np.int64)
    segments = _csr(part_rows, cols, stats.idf[cols], (int(segment_start[-1]), size))
    grams = _csr_rows(stats.grams.count, stats.grams.ids, None, (n, max(len(stats.grams.vocabulary), 1)))
    number_of = {x: i for i, x in enumerate(stats.number_vocabulary)}
    numbers = _ones([i for i, r in enumerate(readings) for _ in r.numbers],
                    [number_of[x] for r in readings for x in r.numbers], (n, max(len(number_of), 1)))
    acronym_of = {k: i for i, k in enumerate(stats.acronym_keys)}
    as_acronym = np.array([acronym_of[r.as_acronym] if r.as_acronym is not None else -1 for r in readings],
                          dtype=np.int64)
    initials = np.array([acronym_of[r.initials] if r.initials is not None else -1 for r in readings],
                        dtype=np.int64)
    typo_codes = typo_credit = has_typo = None
    a, b, credit = stats.typo_pairs
    if len(a):
        codes = np.r_[a, b].astype(np.int64) * size + np.r_[b, a]
        order = np.argsort(codes)
        typo_codes, typo_credit = codes[order], np.r_[credit, credit][order]
        has_typo = np.zeros(size, dtype=bool)
        has_typo[a] = has_typo[b] = True
    head = phrases = None
    if config.institution_mismatch < 1:
        vocab = {t: i for i, t in enumerate(stats.vocabulary)}
        head_of = {h: i for i, h in enumerate(stats.heads)}
        head = np.array([head_of[r.institution.head] if r.institution is not None else -1 for r in readings],
                        dtype=np.int64)
        phrases = {kind: _ones([i for i, r in enumerate(readings) if r.institution is not None
                                for _ in getattr(r.institution, kind)],
                               [vocab[w] for r in readings if r.institution is not None
                                for w in getattr(r.institution, kind)], (n, size))
                   for kind in _PHRASE_KINDS}
    return NameFeatures([r.key for r in readings], weighted, np.asarray(weighted.sum(axis=1)).ravel(), bits,
                        grams, np.asarray(grams.sum(axis=1)).ravel(), as_acronym, initials, numbers, segments,
                        segment_start, np.asarray(segments.sum(axis=1)).ravel(), typo_codes, typo_credit, has_typo,
                        head, phrases)


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


def read_name_chunk(config: ResolutionConfig, chunk: tuple[Sequence[str], Sequence[str]]
                    ) -> tuple[list[NameReading], Grams]:
    """read_names and the keys' n-grams as an engine task: fn(*shared, item) with the config shared and (raw
    names, keys) the item."""
    raw_names, keys = chunk
    return read_names(raw_names, keys, config), Grams.of(keys, config.ngram)


def name_words_chunk(expansions: dict[str, tuple[str, ...]], readings: Sequence[NameReading]) -> list[NameWords]:
    """name_words as an engine task: the expansions shared, a chunk of readings the item."""
    return name_words(readings, expansions)


def featurize_names(raw_names: Sequence[str], config: ResolutionConfig,
                    keys: Sequence[str] | None = None, executor: Executor | None = None) -> NameFeatures:
    """Features of unique names; `raw_names[i]` is one original spelling of name i (for acronym casing),
    `keys[i]` its normalised key if already known. The driver over the steps above: reading names and
    assembling their words are maps over chunks of names on the executor (default: in this process); the
    statistics and the matrices are computed here, once."""
    from kgpipe.engine.local import LocalExecutor
    from kgpipe.kg import chunking

    executor = executor or LocalExecutor.in_process("resolve")
    options = config.normalize.options()
    keys = list(keys) if keys is not None else [normalize_name(name, options) for name in raw_names]
    spans = chunking.spans(len(keys), chunking.NAMES)
    readings: list[NameReading] = []
    grams: list[Grams] = []
    for chunk_readings, chunk_grams in executor.map_tasks(read_name_chunk, ((raw_names[s], keys[s]) for s in spans),
                                                          shared=(config,), what="read names"):
        readings.extend(chunk_readings)
        grams.append(chunk_grams)
    expansions = acronym_expansions(readings) if config.acronyms and config.expand_acronyms else {}
    words: list[NameWords] = chunking.flat_map(executor, name_words_chunk, (readings[s] for s in spans),
                                               shared=(expansions,), what="name words")
    return feature_matrices(readings, words, corpus_statistics(readings, words, grams, config, expansions), config)
