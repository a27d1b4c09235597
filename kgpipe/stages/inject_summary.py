"""The inject stage's summary: its metrics file's scalar values (mode, fit of the map, task results)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kgpipe.summary import StageSummary, json_output, scalar

if TYPE_CHECKING:
    from kgpipe.config import Stage


def summarise(stage: Stage) -> StageSummary | None:
    metrics = json_output(stage.outs, "metrics")
    if metrics is None:
        return None
    return StageSummary("Injection metrics", "injection-metrics",
                        metrics={k: scalar(v) for k, v in metrics.items() if not isinstance(v, dict | list)})
