"""Resolution step for `learn: em`: the node table's pairs put into comparison levels (kgpipe.kg.comparisons),
match weights learned on them (kgpipe.kg.em) or reused, and each pair's match probability as its score, which
the clustering guard and the one-to-one matcher read as they read the fixed score.

The exact name level is term-frequency adjusted: its u for a pair of names v is v's share of the records (a
name many records carry agrees by chance more often than the average exact match does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from kgpipe.errors import InputError
from kgpipe.kg import em
from kgpipe.kg.acronym_runs import AcronymRuns
from kgpipe.kg.comparisons import (
    Comparison,
    IdentifierColumns,
    comparisons_for,
    node_identifiers,
    node_value_keys,
    pair_levels,
)
from kgpipe.kg.learned_weights import ComparisonWeights, LearnedWeights
from kgpipe.kg.nodes import Nodes
from kgpipe.kg.pair_scoring import pair_codes
from kgpipe.kg.resolution_config import ResolutionConfig
from kgpipe.kg.similarity import NodeTable, PairScores
from kgpipe.kg.value_keys import ValueKeys


@dataclass
class LearnedScores:
    """Levels, match weights (log2, the prior included) and probabilities of a batch of pairs; `score` is the
    probability, with the type rule applied as the fixed scorer applies it."""

    levels: np.ndarray
    weight: np.ndarray
    score: np.ndarray


@dataclass
class LearnedTable:
    """The node table with what learned scoring adds: identifiers per node, each name's share of the records (for
    the term-frequency adjustment), the comparisons, and the weights once learned or given."""

    table: NodeTable
    identifiers: IdentifierColumns
    name_share: np.ndarray
    comparisons: list[Comparison]
    weights: LearnedWeights | None = None
    value_keys: dict[str, ValueKeys] = field(default_factory=dict)
    acronyms: AcronymRuns | None = None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def config(self) -> ResolutionConfig:
        return self.table.config

    @property
    def sizes(self) -> list[int]:
        return [len(c.levels) for c in self.comparisons]

    def levels(self, left: np.ndarray, right: np.ndarray, scores: PairScores | None = None) -> np.ndarray:
        """Comparison levels of node pairs (scores: the fixed scorer's of the same pairs, if at hand)."""
        left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
        return pair_levels(self.table, self.identifiers, self.comparisons, left, right, self.value_keys,
                           self.acronyms, scores)

    def with_weights(self, weights: LearnedWeights) -> LearnedTable:
        if weights.signature() != [(c.name, c.levels) for c in self.comparisons]:
            raise InputError(
                "learned weights do not fit these resolution settings: they compare "
                f"{[c.name for c in weights.comparisons]}, the settings {[c.name for c in self.comparisons]} "
                "(or their levels differ)",
                hint="learn them again (leave weights_from out, or ask the fuse stage to relearn), or use the "
                     "attributes and name bands they were learned with")
        return replace(self, weights=weights)

    def tf_correction(self, left: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """What the term-frequency adjustment adds to each pair's weight: log2(u / share of the name) where the
        name comparison is exact, 0 elsewhere."""
        out = np.zeros(len(left))
        weights = self.weights
        if weights is None:
            return out
        floor = self.config.em.floor
        for k, comparison in enumerate(self.comparisons):
            if comparison.tf and comparison.name in weights.tf_adjusted:
                exact = levels[:, k] == 0
                share = np.maximum(self.name_share[self.table.name_of[left[exact]]], floor)
                u = weights.tf_u.get(comparison.name, weights.comparisons[k].u[0])
                out[exact] = np.log2(u) - np.log2(share)
        return out

    def score(self, left: np.ndarray, right: np.ndarray) -> LearnedScores:
        if self.weights is None:
            raise ValueError("learned scoring without weights: learn them (learn_weights) or give them")
        left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
        levels = self.levels(left, right)
        w = self.weights
        weight = em.match_weight(levels, [np.array(c.m) for c in w.comparisons], [np.array(c.u) for c in w.comparisons],
                                 w.prior) + self.tf_correction(left, levels)
        probability = em.probability(weight)
        probability = np.where(self.table.types_compatible(left, right), probability,
                               probability * self.config.type_mismatch)
        return LearnedScores(levels, weight, probability)


def learned_table(table: NodeTable, nodes: Nodes) -> LearnedTable:
    """The learned scorer's view of resolution nodes (weights still to be learned or given)."""
    config = table.config
    name_records = np.bincount(nodes.name_of_node[nodes.node_of], minlength=len(nodes.names))
    identifiers = node_identifiers(nodes.spellings, nodes.name_of_node, nodes.attributes, config.attributes,
                                   config.em.rare_code)
    return LearnedTable(table, identifiers, name_records / max(len(nodes.node_of), 1),
                        comparisons_for(config, table.context is not None),
                        value_keys=node_value_keys(nodes.attributes, config.attributes),
                        acronyms=AcronymRuns.of(nodes.spellings, nodes.names, config.normalize.options())
                        if config.acronyms else None)


def given_weights(config: ResolutionConfig) -> LearnedWeights | None:
    """The weights `weights_from` names (read from their file where it is a path), or None."""
    given = config.weights_from
    return LearnedWeights.load(Path(given)) if isinstance(given, str) else given


@dataclass
class LearningSample:
    """What the weights are learned from: the levels of a hash-sampled subset of the candidate pairs (pairs of
    compatible types only) with the hand-set scorer's score of each, the level shares of random pairs (u, and
    the term-frequency adjustment's exact-name u), the u EM starts from, and the bound on the prior."""

    levels: np.ndarray
    fixed_score: np.ndarray
    random_u: list[np.ndarray]
    start_u: list[np.ndarray]
    max_prior: float
    random_pairs: int


def learning_sample(scorer: LearnedTable, left: np.ndarray, right: np.ndarray, node_of: np.ndarray,
                    side: np.ndarray | None = None) -> LearningSample:
    """The candidate pairs (left, right), a hash-sampled subset of em.m_pairs where there are more, and random
    pairs of records, put into levels: u starts from the candidates' level shares (u_from candidates) or the
    random pairs' (u_from random); the prior is bounded in one-to-one linkage (`side` given)."""
    settings = scorer.config.em
    sample = em.hash_sample(pair_codes(left, right, len(scorer)), settings.m_pairs, settings.seed)
    # the hand-set scorer's view of the sample: where EM starts when no rule trains anything (names alone); its
    # name signals are the levels' too
    fixed = scorer.table.score(left[sample], right[sample])
    levels = scorer.levels(left[sample], right[sample], fixed)
    # pairs of incompatible types are the type rule's to decide (they never match, whatever else they share): the
    # weights are learned on the rest. Counted in, they are non-matches that look like matches by name (the seed
    # KG's 'Cambridge' the city and the university), and the hand-set view EM starts from, which scores them 0,
    # took a band of names that match for mostly not matching (sample seed aliases: em 0.694 -> 0.777)
    typed = fixed.type_ok
    sample, levels, fixed_score = sample[typed], levels[typed], fixed.score[typed]
    random_left, random_right = em.random_pairs(node_of, settings.u_pairs, settings.seed, side)
    random_typed = scorer.table.types_compatible(random_left, random_right)
    random_left, random_right = random_left[random_typed], random_right[random_typed]
    random_u = em.level_shares(scorer.levels(random_left, random_right), scorer.sizes, settings.floor)
    start_u = random_u if settings.u_from == "random" else em.level_shares(levels, scorer.sizes, settings.floor)
    max_prior = 1.0
    if side is not None and settings.bound_prior and len(sample):
        max_prior = em.linkage_prior_bound(left[sample], right[sample], side)
    return LearningSample(levels, fixed_score, random_u, start_u, max_prior, len(random_left))


def fit_by_rules(scorer: LearnedTable, sample: LearningSample) -> em.EmFit | None:
    """m by EM sessions over the pairs deterministic rules accept (em.fit_rule_sessions): an exact name, a shared
    rare code, the same phone; where those accept too few pairs (names alone, each distinct name one node: no
    pair has an exact name), a near-exact name (the name's first band). None where no rule trains anything."""
    settings = scorer.config.em
    sizes, levels, names = scorer.sizes, sample.levels, [c.name for c in scorer.comparisons]
    held_out = [k for k, name in enumerate(names) if name in settings.held_out]
    decisive = [k for k, c in enumerate(scorer.comparisons) if c.decisive]
    sessions = partial(em.fit_rule_sessions, min_pairs=settings.min_rule_pairs, min_matches=settings.min_matches,
                       max_iterations=settings.max_iterations, tolerance=settings.tolerance, floor=settings.floor,
                       held_out=held_out)
    prior, sure = em.rule_prior(levels, decisive, settings.rule_recall, settings.floor)
    if sure.sum() >= settings.min_rule_pairs:
        return sessions(levels, sizes, sample.start_u, decisive, min(prior, sample.max_prior))
    if "name" not in names:
        return None
    # the near-exact name's sessions train what else is compared (context, numbers), and the prior is fitted,
    # since a near-exact name's recall is no known share; used where they trained something. The acronym
    # comparison is a reading of the names themselves, no second witness of the pairs a near-exact name picks
    # (a name near-exact to another is seldom an acronym of it): held out of those sessions
    name, near = names.index("name"), [1]
    prior, sure = em.rule_prior(levels, [name], settings.rule_recall, settings.floor, near)
    if sure.sum() < settings.min_rule_pairs:
        return None
    readings = [k for k, c in enumerate(names) if c == "acronym"]
    found = sessions(levels, sizes, sample.start_u, [name], min(prior, sample.max_prior), rule_levels=near,
                     fit_prior=True, held_out=sorted({*held_out, *readings}))
    return found if found.trained else None


def fit_from_hand_set_view(scorer: LearnedTable, sample: LearningSample, names_alone: bool
                           ) -> tuple[em.EmFit, list[int]]:
    """One EM over all the sampled pairs, from the hand-set scorer's view of them (EmConfig.start fixed; levels:
    em.initial_m), and the comparisons whose m and u it held there.

    Names alone (no rule trained anything): EM over the name comparison is not identified (from wherever it
    starts it drifts along a ridge of equal likelihood: on the affiliation strings 500 iterations without
    converging, F1 moving 0.84 -> 0.74 -> 0.84 with the iterations allowed), so the name's m and u stay those of
    the hand-set scorer's view, every u stays where it started, and EM fits the m of what else is compared
    (acronym, numbers) against them. The prior stays there too: with the name's m and u held, the prior is what
    moves along that ridge (on synthetic names it went 0.49 -> 0.53, enough to take every pair of the 0.4 band, a
    seventh of them matches, for a match)."""
    settings = scorer.config.em
    sizes, levels = scorer.sizes, sample.levels
    held_out = [k for k, c in enumerate(scorer.comparisons) if c.name in settings.held_out]
    start_m, start_u, prior = None, sample.start_u, min(0.1, sample.max_prior / 2)
    if settings.start == "fixed" and len(levels):
        start_m, fixed_u, prior = em.responsibility_start(levels, sizes, sample.fixed_score, settings.floor,
                                                          sample.max_prior)
        start_u = fixed_u if settings.u_from == "candidates" else start_u
    hold = [k for k, c in enumerate(scorer.comparisons) if c.name == "name"] if names_alone and start_m else []
    fit = em.fit_em(levels, sizes, start_u, prior=prior, m=start_m, fix_u=settings.fix_u or bool(hold),
                    max_iterations=settings.max_iterations, tolerance=settings.tolerance, floor=settings.floor,
                    held_out=held_out, max_prior=sample.max_prior, keep_m=hold, fix_prior=bool(hold))
    return fit, hold


def learn_weights(scorer: LearnedTable, left: np.ndarray, right: np.ndarray, node_of: np.ndarray,
                  side: np.ndarray | None = None) -> LearnedWeights:
    """m, u and the prior learned on the candidate pairs (left, right): the sample (learning_sample), m by rule
    sessions (fit_by_rules; EmConfig.fit rules) or else one EM from the hand-set view (fit_from_hand_set_view),
    then shrunk towards the starting m and the random pairs' u (EmConfig.pseudo_pairs). Random pairs of records
    also give the exact name level's u that the term-frequency adjustment scales."""
    settings = scorer.config.em
    sample = learning_sample(scorer, left, right, node_of, side)
    fit = fit_by_rules(scorer, sample) if settings.fit == "rules" else None
    hold: list[int] = []   # comparisons whose m and u are held at the hand-set scorer's view
    if fit is None:
        fit, hold = fit_from_hand_set_view(scorer, sample, names_alone=settings.fit == "rules")
    fit = em.shrunk(fit, sample.levels, scorer.sizes, sample.random_u, settings.pseudo_pairs, keep=hold)
    tf_u = {c.name: float(sample.random_u[k][0]) for k, c in enumerate(scorer.comparisons) if c.tf}
    return weights_of(scorer.comparisons, fit, len(sample.levels), sample.random_pairs, tf_u)


def weights_of(comparisons: Sequence[Comparison], fit: em.EmFit, pairs: int, random_pairs: int,
               tf_u: dict[str, float] | None = None) -> LearnedWeights:
    found = [ComparisonWeights(name=c.name, levels=list(c.levels), m=[float(x) for x in m], u=[float(x) for x in u])
             for c, m, u in zip(comparisons, fit.m, fit.u, strict=True)]
    return LearnedWeights(
        comparisons=found,
        prior=fit.prior, iterations=fit.iterations, converged=fit.converged, pairs=pairs, random_pairs=random_pairs,
        tf_adjusted=[c.name for c in comparisons if c.tf], tf_u=tf_u or {})
