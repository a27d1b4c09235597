"""Fellegi-Sunter match weights learned without labels: u probabilities (how often each comparison level occurs
among pairs that do not match) counted on random pairs, m probabilities (among pairs that match) and the prior
(lambda, the share of candidate pairs that match) fitted by expectation-maximisation over candidate pairs.

A pair's match weight is log2(lambda / (1 - lambda)) plus log2(m / u) of each comparison's level (a missing
value counts 0), its match probability 2^w / (1 + 2^w). Level arrays are (pairs x comparisons) int8, -1 for
missing (kgpipe.kg.comparisons). EM runs on the distinct level patterns with their counts, so a million pairs
cost what a few hundred patterns do. Everything is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(values: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit hash of each int64 value (splitmix64's finaliser), seeded: the same value, the same hash."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(seed % 2**63) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_sample(codes: np.ndarray, keep: int, seed: int) -> np.ndarray:
    """Positions of about `keep` of the codes (all when there are no more), chosen by their hash: a code is kept
    or not whatever else is in the array, so a sample drawn from a grown set keeps the pairs it had."""
    if len(codes) <= keep:
        return np.arange(len(codes))
    return np.flatnonzero(mix64(codes, seed) < np.uint64(int(keep / len(codes) * 2.0**64)))


def random_pairs(node_of: np.ndarray, count: int, seed: int, side: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """`count` pairs of nodes of random records (two different records; records of different sides when a side
    is given per node), so that a name many records share is drawn as often as they say it."""
    rng = np.random.default_rng(seed)
    node_of = np.sort(node_of)  # records in node order: the same draw whatever order the records came in
    n = len(node_of)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if side is None:
        a = rng.integers(0, n, count)
        b = (a + rng.integers(1, n, count)) % n   # never the same record
        return node_of[a], node_of[b]
    record_side = side[node_of]
    first, second = np.flatnonzero(record_side == 0), np.flatnonzero(record_side == 1)
    if not len(first) or not len(second):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return node_of[first[rng.integers(0, len(first), count)]], node_of[second[rng.integers(0, len(second), count)]]


def unique_rows(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a level array in ascending order (as np.unique(levels, axis=0) gives them) and how
    often each occurs. Each row is read as one number, a digit per comparison (a level + 1, MISSING 0), so a sort
    of int64 codes replaces numpy's row-wise sort of structured values (18 times slower on 200k rows of 5).

    >>> patterns, counts = unique_rows(np.array([[0, -1], [1, 2], [0, -1]], dtype=np.int8))
    >>> patterns.tolist(), counts.tolist()
    ([[0, -1], [1, 2]], [2, 1])
    """
    if not len(levels):
        return levels, np.zeros(0, dtype=np.int64)
    digits = levels.astype(np.int64) + 1
    base = int(digits.max()) + 1
    width = levels.shape[1]
    if base ** width >= 2**62:  # too many comparisons for one int64: numpy's own way
        patterns, counts = np.unique(levels, axis=0, return_counts=True)
        return patterns, counts
    place = base ** np.arange(width - 1, -1, -1, dtype=np.int64)   # the first comparison the leading digit
    codes, counts = np.unique(digits @ place, return_counts=True)
    patterns = (codes[:, None] // place[None, :]) % base - 1
    return patterns.astype(levels.dtype), counts


def level_shares(levels: np.ndarray, sizes: Sequence[int], floor: float, weights: np.ndarray | None = None
                 ) -> list[np.ndarray]:
    """Per comparison, the share of each level among the rows where it is not missing (weighted rows), each
    share at least `floor` (a level never seen is rare, not impossible)."""
    out = []
    for k, size in enumerate(sizes):
        col = levels[:, k].astype(np.int64)
        seen = col >= 0
        counts = np.bincount(col[seen], weights=None if weights is None else weights[seen], minlength=size)[:size]
        out.append(_normalised(counts, floor))
    return out


def _normalised(counts: np.ndarray, floor: float) -> np.ndarray:
    total = counts.sum()
    shares = counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts))
    shares = np.maximum(shares, floor)
    return shares / shares.sum()


def rule_prior(levels: np.ndarray, decisive: Sequence[int], recall: float, floor: float,
               rule_levels: Sequence[int] | None = None) -> tuple[float, np.ndarray]:
    """The share of the pairs that match as a deterministic rule estimates it (Splink's
    estimate_probability_two_random_records_match): the pairs at level 0 of any decisive comparison (an exact
    name, a shared identifier, the same phone; at or above level rule_levels[i] of decisive[i] where given) are
    taken as matches found with the given recall. Returns the prior and which pairs the rule accepts."""
    sure = np.zeros(len(levels), dtype=bool)
    for i, k in enumerate(decisive):
        top = 0 if rule_levels is None else rule_levels[i]
        sure |= (levels[:, k] >= 0) & (levels[:, k] <= top)
    return float(np.clip(sure.sum() / recall / max(len(levels), 1), floor, 1 - floor)), sure


