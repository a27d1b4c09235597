"""Run history: one JSON record per run in `<workspace>/runs/` (`.kgpipe/<pipeline>/runs/` by default), the last
`keep_runs` of them (20 unless the pipeline file says otherwise).

A record holds, per stage, what the run did with it (ran, up to date, failed, not run), its params as resolved
for the run (-S overrides applied), its lock entry after the run (deps and outs hashes, the summary the stage
returned), the counts and metrics of that summary, the run's timings, and for a stage that ran and whose type
compares its outputs (StageType.delta), what it changed in them against the outputs it replaced
(kgpipe.delta.StageDelta: counts and a few examples, so a record stays small whatever the corpus). Run ids
sort by time: the UTC start to the millisecond, then a short hash of the run's params (equal hashes: the same
params in every stage).
Records are written atomically and never fail a run (an error writing one is logged).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kgpipe import __version__
from kgpipe.atomic import TMP_MARKER, atomic_write_text, remove_path
from kgpipe.config import KEEP_RUNS, Pipeline
from kgpipe.delta import StageDelta
from kgpipe.errors import KgpipeError
from kgpipe.hashing import hash_params
from kgpipe.lockfile import LockEntry

log = logging.getLogger(__name__)

HISTORY_FORMAT = 1
RUN_ID = re.compile(r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}")

# what a run did with a stage
RAN, UP_TO_DATE, FAILED, NOT_RUN, NOT_SELECTED = "ran", "up to date", "failed", "not run", "not selected"


def split_summary(summary: dict[str, Any]) -> tuple[dict[str, int], dict[str, float | str], dict[str, float]]:
    """A stage's summary (what run() returned, kept in its lock entry) as counts (integers), metrics (other
    numbers and text) and timings (the numbers under 'timings'); nested blocks become dotted keys, lists are
    left out."""
    counts: dict[str, int] = {}
    metrics: dict[str, float | str] = {}
    timings: dict[str, float] = {}

    def walk(value: Any, key: str, in_timings: bool) -> None:
        if isinstance(value, dict):
            for sub, inner in value.items():
                walk(inner, f"{key}.{sub}" if key else str(sub), in_timings or (not key and sub == "timings"))
        elif isinstance(value, bool) or value is None:
            metrics[key] = str(value).lower() if isinstance(value, bool) else "null"
        elif in_timings:
            if isinstance(value, int | float):
                timings[key.removeprefix("timings.")] = value
        elif isinstance(value, int):
            counts[key] = value
        elif isinstance(value, float | str):
            metrics[key] = value

    walk(summary, "", False)
    return counts, metrics, timings


@dataclass
class StageRecord:
    """One stage in one run: what the run did with it, its params, its lock entry after the run (None: never
    run successfully), the counts and metrics of that entry's summary, (when it ran or failed) its timings,
    and (when it ran) what it changed in its outputs (None: the type does not compare them)."""

    status: str
    params: dict[str, Any]
    lock: LockEntry | None = None
    counts: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float | str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    delta: StageDelta | None = None

    @classmethod
    def of(cls, status: str, params: dict[str, Any], entry: LockEntry | None, duration_s: float | None,
           delta: StageDelta | None = None) -> StageRecord:
        counts, metrics, timings = split_summary(entry.summary) if entry is not None else ({}, {}, {})
        if status != RAN:  # the entry's timings are an earlier run's
            timings = {}
        if duration_s is not None:
            timings = {"duration_s": round(duration_s, 4), **timings}
        return cls(status, params, entry, counts, metrics, timings, delta if status == RAN else None)

    @property
    def outs(self) -> dict[str, str]:
        return dict(self.lock.outs) if self.lock is not None else {}


@dataclass
class RunRecord:
    """One run of a pipeline: its outcome (success, failed or interrupted), options, -S overrides and stages."""

    id: str
    pipeline: str
    status: str
    started_at: str
    finished_at: str
    duration_s: float
    stages: dict[str, StageRecord]
    overrides: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failed_stage: str | None = None
    kgpipe_version: str = __version__
    format: int = HISTORY_FORMAT

    def with_status(self, *statuses: str) -> list[str]:
        return [name for name, stage in self.stages.items() if stage.status in statuses]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """A record read back; raises ValueError (or TypeError) when it is not one."""
        if not isinstance(data, dict) or data.get("format") != HISTORY_FORMAT:
            raise ValueError(f"not a run record of format {HISTORY_FORMAT}")
        stages = {}
        for name, stage in dict(data["stages"]).items():
            lock, delta = stage.get("lock"), stage.get("delta")
            stages[name] = StageRecord(**{**stage, "lock": LockEntry(**lock) if lock is not None else None,
                                          "delta": StageDelta.from_json(delta) if delta is not None else None})
        return cls(**{**data, "stages": stages})


def _with_base_run(delta: StageDelta, stage: str, earlier: list[RunRecord]) -> StageDelta:
    """The delta naming the newest recorded run whose outputs of the stage are the ones compared against."""
    if not delta.compared:
        return delta
    for record in reversed(earlier):
        former = record.stages.get(stage)
        if former is not None and former.outs == delta.base_outs:
            return replace(delta, base_run=record.id)
    return delta


def delta_behind(records: list[RunRecord], stage: str, entry: LockEntry | None) -> tuple[str, StageDelta] | None:
    """The run that wrote a stage's current outputs (those `entry`, its lock entry, lists) and what it changed
    in them, from the newest record where the stage ran with those outputs; None when none says."""
    if entry is None:
        return None
    for record in reversed(records):
        found = record.stages.get(stage)
        if found is not None and found.status == RAN and found.outs == entry.outs:
            return (record.id, found.delta) if found.delta is not None else None
    return None


def new_run_id(started: datetime, params_hash: str) -> str:
    return f"{started:%Y%m%dT%H%M%S}.{started.microsecond // 1000:03d}Z-{params_hash[:6]}"


class History:
    """The run records of one workspace, oldest first."""

    def __init__(self, folder: Path, keep: int = KEEP_RUNS) -> None:
        self.folder = folder
        self.keep = keep

    @classmethod
    def of(cls, pipeline: Pipeline) -> History:
        return cls(pipeline.workspace / "runs", pipeline.keep_runs)

    def paths(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("*.json") if RUN_ID.fullmatch(p.stem))

    def read(self) -> tuple[list[RunRecord], list[str]]:
        """The records, oldest first, and a line for each file that could not be read (skipped)."""
        records, damaged = [], []
        for path in self.paths():
            try:
                record = RunRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                damaged.append(f"{path}: not a readable run record ({type(exc).__name__}: {exc})")
                continue
            records.append(record)
        return records, damaged

    def records(self) -> list[RunRecord]:
        return self.read()[0]

    def last(self) -> RunRecord | None:
        """The newest readable record (None when there is none)."""
        for path in reversed(self.paths()):
            try:
                return RunRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError, KeyError):
                continue
        return None

    def write(self, record: RunRecord) -> Path:
        """Write a record atomically, then keep only the newest `keep` (and remove what an interrupted write
        left behind). Called with the run locks held."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.folder.glob(f"*{TMP_MARKER}*"):
            remove_path(leftover)
        path = self.folder / f"{record.id}.json"
        # stages in the pipeline's order, not sorted: `kgpipe diff` lists them so
        atomic_write_text(path, json.dumps(record.as_json(), indent=1, default=str) + "\n")
        for old in self.paths()[:-self.keep]:
            remove_path(old)
        return path


