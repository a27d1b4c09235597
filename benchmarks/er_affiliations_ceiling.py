"""Claim: on affiliation strings, a combination of kgpipe's own pair signals fitted to the gold labels does no
better than the defaults; the remaining errors are not a matter of weights.

Three measurements on affiliationstrings (gold clusters: transitive closure of the gold pairs):
  blocking ceiling - an oracle that accepts exactly the gold pairs among the candidate pairs blocking
                     proposes (connected components): the recall no scorer can pass with that blocking;
                     for the default blocking and a wider one;
  learned ceiling  - a gradient-boosted classifier (scikit-learn's HistGradientBoostingClassifier) over the
                     stage's own pair signals (word overlap, n-grams, rapidfuzz ratios, acronyms, matched and
                     unmatched word mass, parts, institution phrases), trained on gold labels with 5-fold
                     cross-fitting by gold cluster (a pair is scored by a model that saw neither side's
                     cluster), its probabilities clustered by the stage's own average-link guard; on the
                     wider blocking;
  defaults         - `resolve` with ResolutionConfig() (what benchmarks/er_affiliations.py reports);
and the plain-library baseline of er_affiliations (rapidfuzz token_set_ratio over all pairs, best threshold).
The learned model is an upper-bound probe that uses the gold labels, not a setting of the stage. The defaults
and the best learned clustering are also scored on the records outside the gold audit
(benchmarks/data/affiliations_gold_audit.tsv), the same clusters restricted to those records.

Usage: python benchmarks/er_affiliations_ceiling.py [PATH] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _er import table
from _report import write_section
from er_affiliations import DEFAULT, audit_mask, baseline, error_summary, load, no_audit_note, subset_row

FOLDS = 5
WIDER = {"max_candidates": 50, "token_block_max": 50}


def name_nodes(names: list[str], config):
    """The stage's name features over the distinct normalised names, and the name of each string."""
    from kgpipe.kg.normalize import normalize_name
    from kgpipe.kg.similarity import NodeTable, featurize_names

    options = config.normalize.options()
    keys = [normalize_name(name, options) for name in names]
    unique = sorted(set(keys))
    index = {key: i for i, key in enumerate(unique)}
    spelling: dict[str, str] = {}
    for name, key in zip(names, keys, strict=True):
        spelling.setdefault(key, name)
    features = featurize_names([spelling[k] for k in unique], config, keys=unique)
    m = len(unique)
    nodes = NodeTable(features, np.arange(m), [None] * m, [frozenset()] * m, [{}] * m, config)
    return nodes, np.array([index[k] for k in keys])