def linkage_prior_bound(left: np.ndarray, right: np.ndarray, side: np.ndarray) -> float:
    """The largest share of the candidate pairs (left, right) that can match in one-to-one linkage: each node
    matches at most one node of the other side, so no more pairs match than the smaller side has nodes among
    the candidates."""
    nodes = np.unique(np.concatenate([left, right]))
    per_side = np.bincount(side[nodes], minlength=2)
    return float(min(1.0, per_side.min() / max(len(left), 1)))


@dataclass
class EmFit:
    m: list[np.ndarray]
    u: list[np.ndarray]
    prior: float
    iterations: int
    converged: bool
    trained: tuple[int, ...] = ()   # comparisons whose m rule sessions found (fit_rule_sessions)


def initial_m(sizes: Sequence[int]) -> list[np.ndarray]:
    """Where EM starts: matching pairs mostly at the strongest level of each comparison, a quarter as often
    at each level below."""
    return [_normalised(0.25 ** np.arange(size, dtype=np.float64), 0.0) for size in sizes]


def responsibility_start(levels: np.ndarray, sizes: Sequence[int], match: np.ndarray, floor: float,
                         max_prior: float = 1.0) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """m, u and the prior of one M-step with each pair counting `match` (a probability in [0, 1]) as a match
    and the rest as a non-match: where EM starts from another scorer's view of the pairs (the hand-set weights)
    instead of initial_m. Names alone give one comparison that says anything, and a mixture of one comparison is
    not identified: EM drifts from wherever it starts along a ridge of equal likelihood, so where it starts is
    what it finds."""
    match = np.clip(np.asarray(match, dtype=np.float64), 0.0, 1.0)
    prior = float(np.clip(match.mean(), floor, min(max_prior, 1 - floor))) if len(match) else 0.1
    return level_shares(levels, sizes, floor, match), level_shares(levels, sizes, floor, 1 - match), prior


def _log_ratio_tables(probs: Sequence[np.ndarray]) -> np.ndarray:
    """(comparisons x (max levels + 1)) log2 tables, the last column 0 for MISSING (-1 indexes it)."""
    width = max(len(p) for p in probs) + 1
    table = np.zeros((len(probs), width))
    for k, p in enumerate(probs):
        table[k, :len(p)] = np.log2(p)
    return table


def level_sums(levels: np.ndarray, probs: Sequence[np.ndarray]) -> np.ndarray:
    """sum over comparisons of log2(probs[k][level]) per row, missing levels counting 0."""
    table = _log_ratio_tables(probs)
    cols = np.where(levels >= 0, levels, table.shape[1] - 1).astype(np.int64)
    return table[np.arange(levels.shape[1])[None, :], cols].sum(axis=1)


def match_weight(levels: np.ndarray, m: Sequence[np.ndarray], u: Sequence[np.ndarray], prior: float) -> np.ndarray:
    """log2 Bayes factor of each row plus the prior's log2 odds."""
    ratio = [mk / uk for mk, uk in zip(m, u, strict=True)]
    return np.log2(prior / (1 - prior)) + level_sums(levels, ratio)


def probability(weight: np.ndarray) -> np.ndarray:
    """2^w / (1 + 2^w), without overflow."""
    return 1.0 / (1.0 + np.exp2(-np.clip(weight, -1000, 1000)))


def shrunk(fit: EmFit, levels: np.ndarray, sizes: Sequence[int], u_random: Sequence[np.ndarray], strength: float,
           keep: Sequence[int] = ()) -> EmFit:
    """The fit's m and u as posterior means under Dirichlet priors worth `strength` pairs: m's centred on
    initial_m, u's on the random pairs' level shares, each comparison's fitted shares counting as many pairs as
    the fit takes to match (m) or not (u) among the pairs where it is not missing. Over thousands of pairs this
    changes nothing that shows; over a handful, a level that no non-matching candidate happened to have keeps a
    share near the random pairs' instead of the floor (nine candidate pairs once made a completely different
    name evidence for a match, 2^17 to 1). `keep`: comparisons whose m and u were not fitted here (held at
    another scorer's view): they stay as they are."""
    if strength <= 0 or not len(levels):
        return fit
    patterns, counts = unique_rows(levels)
    match = probability(match_weight(patterns, fit.m, fit.u, fit.prior)) * counts
    centre = initial_m(sizes)

    def mean(fitted: np.ndarray, prior_shares: np.ndarray, pairs: float) -> np.ndarray:
        return (fitted * pairs + prior_shares * strength) / (pairs + strength)

    m, u = [], []
    for k in range(len(sizes)):
        if k in keep:
            m.append(fit.m[k])
            u.append(fit.u[k])
            continue
        seen = patterns[:, k] >= 0
        m.append(mean(fit.m[k], centre[k], float(match[seen].sum())))
        u.append(mean(fit.u[k], np.asarray(u_random[k]), float((counts[seen] - match[seen]).sum())))
    return replace(fit, m=m, u=u)