def resolve_run(records: list[RunRecord], ref: str, folder: Path) -> RunRecord:
    """A record by id, unique id prefix, or -N (-1: the newest, -2: the one before)."""
    def unknown(message: str) -> KgpipeError:
        ids = ", ".join(r.id for r in records) or "(none: run the pipeline first)"
        return KgpipeError(message, hint=f"runs in {folder} (oldest first): {ids}; or -1 (newest), -2, ...")

    if re.fullmatch(r"-\d+", ref):
        back = int(ref[1:])
        if not 1 <= back <= len(records):
            raise unknown(f"no run {ref}: {len(records)} run(s) recorded")
        return records[-back]
    matches = [r for r in records if r.id == ref] or [r for r in records if r.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise unknown(f"run id prefix '{ref}' is ambiguous: {', '.join(r.id for r in matches)}")
    raise unknown(f"no run with id '{ref}'")


def returned_overrides(last: RunRecord | None, overrides: dict[str, Any]) -> dict[str, list[str]]:
    """Per stage, the -S of the last run (as 'key=value') that this run does not repeat: those params are back
    to the pipeline file's values."""
    back: dict[str, list[str]] = {}
    if last is None:
        return back
    for key, value in last.overrides.items():
        if key not in overrides:
            back.setdefault(key.split(".", 1)[0], []).append(f"{key}={json.dumps(value)}")
    return back


class RunRecorder:
    """Collects what a run does and writes its record at the end (see runner._run_selected)."""

    def __init__(self, pipeline: Pipeline, overrides: dict[str, Any], options: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.overrides = overrides
        self.options = options
        self.history = History.of(pipeline)
        self.started = datetime.now(UTC)
        self.t0 = time.perf_counter()
        self.durations: dict[str, float] = {}
        self.deltas: dict[str, StageDelta] = {}  # what a stage that ran changed in its outputs
        self.current: str | None = None  # the stage the run is at (checking or running it)
        self.failed_stage: str | None = None

    def record(self, selected: list[str], ran: list[str], skipped: list[str], lock: dict[str, LockEntry],
               error: BaseException | None) -> RunRecord:
        if error is not None and self.failed_stage is None and self.current not in (*ran, *skipped):
            self.failed_stage = self.current  # failed before it started (a dep that cannot be read)
        stages = {}
        earlier = self.history.records() if self.deltas else []
        for name, stage in self.pipeline.stages.items():
            status = (RAN if name in ran else UP_TO_DATE if name in skipped else FAILED
                      if name == self.failed_stage else NOT_RUN if name in selected else NOT_SELECTED)
            delta = self.deltas.get(name)
            stages[name] = StageRecord.of(status, stage.params_dict(), lock.get(name), self.durations.get(name),
                                          _with_base_run(delta, name, earlier) if delta is not None else None)
        params_hash = hash_params({name: entry.params for name, entry in stages.items()})
        run_id = new_run_id(self.started, params_hash)
        while (self.history.folder / f"{run_id}.json").exists():  # two runs in one millisecond
            self.started += timedelta(milliseconds=1)
            run_id = new_run_id(self.started, params_hash)
        status = ("success" if error is None else "interrupted" if isinstance(error, KeyboardInterrupt)
                  else "failed")
        message = (error.message if isinstance(error, KgpipeError) else f"{type(error).__name__}: {error}"
                   ) if error is not None else None
        return RunRecord(
            id=run_id, pipeline=str(self.pipeline.path), status=status,
            started_at=self.started.isoformat(timespec="milliseconds"),
            finished_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            duration_s=round(time.perf_counter() - self.t0, 4), stages=stages, overrides=self.overrides,
            options=self.options, error=message, failed_stage=self.failed_stage)

    def write(self, selected: list[str], ran: list[str], skipped: list[str], lock: dict[str, LockEntry],
              error: BaseException | None) -> str | None:
        """Write the run's record; returns its id, or None when history is off or the write failed (logged:
        a run that succeeded stays a success, a failed one keeps its own error)."""
        if self.history.keep <= 0:
            return None
        try:
            record = self.record(selected, ran, skipped, lock, error)
            self.history.write(record)
        except OSError as exc:
            log.warning("could not record the run in %s: %s", self.history.folder, exc)
            return None
        return record.id
