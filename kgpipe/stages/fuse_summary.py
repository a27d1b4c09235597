"""The fuse stage's summary, from its fusion report: entity counts, the overlap between source graphs, the
largest merges and the conflicting values of functional relations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kgpipe.summary import StageSummary, SummaryTable, json_output

if TYPE_CHECKING:
    from kgpipe.config import Stage

OVERLAP_COLUMNS = ("graph", "graph", "shared nodes", "node Jaccard", "node overlap coefficient", "shared edges",
                   "edge Jaccard", "edge overlap coefficient")


def summarise(stage: Stage) -> StageSummary | None:
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
    return summary