def fit_em(levels: np.ndarray, sizes: Sequence[int], u: Sequence[np.ndarray], *, prior: float = 0.1,
           m: Sequence[np.ndarray] | None = None, fix_u: bool = True, max_iterations: int = 100,
           tolerance: float = 1e-5, floor: float = 1e-6, held_out: Sequence[int] = (),
           max_prior: float = 1.0, fix_prior: bool = False, keep_m: Sequence[int] = ()) -> EmFit:
    """m (and the prior; u too unless fix_u) by EM over the rows of `levels` (candidate pairs), starting from
    `u` (counted on random pairs), `m` (default initial_m) and `prior`. Stops when no probability moves more than
    `tolerance` or after max_iterations.

    held_out: comparisons the candidate pairs were chosen on (blocking on names makes every candidate look alike
    by name, matching or not): they take no part in deciding which pairs match, and their m is what the others
    say of the pairs they find matching (as Splink does not train a blocking rule's own comparisons).
    fix_prior: keep the prior where it started (estimated by deterministic rules) while m (and u) are fitted;
    keep_m: comparisons whose m stays as given (found otherwise) while the others' are fitted."""
    patterns, counts = unique_rows(levels)
    counts = counts.astype(np.float64)
    deciding = patterns.copy()
    deciding[:, list(held_out)] = -1
    # a pair every deciding comparison is silent on says nothing of the prior: it would only slow EM down
    informative = (deciding >= 0).any(axis=1)
    patterns, deciding, counts = patterns[informative], deciding[informative], counts[informative]
    m_now = [np.asarray(p, dtype=np.float64) for p in (m if m is not None else initial_m(sizes))]
    u_now = [np.asarray(p, dtype=np.float64) for p in u]
    if not len(patterns):
        return EmFit(m_now, u_now, prior, 0, True)
    iterations, converged = 0, False
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (the count is returned)
        weight = match_weight(deciding, m_now, u_now, prior)
        match = probability(weight) * counts          # expected matching pairs per pattern
        new_prior = prior if fix_prior else float(np.clip(match.sum() / counts.sum(), floor, min(max_prior, 1 - floor)))
        new_m = level_shares(patterns, sizes, floor, match)
        for k in keep_m:
            new_m[k] = m_now[k]
        new_u = u_now if fix_u else level_shares(patterns, sizes, floor, counts - match)
        moved = max(abs(new_prior - prior), *(float(np.abs(a - b).max()) for a, b in zip(new_m, m_now, strict=True)),
                    *(float(np.abs(a - b).max()) for a, b in zip(new_u, u_now, strict=True)))
        m_now, u_now, prior = new_m, new_u, new_prior
        if moved < tolerance:
            converged = True
            break
    return EmFit(m_now, u_now, prior, iterations, converged)


