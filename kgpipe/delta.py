"""What a stage's run changed in its outputs: the delta between the outputs it replaced and the ones it wrote
(for fuse: entities added, removed, merged, split and relabelled, triples added and removed). It is kept in the
run history (kgpipe.history: the stage's record in the run that wrote the outputs) and shown by `kgpipe diff`
and the report, never in an artifact, whose bytes stay those of a full run.

Where the comparison happens: in the runner, once the stage has written its new outputs to their temporary
paths and before they replace the old ones, the one moment both exist (kgpipe.runner._stage_delta). The
alternative, a snapshot of each run's outputs kept with the history (every mention's entity, every triple's
key), would let any two runs be compared, but it costs what the corpus costs, per run, times keep_runs: tens
of MB a run for a million mentions. A delta is a count per kind of change plus at most EXAMPLES rows of each:
a few KB a run, whatever the corpus. `kgpipe diff A B` with runs in between shows each run's delta in turn
(merges and splits of successive runs do not add up to one delta, so they are not combined).

A stage type opts in with StageType.delta(old, new) (the fuse stage: kgpipe.stages.fuse_delta). A comparison
that fails is logged and recorded as a note; it never fails the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kgpipe.summary import Cell, StageSummary, SummaryTable

EXAMPLES = 5  # rows kept of each kind of change


@dataclass(frozen=True)
class DeltaPart:
    """One kind of change ('entities merged'): how many, and up to EXAMPLES of them as rows of `columns`."""

    kind: str
    count: int
    columns: tuple[str, ...] = ()
    examples: tuple[tuple[Cell, ...], ...] = ()

    @classmethod
    def of(cls, kind: str, count: int, columns: tuple[str, ...], rows: Iterable[tuple[Cell, ...]]) -> DeltaPart:
        """A part with the first EXAMPLES of `rows` (the caller orders them: most telling first)."""
        examples: list[tuple[Cell, ...]] = []
        for row in rows:
            if len(examples) == EXAMPLES:
                break
            examples.append(tuple(row))
        return cls(kind, count, columns, tuple(examples))


@dataclass(frozen=True)
class StageDelta:
    """What one run of a stage changed in its outputs. `parts`: every kind of change the type compares, zero
    counts included (so that 'nothing merged' is said); `compared`: False when there was nothing to compare
    with (the stage's first run) or the comparison failed, `note` says which; `base_outs`: the hashes of the
    outputs compared against, by path (what the lock entry lists); `base_run`: the recorded run that wrote
    them (None: not in the history); `seconds`: how long the comparison took."""

    parts: tuple[DeltaPart, ...] = ()
    compared: bool = True
    note: str | None = None
    base_outs: dict[str, str] = field(default_factory=dict)
    base_run: str | None = None
    seconds: float = 0.0

    @classmethod
    def not_compared(cls, note: str) -> StageDelta:
        return cls(compared=False, note=note)

    @classmethod
    def missing(cls, old: dict[str, Path], needs: Iterable[str]) -> StageDelta | None:
        """The not-compared delta when `old` (the previous outputs that exist, by name) lacks one of `needs`;
        None when all are there."""
        absent = [name for name in needs if name not in old]
        if not absent:
            return None
        if not old:
            return cls.not_compared("no previous outputs to compare with (the stage's first run)")
        return cls.not_compared(f"the previous output(s) {', '.join(absent)} no longer exist: nothing to compare")

    @property
    def changed(self) -> bool:
        return any(part.count for part in self.parts)

    @property
    def counts(self) -> dict[str, int]:
        return {part.kind: part.count for part in self.parts}

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> StageDelta:
        """A delta read back from a run record; raises ValueError (or TypeError, KeyError) when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("a stage's delta must be an object")
        parts = tuple(DeltaPart(str(p["kind"]), int(p["count"]), tuple(p.get("columns", ())),
                                tuple(tuple(row) for row in p.get("examples", ()))) for p in data.get("parts", ()))
        return cls(parts=parts, compared=bool(data.get("compared", True)), note=data.get("note"),
                   base_outs=dict(data.get("base_outs") or {}), base_run=data.get("base_run"),
                   seconds=float(data.get("seconds", 0.0)))

    def describe(self, run_id: str | None = None) -> str:
        """One line: which run changed what, against which run's outputs."""
        made = f"run {run_id}" if run_id else "the run"
        if not self.compared:
            return f"{made}: {self.note}"
        since = f"run {self.base_run}" if self.base_run else "a run no longer in the history"
        return f"{made} against the outputs of {since}" + (f" ({self.note})" if self.note else "")

    def summary(self, run_id: str | None = None) -> StageSummary:
        """The delta for a reader (the report renders it like a stage's own summary): a table of counts, then a
        table of examples per kind of change."""
        summary = StageSummary("Changes since the previous run", "changes", notes=[self.describe(run_id)])
        if not self.compared:
            return summary
        if not self.changed:
            summary.notes.append("no changes: the outputs hold the same entities, labels and triples")
        summary.tables.append(SummaryTable("", ("change", "count"), [(p.kind, p.count) for p in self.parts]))
        summary.tables += [SummaryTable(f"{p.kind} ({len(p.examples)} of {p.count})", p.columns, p.examples)
                           for p in self.parts if p.examples]
        return summary
