"""The last run as the explorer shows it: each stage's status, duration, counts and timings (from the lock file
and kgpipe.explore.stage_timings), the stage graph, and the run report's summary of each stage.

What a stage says about itself comes from its type's summary hook (StageType.summarise)."""

from __future__ import annotations

from typing import Any

from kgpipe.dag import build_graph, topological_order
from kgpipe.lockfile import LockFile
from kgpipe.web import models as m
from kgpipe.web.data import SnapshotStore

Scalar = float | int | str | bool | None


def _scalars(data: dict[str, Any]) -> dict[str, Scalar]:
    return {str(k): v for k, v in data.items() if isinstance(v, float | int | str | bool) or v is None}


def run_overview(store: SnapshotStore) -> m.Run:
    """Stages in run order with their status, duration, counts (the lock entry's summary) and timings."""
    from kgpipe.explore import stage_timings

    pipe = store.pipe
    graph = build_graph(pipe)
    statuses = {s.name: s for s in store.stage_statuses()}
    lock = LockFile.read(store.lock_path).stages
    timings = stage_timings(pipe).set_index("stage") if lock else None
    stages = []
    for name in topological_order(graph):
        entry = lock.get(name)
        metrics: dict[str, Scalar] = {}
        if timings is not None and name in timings.index:
            row = timings.loc[name].drop(labels=["type", "started_at", "duration_s"], errors="ignore")
            metrics = {k: (None if v != v else v) for k, v in _scalars(row.to_dict()).items()}  # NaN: not measured
        status = statuses[name].word if name in statuses else "up to date"
        stages.append(m.RunStage(name=name, type=pipe.stages[name].type.name, status=status,
                                 duration_s=entry.duration_s if entry else None,
                                 counts=_scalars(entry.summary) if entry else {}, metrics=metrics))
    return m.Run(stages=stages, edges=[(a, b) for a, b in graph.edges])


def report_sections(store: SnapshotStore) -> tuple[str, dict[str, str]]:
    """The run report's DAG picture (an <img> tag) and, per stage, its own summary (StageType.summarise) and what
    the run that wrote its outputs changed in them (StageType.delta, from the run history), as the report renders
    them."""
    from kgpipe.history import History, delta_behind
    from kgpipe.html import esc
    from kgpipe.report import dag_image, render_summary
    from kgpipe.summary import try_summarise

    pipe = store.pipe
    statuses = {s.name: s for s in store.stage_statuses()}
    lock = LockFile.read(store.lock_path).stages
    records = History.of(pipe).records()
    summaries = {}
    for name, stage in pipe.stages.items():
        parts = []
        summary = try_summarise(stage, lock.get(name))
        if isinstance(summary, str):
            parts.append(f"<p class='warning'>no summary: {esc(summary)}</p>")
        elif summary is not None:
            parts.append(render_summary(summary))
        behind = delta_behind(records, name, lock.get(name))  # what the run that wrote these outputs changed
        if behind is not None:
            parts.append(render_summary(behind[1].summary(behind[0])))
        if parts:
            summaries[name] = "".join(parts)
    return dag_image(pipe, statuses, lock), summaries