def fit_rule_sessions(levels: np.ndarray, sizes: Sequence[int], u: Sequence[np.ndarray], decisive: Sequence[int],
                      prior: float, *, min_pairs: int = 20, min_matches: float = 30,
                      max_iterations: int = 500, tolerance: float = 1e-5,
                      floor: float = 1e-6, held_out: Sequence[int] = (), rule_levels: Sequence[int] | None = None,
                      fit_prior: bool = False) -> EmFit:
    """m by EM sessions over the pairs each deterministic rule accepts, as Splink trains on pairs blocked by a
    rule: the pairs at level 0 of decisive comparison k (an exact name, a shared identifier, the same phone) are
    mostly matches, so EM among them (k itself held out, as it chose them) finds what matching pairs look like
    on every other comparison. Over all candidate pairs EM finds a larger class instead (the same product line,
    the same kind of restaurant: names, brands and prices alike, model numbers different).

    A comparison's m is the mean of the sessions that trained it, weighted by the matches each found with the
    comparison said, each with one pseudo-count spread as u is (a session of a few dozen pairs neither makes a
    level impossible nor, where it never saw a level, makes that level evidence); comparisons that sessions
    trained on fewer than `min_matches` matches (names alone: no second rule; a handful of shared codes: too
    few for shares to mean much) get theirs from EM over all the pairs, the prior and the others' m held. m is
    then made monotone (monotone_m). `u`: the level shares of all the pairs; `prior`: the share of
    them that match (rule_prior), held unless fit_prior (then EM over all the pairs fits it, starting there:
    a near-exact name's recall is no known share of the matches). rule_levels: per decisive comparison, the
    weakest level its rule accepts (default 0, the strongest). The returned u is that of the pairs that do
    not match (non_match_u); the returned `trained`, the comparisons the sessions found m for."""
    trained: list[list[tuple[np.ndarray, float]]] = [[] for _ in sizes]
    iterations, converged = 0, True
    for i, k in enumerate(decisive):
        top = 0 if rule_levels is None else rule_levels[i]
        rows = levels[(levels[:, k] >= 0) & (levels[:, k] <= top)]
        if len(rows) < min_pairs:
            continue
        session = fit_em(rows, sizes, u, prior=0.5, m=level_shares(rows, sizes, 0.01), fix_u=True,
                         max_iterations=max_iterations, tolerance=tolerance, floor=floor,
                         held_out=sorted({k, *held_out}))
        iterations, converged = iterations + session.iterations, converged and session.converged
        matches = session.prior * len(rows)
        for j in range(len(sizes)):
            seen = float((rows[:, j] >= 0).mean()) * matches
            if j != k and j not in held_out and seen > 0:
                trained[j].append(((session.m[j] * seen + u[j]) / (seen + 1), seen))
    support = [sum(seen for _, seen in t) for t in trained]
    m: list[np.ndarray | None] = [np.sum([mk * seen for mk, seen in t], axis=0) / sup if sup >= min_matches
                                  else None for t, sup in zip(trained, support, strict=True)]
    # EM over all the pairs for what the sessions did not train (names alone: no second rule), the others' m held
    rest = fit_em(levels, sizes, u, prior=prior, m=[initial_m([s])[0] if mk is None else mk
                                                    for mk, s in zip(m, sizes, strict=True)],
                  fix_u=True, max_iterations=max_iterations, tolerance=tolerance, floor=floor,
                  held_out=held_out, fix_prior=not fit_prior, keep_m=[j for j, mk in enumerate(m) if mk is not None])
    iterations, converged = iterations + rest.iterations, converged and rest.converged
    found_by_sessions = tuple(j for j, mk in enumerate(m) if mk is not None)
    m = [rest.m[j] if mk is None else mk for j, mk in enumerate(m)]
    prior = rest.prior
    found = [np.asarray(mk) for mk in m if mk is not None]
    u_found = non_match_u(levels, sizes, found, u, prior, max_iterations=max_iterations, tolerance=tolerance,
                          floor=floor)
    return EmFit([monotone_m(mk, uk) for mk, uk in zip(found, u_found, strict=True)], u_found, prior, iterations,
                 converged, found_by_sessions)


def monotone_m(m: np.ndarray, u: np.ndarray) -> np.ndarray:
    """m adjusted so that log2(m / u) does not rise from one level to the next (levels ordered strongest
    agreement first: a closer name is never less evidence of a match). Adjacent levels that break the order
    are pooled, each taking the pool's ratio sum(m) / sum(u) (pool-adjacent-violators), which keeps m's sum."""
    blocks: list[list[float]] = []  # [sum m, sum u, levels]
    for mk, uk in zip(m.tolist(), u.tolist(), strict=True):
        blocks.append([mk, uk, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1] = [blocks[-1][0] + last[0], blocks[-1][1] + last[1], blocks[-1][2] + last[2]]
    ratio = np.repeat([b[0] / b[1] for b in blocks], [int(b[2]) for b in blocks])
    return ratio * u


def non_match_u(levels: np.ndarray, sizes: Sequence[int], m: Sequence[np.ndarray], u: Sequence[np.ndarray],
                prior: float, *, max_iterations: int = 100, tolerance: float = 1e-5, floor: float = 1e-6
                ) -> list[np.ndarray]:
    """u of the pairs that do not match, with m and the prior known: each pair counts as much as it is not a
    match (1 - its match probability), starting from `u` (all the pairs' level shares), until u settles. Among
    candidate pairs the matches are no small part of an exact name's or a shared phone's share: counting them
    in u would make those say little."""
    patterns, counts = unique_rows(levels)
    u_now = [np.asarray(p, dtype=np.float64) for p in u]
    for _ in range(max_iterations):
        rest = counts * (1 - probability(match_weight(patterns, m, u_now, prior)))
        new_u = level_shares(patterns, sizes, floor, rest)
        moved = max(float(np.abs(a - b).max()) for a, b in zip(new_u, u_now, strict=True))
        u_now = new_u
        if moved < tolerance:
            break
    return u_now
