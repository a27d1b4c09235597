"""Candidate pairs without comparing all pairs: MinHash LSH over character n-grams and word tokens, plus
exact-key blocks on acronyms and on rare words (names with identical normalised keys are already one name).

datasketch computes the MinHash signatures and the band/row split that best fits the Jaccard threshold.
The bands are then grouped by sorting one hash per band in numpy rather than in MinHashLSH's dictionaries:
those cost about 5.7 KB per name (575 MB for 100k names, measured), which at a million names would not fit
the 8 GB the fuse stage is allowed. Buckets larger than `max_bucket` (names made only of common words) pair
each member with its `window` neighbours in name order instead of with every other member. Finally each name
keeps only its `max_candidates` LSH pairs that share the most bands (cardinality node pruning, from the
meta-blocking literature): in a dense vocabulary the number of names within a given Jaccard of one name
grows with the corpus, and without a per-name cap so would the pairs per name.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from kgpipe.kg.codes import sorted_unique
from kgpipe.kg.features import NameFeatures
from kgpipe.kg.normalize import char_ngrams, name_tokens
from kgpipe.kg.resolution_config import BlockingConfig

if TYPE_CHECKING:
    from kgpipe.engine.base import Executor, Shared

log = logging.getLogger(__name__)

_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio) for combining band values


@dataclass
class BlockingResult:
    pairs: np.ndarray                    # (m, 2) int64 name indices, left < right, unique, sorted
    stats: dict[str, int | float] = field(default_factory=dict)


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that datasketch chooses for this threshold (weighing misses and false hits)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def minhash_signatures(shingle_sets: Sequence[Sequence[str]], num_perm: int, seed: int,
                       chunk: int = 20_000, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """A (names x num_perm) uint64 matrix of datasketch MinHash values."""
    from datasketch import MinHash

    signatures = np.empty((len(shingle_sets), num_perm), dtype=np.uint64)
    for start in range(0, len(shingle_sets), chunk):
        batch = [[s.encode("utf-8") for s in shingles] for shingles in shingle_sets[start:start + chunk]]
        for offset, minhash in enumerate(MinHash.bulk(batch, num_perm=num_perm, seed=seed)):
            signatures[start + offset] = minhash.hashvalues
        if progress is not None:
            progress(min(start + chunk, len(shingle_sets)))
    return signatures


def _band_pairs(band_hash: np.ndarray, order_key: np.ndarray, max_bucket: int, window: int) -> tuple[np.ndarray, int]:
    """Pair codes (left * n + right) of names sharing a band hash, and the number of oversized buckets.

    Generated in one vectorised step from the members of buckets with two or more names (most names are
    alone in a band), so the cost follows the pairs, not buckets times the largest bucket size."""
    n = len(band_hash)
    order = np.lexsort((order_key, band_hash))
    hashes = band_hash[order]
    starts = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
    sizes = np.diff(np.r_[starts, n])
    oversized = int((sizes > max_bucket).sum())
    shared = sizes >= 2
    if not shared.any():
        return np.zeros(0, dtype=np.int64), oversized
    # positions (in sorted order) of names in shared buckets, their bucket's size and their rank in it
    size_of = sizes[shared]
    first = starts[shared]
    pos = np.repeat(first, size_of) + (np.arange(int(size_of.sum())) - np.repeat(np.cumsum(size_of) - size_of, size_of))
    size = np.repeat(size_of, size_of)
    rank = pos - np.repeat(first, size_of)
    # each name pairs with the names after it in its bucket; in an oversized bucket only with its next
    # `window` neighbours (sorted-neighbourhood inside the bucket)
    forward = np.minimum(np.where(size > max_bucket, window, size - 1), size - 1 - rank)
    total = int(forward.sum())
    a_pos = np.repeat(pos, forward)
    step = np.arange(total) - np.repeat(np.cumsum(forward) - forward, forward) + 1
    a = order[a_pos]
    b = order[a_pos + step]
    return np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b), oversized


def common_words(keys: Sequence[str], config: BlockingConfig) -> frozenset[str]:
    """Words in more names than the limit (a share of the names, at most `common_word_names`, at least
    `max_bucket`): corpus statistics, computed once over all names."""
    df = Counter(w for key in keys for w in set(name_tokens(key)))
    limit = max(min(config.common_word_share * len(keys), config.common_word_names), config.max_bucket)
    return frozenset(w for w, c in df.items() if c > limit)


def shingle_sets(keys: Sequence[str], common: frozenset[str], ngram: int) -> list[list[str]]:
    """Character n-grams and words of each name, without the words most names share (unless that is all
    the name has): blocking should follow the words that tell names apart. A map over names."""
    out = []
    for key in keys:
        words = name_tokens(key)
        rare = [w for w in words if w not in common] or words
        out.append(char_ngrams(" ".join(rare), ngram) + ["\x00" + t for t in rare])
    return out


def blocking_signatures(keys: Sequence[str], common: frozenset[str], config: BlockingConfig, ngram: int,
                        progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The blocking keys of a chunk of names: their MinHash signatures (names x num_perm, uint64). A map over
    names: a name's signature depends on its key, the common words and the seed alone."""
    return minhash_signatures(shingle_sets(keys, common, ngram), config.num_perm, config.seed, progress=progress)


