"""The fuse stage's summary, from its fusion report: entity counts, the overlap between source graphs, the
largest merges and the conflicting values of functional relations; with learned weights (resolution.learn: em)
their prior and m/u per comparison level, whether this run learned or reused them (its lock entry), and the
waterfalls of a few example pairs of the run (kgpipe.fuse_examples: the merged pair with the lowest probability,
the kept-apart pair with the highest, one in the largest merge)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kgpipe.summary import StageSummary, SummaryTable, json_output

if TYPE_CHECKING:
    from kgpipe.config import Stage
    from kgpipe.kg.learned_weights import LearnedWeights
    from kgpipe.lockfile import LockEntry

OVERLAP_COLUMNS = ("graph", "graph", "shared nodes", "node Jaccard", "node overlap coefficient", "shared edges",
                   "edge Jaccard", "edge overlap coefficient")


def summarise(stage: Stage, entry: LockEntry | None = None) -> StageSummary | None:
    from kgpipe.explore import fusion_summary

    report = json_output(stage.outs, "report")
    if report is None:
        return None
    tables = fusion_summary(report)
    entities = report.get("entities", {})
    summary = StageSummary("Fusion report", "fusion-report")
    for part in ("entities", "triples"):
        total = report.get(part, {}).get("total")
        if isinstance(total, int):
            summary.counts[part] = total
    overlap = [(*pair["graphs"][:2], *(pair[part][key] for part in ("nodes", "edges")
                                        for key in ("shared", "jaccard", "overlap_coefficient")))
               for pair in report.get("overlap", [])]
    merges = [(str(label), int(mentions), int(names), str(forms)) for label, mentions, names, forms
              in tables.largest_merges[["label", "mentions", "names", "surface forms"]].values.tolist()]
    summary.tables += [
        SummaryTable("", ("entities", "count"), list(entities.items())),
        SummaryTable("Overlap similarity between source graphs", OVERLAP_COLUMNS, overlap),
        SummaryTable("Largest merges", ("entity", "mentions", "names", "surface forms (mentions)"), merges),
    ]
    if len(tables.conflicts):
        summary.tables.append(SummaryTable("Conflicting values of functional relations",
                                           ("entity", "relation", "values"),
                                           [tuple(map(str, row)) for row in tables.conflicts.values.tolist()]))
    _learned(summary, stage, entry, report.get("inputs", {}).get("mentions"))
    return summary


def _learned(summary: StageSummary, stage: Stage, entry: LockEntry | None, mentions: int | None) -> None:
    """The learned weights' prior and table, and how this run came by them; nothing with learn fixed."""
    from kgpipe.kg.stored_weights import read_stored

    path = stage.outs.get("learned_weights")
    if path is None or not path.exists():
        return
    weights = read_stored(path).weights
    if weights is None:
        return
    how = entry.summary.get("learned_weights") if entry is not None else None
    if isinstance(how, str):
        summary.metrics["learned_weights"] = how
    note = entry.summary.get("learned_weights_note") if entry is not None else None
    if isinstance(note, str):
        summary.notes.append(f"learned weights: {note}")
    summary.metrics.update(prior=weights.prior, prior_weight=weights.prior_weight, em_iterations=weights.iterations,
                           em_converged="yes" if weights.converged else "no")
    summary.tables.append(weights_table(weights))
    _examples(summary, stage, entry, weights, mentions)


def _examples(summary: StageSummary, stage: Stage, entry: LockEntry | None, weights: LearnedWeights,
              mentions: int | None) -> None:
    """The example pairs' waterfalls; a note instead where the run is too large to score them here, a warning
    where its files cannot be read (the rest of the summary stands)."""
    from kgpipe.errors import KgpipeError
    from kgpipe.fuse_examples import MAX_MENTIONS, example_pairs
    from kgpipe.fuse_explain import FusedRun, last_params
    from kgpipe.summary import PairChart

    if isinstance(mentions, int) and mentions > MAX_MENTIONS:
        summary.notes.append(f"no example pairs: {mentions:,} mentions are more than the summary scores "
                             f"({MAX_MENTIONS:,}); kgpipe explain HEAD TAIL explains any pair")
        return
    try:
        examples = example_pairs(FusedRun.of_stage(stage, last_params(stage, entry), weights))
    except KgpipeError as exc:
        summary.warnings.append(f"no example pairs: {exc}")
        return
    for example in examples:
        found = example.explained
        note = "the run put them in one entity" if found.together else "the run kept them apart"
        if found.type_factor != 1.0:
            note += f"; types incompatible: the probability is the weight's times {found.type_factor:g}"
        summary.explanations.append(PairChart(example.why, example.head, example.tail, found.explanation, note))


def weights_table(weights: LearnedWeights) -> SummaryTable:
    """m, u (4 significant digits: a u of 1e-5 is no 0.0000) and log2(m/u) of every comparison level (missing
    levels count 0 and are not listed)."""
    rows = [(c.name, level, f"{c.m[k]:.4g}", f"{c.u[k]:.4g}", round(c.weight(k), 3)) for c in weights.comparisons
            for k, level in enumerate(c.levels)]
    title = "Learned match weights (prior " + f"{weights.prior:.4g}, " + (
        "name exact level term-frequency adjusted)" if "name" in weights.tf_adjusted else "no tf adjustment)")
    return SummaryTable(title, ("comparison", "level", "m", "u", "log2(m/u)"), rows)
