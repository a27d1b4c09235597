"""The extract stage's summary: how many mentions and relations, by label, by how they were found, by relation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kgpipe.summary import StageSummary, counts_table

if TYPE_CHECKING:
    from kgpipe.config import Stage


def summarise(stage: Stage) -> StageSummary:
    from kgpipe.artifacts import read_table

    summary = StageSummary("Extraction counts", "extraction-counts")
    mentions, relations = stage.outs.get("mentions"), stage.outs.get("relations")
    if mentions is not None and mentions.exists():
        table = read_table(mentions)
        summary.counts.update(mentions=len(table), documents=int(table["doc_id"].nunique()))
        summary.tables.append(counts_table(table["label"], "mentions by label", "label"))
        if "source" in table:
            summary.tables.append(counts_table(table["source"], "mentions by how they were found", "found by"))
    if relations is not None and relations.exists():
        table = read_table(relations)
        summary.counts["relations"] = len(table)
        summary.tables.append(counts_table(table["relation"], "relations by relation", "relation"))
    return summary
