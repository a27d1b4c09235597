"""The last run as the explorer shows it: each stage's status, duration, counts and timings (from the lock file
and kgpipe.explore.stage_timings), the stage graph, and the run report's summary of each stage.

One place for what a stage says about itself, so that it can move to a summary hook on StageType."""

from __future__ import annotations

from typing import Any

from kgpipe.dag import StageStatus, build_graph, topological_order
from kgpipe.lockfile import LockFile
from kgpipe.web import models as m
from kgpipe.web.data import SnapshotStore

Scalar = float | int | str | bool | None


def _scalars(data: dict[str, Any]) -> dict[str, Scalar]:
    return {str(k): v for k, v in data.items() if isinstance(v, float | int | str | bool) or v is None}


def _status_word(status: StageStatus | None) -> str:
    if status is None or not status.stale:
        return "up to date"
    return "never run" if status.reasons == ["never run"] else "stale"


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
        stages.append(m.RunStage(name=name, type=pipe.stages[name].type.name, status=_status_word(statuses.get(name)),
                                 duration_s=entry.duration_s if entry else None,
                                 counts=_scalars(entry.summary) if entry else {}, metrics=metrics))
    return m.Run(stages=stages, edges=[(a, b) for a, b in graph.edges])


def report_sections(store: SnapshotStore) -> tuple[str, dict[str, str]]:
    """The run report's DAG picture (an <img> tag) and its summary of each stage (HTML), as the report draws
    them."""
    from kgpipe import report

    pipe = store.pipe
    statuses = {s.name: s for s in store.stage_statuses()}
    lock = LockFile.read(store.lock_path).stages
    dag = report._png_tag(report._dag_png(pipe, statuses, lock), "pipeline DAG")
    summaries = {}
    for name, stage in pipe.stages.items():
        summary = report._SUMMARIES.get(stage.type.name)
        if summary is None:
            continue
        try:
            summaries[name] = summary(stage, lock.get(name))
        except Exception as exc:  # a half-written or older artifact must not cost the whole page
            summaries[name] = f"<p class='warning'>no summary: {report._esc(type(exc).__name__)}</p>"
    return dag, summaries
