"""What changed between two recorded runs, per stage: params (old -> new), counts and metrics (with the delta of
numbers), which outputs' hashes changed, and what the runs up to the newer one changed in the outputs of a stage
that compares them (kgpipe.delta: each run's own, in order); modelled on DVC's `params diff` and `metrics
diff`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kgpipe.dag import UNSET, changed_leaves
from kgpipe.delta import StageDelta
from kgpipe.history import RAN, RunRecord, StageRecord


@dataclass(frozen=True)
class ValueChange:
    """A param, count or metric that differs; `old`/`new` are UNSET where only one run has it."""

    key: str
    old: Any
    new: Any

    @property
    def delta(self) -> float | None:
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (self.old, self.new))
        return round(self.new - self.old, 6) if numbers else None

    def as_json(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, **({"delta": self.delta} if self.delta is not None else {})}


@dataclass(frozen=True)
class OutChange:
    """An output of a stage and its content hash in each run (None: not produced by then)."""

    path: str
    old: str | None
    new: str | None

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass(frozen=True)
class RunDelta:
    """What run `run` changed in a stage's outputs (against the outputs it replaced)."""

    run: str
    delta: StageDelta

    def as_json(self) -> dict[str, Any]:
        return {"run": self.run, **self.delta.as_json()}


@dataclass
class StageDiff:
    stage: str
    old_status: str | None
    new_status: str | None
    params: list[ValueChange] = field(default_factory=list)
    counts: list[ValueChange] = field(default_factory=list)
    metrics: list[ValueChange] = field(default_factory=list)
    outs: list[OutChange] = field(default_factory=list)
    deltas: list[RunDelta] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.params or self.counts or self.metrics or self.deltas or any(o.changed for o in self.outs))

    def as_json(self) -> dict[str, Any]:
        return {"status": {"old": self.old_status, "new": self.new_status},
                "params": {c.key: c.as_json() for c in self.params},
                "counts": {c.key: c.as_json() for c in self.counts},
                "metrics": {c.key: c.as_json() for c in self.metrics},
                "outs": {o.path: {"old": o.old, "new": o.new, "changed": o.changed} for o in self.outs},
                "deltas": [d.as_json() for d in self.deltas]}


@dataclass
class RunDiff:
    old: RunRecord
    new: RunRecord
    stages: list[StageDiff]

    def as_json(self) -> dict[str, Any]:
        return {"old": self.old.id, "new": self.new.id,
                "overrides": {"old": self.old.overrides, "new": self.new.overrides},
                "stages": {s.stage: s.as_json() for s in self.stages}}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[ValueChange]:
    return [ValueChange(key, before, after) for key, before, after in changed_leaves(old, new)]


def _flat_changes(old: dict[str, Any], new: dict[str, Any]) -> list[ValueChange]:
    """Counts and metrics are flat already (dotted keys): compare key by key."""
    return [ValueChange(key, old.get(key, UNSET), new.get(key, UNSET))
            for key in sorted(set(old) | set(new)) if old.get(key, UNSET) != new.get(key, UNSET)]


def diff_stage(name: str, old: StageRecord | None, new: StageRecord | None, steps: Sequence[RunRecord] = ()
               ) -> StageDiff:
    """`steps`: the runs after the older one up to the newer one, oldest first, whose deltas of this stage's
    outputs are shown (those that compared and changed something, or could not compare)."""
    empty = StageRecord("", {})
    a, b = old or empty, new or empty
    outs = [OutChange(path, a.outs.get(path), b.outs.get(path)) for path in sorted(set(a.outs) | set(b.outs))]
    deltas = []
    for record in steps:
        stage = record.stages.get(name)
        if stage is not None and stage.status == RAN and stage.delta is not None and (
                stage.delta.changed or not stage.delta.compared):
            deltas.append(RunDelta(record.id, stage.delta))
    return StageDiff(name, old.status if old else None, new.status if new else None,
                     params=_changes(a.params, b.params) if old and new else [],
                     counts=_flat_changes(a.counts, b.counts), metrics=_flat_changes(a.metrics, b.metrics),
                     outs=outs, deltas=deltas)


def diff_runs(old: RunRecord, new: RunRecord, records: Sequence[RunRecord] = ()) -> RunDiff:
    """Every stage of either run (the newer run's order first). `records`: the history (oldest first), for the
    deltas of the runs after `old` up to `new`; without it, `new`'s own (when it is the newer)."""
    steps = [r for r in records if old.id < r.id <= new.id] if records else [new] if old.id < new.id else []
    names = list(dict.fromkeys([*new.stages, *old.stages]))
    return RunDiff(old, new, [diff_stage(n, old.stages.get(n), new.stages.get(n), steps) for n in names])