def name_ranks(keys: Sequence[str]) -> np.ndarray:
    """Each name's rank in sorted order: neighbours in an oversized bucket are alphabetical neighbours."""
    rank = np.empty(len(keys), dtype=np.int64)
    rank[np.argsort(np.asarray(keys, dtype=object), kind="stable")] = np.arange(len(keys))
    return rank


@dataclass(frozen=True)
class BandPairs:
    codes: np.ndarray   # sorted pair codes left * n + right (left < right) of names sharing the band
    oversized: int      # buckets larger than max_bucket (paired by neighbourhood only)


def band_hash(band: np.ndarray) -> np.ndarray:
    """Each name's hash of one LSH band: the band's columns of its signature (names x rows per band) folded."""
    folded = np.zeros(len(band), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in range(band.shape[1]):
            folded = folded * _MIX + band[:, column]
    return folded


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """band_hash of every band (bands x names, uint64): what the band tasks need of the signatures, in `rows`
    times less memory (the driver holds it for all names)."""
    return np.stack([band_hash(signatures[:, b * rows:(b + 1) * rows]) for b in range(bands)]) if bands else (
        np.zeros((0, len(signatures)), dtype=np.uint64))


def band_pairs(band: np.ndarray, ranks: np.ndarray, max_bucket: int, window: int) -> BandPairs:
    """Candidate pairs of one LSH band: `band` is the band's columns of every name's signature (names x
    rows per band), or already its band_hash (one value per name); names whose band hashes agree are paired.
    One call per band."""
    folded = band if band.ndim == 1 else band_hash(band)
    codes, oversized = _band_pairs(folded, ranks, max_bucket, window)
    return BandPairs(np.sort(codes), oversized)  # a pair once per band; sorted, so a range of names is a slice


def lsh_candidates(band_codes: Sequence[np.ndarray] | Shared[Sequence[np.ndarray]], n: int, max_candidates: int,
                   executor: Executor | None = None) -> tuple[np.ndarray, int]:
    """The pairs of all bands (each band's sorted pair codes), deduplicated and pruned to each name's best
    `max_candidates` (0: all); and the number before pruning.

    Two maps over ranges of names (kgpipe.kg.chunking.NAME_RANGE each) rather than one sort of every band's
    pairs: the pairs whose left name lies in a range, counted over the bands (a slice of each band's sorted
    codes); then, for the names of a range, the pairs they keep (each name's pairs as left and as right).
    The working memory of a task is its range's; the result is the same for any ranges.

    Pass the bands as a Shared (Executor.share) and drop your own copy: on a distributed engine the driver then
    holds neither the bands nor, while they are pruned, the counted pairs (the engine's store does); only the
    counted pairs between the two maps."""
    from kgpipe.engine.base import Shared
    from kgpipe.engine.local import LocalExecutor
    from kgpipe.kg import chunking

    executor = executor or LocalExecutor.in_process("resolve")
    ranges = [(s.start, s.stop) for s in chunking.spans(n, chunking.NAME_RANGE)]
    held = band_codes if isinstance(band_codes, Shared) else executor.share(list(band_codes))
    del band_codes
    counted = list(executor.map_tasks(_count_range, ranges, shared=(held, n), what="LSH pairs"))
    del held
    codes = np.concatenate([c for c, _ in counted]) if counted else np.zeros(0, dtype=np.int64)
    shared_bands = np.concatenate([w for _, w in counted]) if counted else np.zeros(0, dtype=np.uint16)
    del counted
    before = len(codes)
    if not (max_candidates and len(codes)):
        return codes, before
    index = executor.share(_PairIndex.of(codes, shared_bands, n))
    del codes, shared_bands
    kept = list(executor.map_tasks(_prune_range, ranges, shared=(index, max_candidates), what="LSH pruning"))
    del index
    # a pair both names keep comes from two ranges
    return sorted_unique(np.concatenate(kept), in_place=True) if kept else np.zeros(0, dtype=np.int64), before


@dataclass(frozen=True)
class _PairIndex:
    """The counted LSH pairs as the pruning tasks read them: sorted codes (left * n + right), the bands each
    pair shares, and the pairs ordered by right name (positions into codes; the pairs of right name r are
    by_right[right_start[r]:right_start[r + 1]])."""

    codes: np.ndarray
    shared_bands: np.ndarray
    by_right: np.ndarray
    right_start: np.ndarray
    n: int

    @classmethod
    def of(cls, codes: np.ndarray, shared_bands: np.ndarray, n: int) -> _PairIndex:
        return cls(codes, shared_bands, *order_by_right(codes, n), n)


def order_by_right(codes: np.ndarray, n: int, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """(by_right, right_start): the positions of `codes` (left * n + right) stably ordered by right name, and
    where each right name's run starts (n + 1 offsets); the same as a stable argsort of codes % n. A counting
    sort over chunks of codes: the working memory is a chunk's and the int32 result's, not the int64 argsort
    of every pair and its right ids (26 bytes a pair where this needs 4)."""
    small = np.int32 if len(codes) < 2**31 else np.int64
    counts = np.zeros(n, dtype=np.int64)
    for start in range(0, len(codes), chunk):
        counts += np.bincount(codes[start:start + chunk] % n, minlength=n)
    right_start = np.r_[0, np.cumsum(counts)]
    fill = right_start[:-1].copy()  # the next free slot of each right name's run
    by_right = np.empty(len(codes), dtype=small)
    for start in range(0, len(codes), chunk):
        right = codes[start:start + chunk] % n
        order = np.argsort(right, kind="stable")
        ranked = right[order]
        first = np.r_[True, ranked[1:] != ranked[:-1]]
        group_start = np.flatnonzero(first)
        rank = np.arange(len(ranked)) - np.repeat(group_start, np.diff(np.r_[group_start, len(ranked)]))
        by_right[fill[ranked] + rank] = start + order
        fill[ranked[group_start]] += np.diff(np.r_[group_start, len(ranked)])  # distinct names: no np.add.at
    return by_right, right_start


def _count_range(band_codes: Sequence[np.ndarray], n: int, names: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct pairs whose left name is in [names[0], names[1]), sorted, and the bands each was found in."""
    lo, hi = names[0] * n, names[1] * n
    parts = [codes[np.searchsorted(codes, lo):np.searchsorted(codes, hi)] for codes in band_codes]
    values = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    if not len(values):
        return values, np.zeros(0, dtype=np.uint16)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    return values[starts], np.diff(np.r_[starts, len(values)]).astype(np.uint16)  # bands <= num_perm <= 512


def _prune_range(index: _PairIndex, k: int, names: tuple[int, int]) -> np.ndarray:
    """Cardinality node pruning for the names in [names[0], names[1]): each keeps its k pairs (as left or right)
    that share the most bands, ties broken by the partner's (content) order; the sorted codes of the pairs kept
    by a name of the range."""
    a, b = names
    codes, n = index.codes, index.n
    as_left = np.arange(np.searchsorted(codes, a * n), np.searchsorted(codes, b * n))
    as_right = index.by_right[index.right_start[a]:index.right_start[b]].astype(np.int64)
    edge = np.concatenate([as_left, as_right])
    node = np.concatenate([codes[as_left] // n, codes[as_right] % n])
    partner = np.concatenate([codes[as_left] % n, codes[as_right] // n])
    order = np.lexsort((partner, -index.shared_bands[edge].astype(np.int64), node))
    node_sorted = node[order]
    starts = np.flatnonzero(np.r_[True, node_sorted[1:] != node_sorted[:-1]]) if len(order) else order
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return np.sort(codes[np.unique(edge[order[rank < k]])]) if len(order) else np.zeros(0, dtype=np.int64)


def signatures_chunk(common: frozenset[str], config: BlockingConfig, ngram: int, shape: tuple[int, int],
                     keys: Sequence[str]) -> np.ndarray:
    """The band hashes (bands x names) of a chunk of keys' blocking signatures, as an engine task: the common
    words and settings shared, shape (bands, rows per band), a chunk of keys the item."""
    bands, rows = shape
    return band_hashes(blocking_signatures(keys, common, config, ngram), bands, rows)


def band_task(hashes: np.ndarray, ranks: np.ndarray, settings: tuple[int, int], band: int) -> BandPairs:
    """band_pairs as an engine task: every name's band hashes and rank shared (sent once), the band number the
    item; settings: (max_bucket, window)."""
    max_bucket, window = settings
    return band_pairs(hashes[band], ranks, max_bucket, window)


def block_names(features: NameFeatures, config: BlockingConfig, ngram: int = 3,
                progress: Callable[[str, int, int | None], None] | None = None,
                executor: Executor | None = None) -> BlockingResult:
    """Candidate name pairs from MinHash LSH and acronym blocks: the driver over the steps above. Signatures
    (a map over chunks of names) and band pairs (one task per band) run on the executor (default: in this
    process); the common words, the merge of the bands and the acronym and token blocks run here."""
    from kgpipe.engine.local import LocalExecutor
    from kgpipe.kg import chunking

    executor = executor or LocalExecutor.in_process("resolve")
    keys = features.keys
    n = len(keys)
    stats: dict[str, int | float] = {"names": n, "all_pairs": n * (n - 1) // 2}
    if n < 2:
        stats.update(candidate_pairs=0, lsh_pairs=0, acronym_pairs=0, oversized_buckets=0)
        return BlockingResult(np.zeros((0, 2), dtype=np.int64), stats)
    n_bands, rows = lsh_params(config.lsh_threshold, config.num_perm)
    common = common_words(keys, config)
    hashes = np.empty((n_bands, n), dtype=np.uint64)
    spans = chunking.spans(n, chunking.NAMES)
    for span, chunk in zip(spans, executor.map_tasks(signatures_chunk, (keys[s] for s in spans),
                                                     shared=(common, config, ngram, (n_bands, rows)),
                                                     what="MinHash signatures"),
                           strict=True):
        hashes[:, span] = chunk
        if progress:
            progress("minhash", span.stop, n)
    ranks = name_ranks(keys)
    band_codes, oversized = [], 0
    for band in executor.map_tasks(band_task, range(n_bands), shared=(hashes, ranks,
                                                                      (config.max_bucket, config.window)),
                                   what="LSH bands"):
        band_codes.append(band.codes)
        oversized += band.oversized
        if progress:
            progress("lsh bands", len(band_codes), n_bands)
    del hashes
    # shared, then dropped here: on a distributed engine only its store holds the bands from now on
    held = executor.share(band_codes)
    del band_codes
    lsh_codes, lsh_before = lsh_candidates(held, n, config.max_candidates, executor)
    del held
    lsh = len(lsh_codes)
    acronym_codes = acronym_pairs(features, config) if config.acronym_blocks else np.zeros(0, dtype=np.int64)
    # each intermediate is dropped as soon as the next is made: at millions of names each is hundreds of MB
    codes = sorted_unique(np.concatenate([lsh_codes, acronym_codes]), in_place=True)
    del lsh_codes, acronym_codes
    lsh_or_acronym = len(codes)
    codes = sorted_unique(np.concatenate([codes, token_pairs(features, config.token_block_max)]), in_place=True)
    pairs = np.empty((len(codes), 2), dtype=np.int64)
    np.floor_divide(codes, n, out=pairs[:, 0])
    np.remainder(codes, n, out=pairs[:, 1])
    stats.update(bands=n_bands, rows_per_band=rows, common_words_unshingled=len(common),
                 lsh_pairs_before_pruning=int(lsh_before), lsh_pairs=lsh,
                 acronym_pairs=lsh_or_acronym - lsh, token_pairs=len(codes) - lsh_or_acronym,
                 candidate_pairs=len(pairs), oversized_buckets=oversized,
                 reduction=round(1 - len(pairs) / max(stats["all_pairs"], 1), 6))
    return BlockingResult(pairs, stats)




def token_pairs(features: NameFeatures, max_block: int, chunk: int = 100_000) -> np.ndarray:
    """Pair codes of names that share a word, an acronym token or a word one typo apart, for words found
    (with their typo neighbours) in 2..max_block names; commoner words are left to the LSH.

    The block of word w is the names having w or a word one typo from it: a column of features.soft_bits,
    built here a chunk of words at a time and only for words that can qualify (none of w and its typo
    neighbours in more than max_block names), never the whole typo-spread matrix: a common word has hundreds
    of typo neighbours in a dense vocabulary, and their blocks would each hold every name with that word."""
    from scipy import sparse

    from kgpipe.kg import chunking
    from kgpipe.kg.features import typo_spread

    n = len(features.keys)
    if max_block < 2 or n < 2:
        return np.zeros(0, dtype=np.int64)
    names_of_word = features.token_bits.T.tocsr()          # words x names
    size = names_of_word.shape[0]
    df = np.diff(names_of_word.indptr)
    reach = (typo_spread(features) + sparse.identity(size, format="csr")).tocsr()  # w, and words one typo off
    reach.sort_indices()
    widest = np.zeros(size, dtype=np.int64)                  # the largest df among w and its neighbours
    rows = np.flatnonzero(np.diff(reach.indptr))
    widest[rows] = np.maximum.reduceat(df[reach.indices], reach.indptr[rows])
    words = np.flatnonzero(widest <= max_block)
    codes = []
    for span in chunking.spans(len(words), chunk):
        blocks = reach[words[span]] @ names_of_word          # the blocks of these words: words x names
        sizes = np.diff(blocks.indptr)
        keep = np.flatnonzero((sizes >= 2) & (sizes <= max_block))
        if not len(keep):
            continue
        members = np.concatenate([blocks.indices[blocks.indptr[w]:blocks.indptr[w + 1]] for w in keep])
        groups = np.repeat(np.arange(len(keep)), sizes[keep])
        for d in range(1, int(sizes[keep].max())):
            same = groups[:-d] == groups[d:]
            a, b = members[:-d][same], members[d:][same]
            codes.append(np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b))
    return sorted_unique(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)


def acronym_pairs(features: NameFeatures, config: BlockingConfig) -> np.ndarray:
    """Names written as an acronym paired with names whose initials spell it (capped per key)."""
    n = len(features.keys)
    short = features.as_acronym
    long = features.initials
    codes = []
    by_key_long: dict[int, list[int]] = {}
    for i in np.flatnonzero(long >= 0):
        by_key_long.setdefault(int(long[i]), []).append(int(i))
    by_key_short: dict[int, list[int]] = {}
    for i in np.flatnonzero(short >= 0):
        by_key_short.setdefault(int(short[i]), []).append(int(i))
    limit = config.max_bucket
    for key, shorts in by_key_short.items():
        longs = by_key_long.get(key, [])[:limit]
        for a in shorts[:limit]:
            for b in longs:
                codes.append(min(a, b) * n + max(a, b))
    return sorted_unique(np.asarray(codes, dtype=np.int64))