def pair_signals(nodes, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One row of signals per name pair, each symmetric in the two names."""
    from rapidfuzz import fuzz, process

    from kgpipe.kg.similarity import _unmatched_part_mass, institutions_differ, soft_dot

    f = nodes.features
    token, char, ratio, acronym, _ = nodes.name_scores(a, b)
    keys = np.asarray(f.keys, dtype=object)
    left, right = list(keys[a]), list(keys[b])
    plain = [process.cpdist(left, right, scorer=s, dtype=np.float32) / 100.0
             for s in (fuzz.ratio, fuzz.partial_ratio, fuzz.token_sort_ratio)]
    hit_a, hit_b = soft_dot(f.tokens, a, f, b), soft_dot(f.tokens, b, f, a)
    away_a, away_b = _unmatched_part_mass(f, a, b), _unmatched_part_mass(f, b, a)
    inner_a = f.token_mass[a] - hit_a - away_a   # unmatched words in parts that share a word
    inner_b = f.token_mass[b] - hit_b - away_b
    words = np.array([len(k.split()) for k in f.keys])
    parts = np.diff(f.segment_start)
    differ = institutions_differ(f, a, b) if f.head is not None else np.zeros(len(a), dtype=bool)

    def sym(x, y):
        return [np.minimum(x, y), np.maximum(x, y)]

    return np.column_stack([token, char, ratio, acronym, differ, *plain, *sym(hit_a, hit_b),
                            *sym(inner_a, inner_b), *sym(away_a, away_b), *sym(words[a], words[b]),
                            *sym(parts[a], parts[b])])


def blocking_ceiling(nodes, config, name_of, gold):
    """Candidate name pairs of the blocking, and the pairwise P/R/F1 of accepting exactly their gold pairs."""
    from kgpipe.kg.blocking import block_names
    from kgpipe.kg.cluster import connected_components
    from kgpipe.kg.evaluate import pairwise_prf

    pairs = block_names(nodes.features, config.blocking, config.ngram).pairs.astype(np.int64)
    name_gold = majority_gold(name_of, gold, len(nodes))
    true = name_gold[pairs[:, 0]] == name_gold[pairs[:, 1]]
    labels = connected_components(len(nodes), pairs[true, 0], pairs[true, 1])
    return pairs, name_gold, pairwise_prf(labels[name_of], gold)


def majority_gold(name_of: np.ndarray, gold: list[int], m: int) -> np.ndarray:
    votes: list[Counter] = [Counter() for _ in range(m)]
    for name, g in zip(name_of.tolist(), gold, strict=True):
        votes[name][g] += 1
    return np.array([v.most_common(1)[0][0] for v in votes])


def cross_fitted_scorer(nodes, pairs: np.ndarray, name_gold: np.ndarray, seed: int = 0):
    """A scorer of any name pairs whose model never saw either name's gold cluster: one model per pair of
    folds (i, j), trained on the candidate pairs with both names outside folds i and j."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    clusters = np.unique(name_gold)
    fold_of_cluster = dict(zip(clusters.tolist(), np.random.default_rng(seed).integers(0, FOLDS, len(clusters)),
                               strict=True))
    fold = np.array([fold_of_cluster[g] for g in name_gold.tolist()])
    a, b = pairs[:, 0], pairs[:, 1]
    x = pair_signals(nodes, a, b)
    y = (name_gold[a] == name_gold[b]).astype(int)
    models = {}
    for i in range(FOLDS):
        for j in range(i, FOLDS):
            keep = ~np.isin(fold[a], (i, j)) & ~np.isin(fold[b], (i, j))
            models[i, j] = HistGradientBoostingClassifier(max_iter=200, random_state=seed).fit(x[keep], y[keep])

    def scorer(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
        out = np.zeros(len(left))
        if not len(left):
            return out
        signals = pair_signals(nodes, left, right)
        lo, hi = np.minimum(fold[left], fold[right]), np.maximum(fold[left], fold[right])
        for (i, j), model in models.items():
            mask = (lo == i) & (hi == j)
            if mask.any():
                out[mask] = model.predict_proba(signals[mask])[:, 1]
        return out

    return scorer


def main() -> None:
    from kgpipe.kg.cluster import cluster_nodes
    from kgpipe.kg.evaluate import bcubed, pairwise_prf
    from kgpipe.kg.resolve import Record, resolve
    from kgpipe.kg.similarity import ResolutionConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    ids, names, gold = load(args.path)
    started = time.perf_counter()
    default = ResolutionConfig()
    wider = default.model_copy(update={"blocking": default.blocking.model_copy(update=WIDER)})

    defaults = resolve([Record(i, n) for i, n in zip(ids, names, strict=True)], default).labels
    rows = [["kgpipe resolve, defaults", *prf_row(pairwise_prf(defaults, gold)), bcubed(defaults, gold)["f1"]]]
    base, base_threshold = baseline(names, gold)
    rows.append([f"rapidfuzz token_set_ratio, all pairs, best threshold on this data ({base_threshold:.2f})",
                 base["precision"], base["recall"], base["f1"], ""])
    ceilings = []
    for label, config in (("default", default), ("wider (max_candidates 50, token_block_max 50)", wider)):
        nodes, name_of = name_nodes(names, config)
        pairs, name_gold, oracle = blocking_ceiling(nodes, config, name_of, gold)
        ceilings.append([label, len(pairs), *prf_row(oracle)])
    scorer = cross_fitted_scorer(nodes, pairs, name_gold)
    scores = scorer(pairs[:, 0], pairs[:, 1])
    weights = np.bincount(name_of, minlength=len(nodes)).astype(float)
    best = None
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7):
        labels, _ = cluster_nodes(len(nodes), pairs[:, 0], pairs[:, 1], scores, threshold, scorer=scorer,
                                  max_exact=wider.max_exact_component, weights=weights)
        labels = labels[name_of]
        result = pairwise_prf(labels, gold)
        rows.append([f"learned on gold, 5-fold cross-fitted, wider blocking, threshold {threshold}",
                     *prf_row(result), bcubed(labels, gold)["f1"]])
        if best is None or result["f1"] > best[0]["f1"]:
            best = (result, labels, threshold)
    audit = audit_mask(args.path, ids)
    if audit is None:
        outside = no_audit_note()
    else:
        keep = ~audit
        kept_rows = [subset_row("kgpipe resolve, defaults", defaults, gold, keep),
                     subset_row(f"learned on gold, best threshold above ({best[2]})", best[1], gold, keep)]
        outside = (f"The same clusters scored on the {int(keep.sum())} records outside the gold audit (records "
                   "whose gold cluster names another institution, `benchmarks/data/affiliations_gold_audit.tsv`):"
                   "\n\n" + table(["method", "pairwise P", "pairwise R", "pairwise F1", "B-cubed F1"], kept_rows))
    body = (f"{len(ids)} strings, {len(set(gold))} gold clusters. {time.perf_counter() - started:.0f} s in all. "
            "The probes featurise each normalised name from its first spelling (`resolve` picks the spelling "
            "with the most acronyms), so their candidate counts differ slightly from the stage's.\n\n"
            "Blocking ceiling (accept exactly the gold pairs among the candidates):\n\n"
            + table(["blocking", "candidate pairs", "P", "R", "F1"], ceilings)
            + "\nScorers:\n\n"
            + table(["method", "pairwise P", "pairwise R", "pairwise F1", "B-cubed F1"], rows)
            + f"\nBest learned F1 / defaults F1: {best[0]['f1'] / rows[0][3]:.2f}; learned / rapidfuzz baseline: "
              f"{best[0]['f1'] / base['f1']:.2f}.\n\n"
            + outside
            + f"\nErrors of the best learned threshold ({best[2]}):\n\n"
            + error_summary(names, best[1], gold))
    write_section("er_affiliations_ceiling", "Entity resolution: how far string signals go on affiliation strings",
                  body, f"python benchmarks/er_affiliations_ceiling.py {args.path}", print_only=args.no_write)


def prf_row(result: dict) -> list[float]:
    return [result["precision"], result["recall"], result["f1"]]


if __name__ == "__main__":
    main()
