"""Why two records do or do not match under learned weights: per comparison its level, m, u and log2(m / u),
with the prior, the total match weight and the probability (the waterfall chart Splink users debug with).

Weights for the comparisons the default settings give (illustrative numbers: m falls and u rises from each
comparison's strongest level to its weakest):

>>> from kgpipe.kg.comparisons import comparisons_for
>>> from kgpipe.kg.learned_weights import ComparisonWeights, LearnedWeights
>>> from kgpipe.kg.resolve import Record
>>> def falling(n):
...     return [2.0 ** -k / sum(2.0 ** -j for j in range(n)) for k in range(n)]
>>> weights = LearnedWeights(prior=0.01, comparisons=[
...     ComparisonWeights(name=c.name, levels=list(c.levels), m=falling(len(c.levels)),
...                       u=falling(len(c.levels))[::-1])
...     for c in comparisons_for(ResolutionConfig(learn="em"), has_context=False)])
>>> why = explain(Record("a", "Sony Turntable PSLX350H"), Record("b", "Sony Turntable PSLX250H"), weights)
>>> [(t.comparison, t.level) for t in why.terms]
[('name', '>=0.55'), ('acronym', 'missing'), ('identifiers', 'differ'), ('numbers', 'missing')]
>>> why.probability < 0.5
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kgpipe.kg.learned_weights import LearnedWeights
from kgpipe.kg.resolution_config import ResolutionConfig
from kgpipe.kg.resolve import Record


@dataclass(frozen=True)
class ExplanationTerm:
    """One comparison's part in a pair's match weight (weight 0 where the level is missing)."""

    comparison: str
    level: str
    m: float | None
    u: float | None
    weight: float
    tf_adjusted: bool = False


@dataclass(frozen=True)
class PairExplanation:
    """A pair's match weight term by term: prior_weight + sum of the terms' weights = total."""

    prior: float
    prior_weight: float
    terms: tuple[ExplanationTerm, ...]
    total: float
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """The waterfall as a table: each line adds its weight to the running total."""
        lines = [f"{'comparison':<21} {'level':<13}{'m':>11}{'u':>14}{'log2(m/u)':>11}{'running':>10}",
                 f"{'prior':<21} {'':<13}{'':>11}{'':>14}{self.prior_weight:>11.2f}{self.prior_weight:>10.2f}"]
        running = self.prior_weight
        for term in self.terms:  # every column set off by a space, so that a long value does not run into the next
            running += term.weight
            m = "" if term.m is None else f"{term.m:.4g}"
            u = "" if term.u is None else f"{term.u:.4g}" + (" tf" if term.tf_adjusted else "")
            lines.append(f"{term.comparison:<21} {term.level:<13}{m:>11}{u:>14}{term.weight:>11.2f}{running:>10.2f}")
        lines.append(f"match weight {self.total:.2f}, probability {self.probability:.4f}")
        return "\n".join(lines)


def explain(a: Record, b: Record, learned: LearnedWeights, config: ResolutionConfig | None = None,
            corpus: Iterable[Record] = ()) -> PairExplanation:
    """The explanation of records a and b under `learned`. config: the resolution settings the weights were
    learned with (default: the defaults with learn=em). corpus: the other records, for what depends on the whole
    collection (word weights in the name score, name frequencies for the term-frequency adjustment); without
    them the two records are the collection, and an exact name match is not frequency adjusted."""
    others = [r for r in corpus if r.id not in (a.id, b.id)]
    return Explainer([a, b, *others], learned, config, tf=bool(others)).explain(0, 1)


class Explainer:
    """Pairs of one collection of records scored and explained under learned weights: the collection's nodes,
    features and scorer are built once, so that many pairs cost one build (the report's example pairs, the
    explorer's requests). Records are named by their position in `records`. tf: whether an exact name match is
    term-frequency adjusted (as the stage scores it; explain() turns it off for a pair without a corpus)."""

    def __init__(self, records: Sequence[Record], learned: LearnedWeights, config: ResolutionConfig | None = None,
                 *, tf: bool = True) -> None:
        from kgpipe.engine.local import LocalExecutor
        from kgpipe.kg.learned_scoring import learned_table
        from kgpipe.kg.nodes import RecordColumns, build_nodes
        from kgpipe.kg.pair_scoring import node_table
        from kgpipe.kg.resolve import record_keys
        from kgpipe.kg.similarity import featurize_names

        config = config or ResolutionConfig(learn="em")
        columns = RecordColumns.of(list(records))
        executor = LocalExecutor.in_process("explain")
        nodes = build_nodes(columns, record_keys(columns.names, config, executor), config)
        features = featurize_names(list(nodes.spellings), config, keys=list(nodes.names), executor=executor)
        self.learned = learned
        self.node_of = nodes.node_of
        self.scorer = learned_table(node_table(nodes, features, config), nodes).with_weights(learned)
        if not tf:
            self.scorer.comparisons = [c if not c.tf else type(c)(c.name, c.levels, False)
                                       for c in self.scorer.comparisons]

    def __len__(self) -> int:
        return len(self.node_of)

    def probabilities(self, left: Sequence[int], right: Sequence[int]) -> np.ndarray:
        """The match probability of each pair of records (left[k], right[k]), as the stage's scorer gives it."""
        index = np.asarray(self.node_of)
        return np.asarray(self.scorer.score(index[np.asarray(left, dtype=np.int64)],
                                            index[np.asarray(right, dtype=np.int64)]).score, dtype=float)

    def explain(self, i: int, j: int) -> PairExplanation:
        """The explanation of records i and j."""
        learned, scorer = self.learned, self.scorer
        left, right = self.node_of[i:i + 1], self.node_of[j:j + 1]
        scored = scorer.score(left, right)
        levels = scored.levels[0]
        tf = scorer.tf_correction(left, scored.levels)[0]
        terms = []
        for comparison, weights, level in zip(scorer.comparisons, learned.comparisons, levels.tolist(), strict=True):
            if level < 0:
                terms.append(ExplanationTerm(comparison.name, "missing", None, None, 0.0))
                continue
            m, u = weights.m[level], weights.u[level]
            adjusted = level == 0 and comparison.tf and comparison.name in learned.tf_adjusted
            if adjusted:
                u = u / 2.0 ** tf  # the name's share of the records
            terms.append(ExplanationTerm(comparison.name, comparison.levels[level], m, u, math.log2(m / u), adjusted))
        total = float(scored.weight[0])
        return PairExplanation(learned.prior, learned.prior_weight, tuple(terms), total,
                               float(np.asarray(scored.score)[0]))
