"""Run a pipeline: stale stages in topological order under a workspace lock, outputs committed atomically.

A stage that raises (or is interrupted) leaves every earlier artifact and its lock entry untouched; its
scratch folder stays for a resumed attempt and is removed when the stage succeeds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import ValidationError

from kgpipe import __version__
from kgpipe.atomic import (
    OUT_MARKER,
    RUN_LOCK,
    TMP_MARKER,
    atomic_write_text,
    commit_path,
    leftovers_of,
    remove_path,
    temp_path_for,
)
from kgpipe.config import Pipeline, Stage, as_pipeline
from kgpipe.dag import StageStatus, build_graph, plan, select_stages, stage_status
from kgpipe.delta import StageDelta
from kgpipe.engine import Executor, ExecutorConfig, executor_class
from kgpipe.errors import KgpipeError, LockedError, PipelineError, StageError, WorkspaceError
from kgpipe.hashing import HashCache
from kgpipe.history import History, RunRecorder, returned_overrides
from kgpipe.lockfile import LockEntry, LockFile
from kgpipe.overrides import Overrides, apply_overrides, recorded_values
from kgpipe.stage import StageContext, ValidationContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunEvent:
    """What the runner tells its caller: kind is plan, skip, start, progress, done, fail or note (a line for the
    user, in reasons: a param back to the pipeline file's value after a run with -S)."""

    kind: str
    stage: str
    reasons: tuple[str, ...] = ()
    description: str = ""
    completed: int = 0
    total: int | None = None
    duration_s: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


EventCallback = Callable[[RunEvent], None]


@dataclass
class RunResult:
    """What ran, what was already up to date, and where every stage's outputs are."""

    pipeline: Path
    root: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    would_run: dict[str, list[str]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Path]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_id: str | None = None  # the run's record in the history (None: a dry run, or history off)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"pipeline {self.pipeline}"] + [f"  note: {note}" for note in self.notes]
        if self.would_run:
            lines += [f"  would run {s}: {'; '.join(r)}" for s, r in self.would_run.items()]
        lines += [f"  ran {s} ({self.durations[s]:.2f}s) {self.summaries.get(s) or ''}" for s in self.ran]
        lines += [f"  up to date: {s}" for s in self.skipped]
        return "\n".join(lines)


@dataclass
class RunLocks:
    """The file locks a run holds (workspace, artifacts folder); released in reverse order."""

    locks: list[FileLock]

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()


class Workspace:
    """The pipeline's private folder: lock file, run lock, hash cache, scratch folders."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.dir = pipeline.workspace
        self.lock_path = self.dir / "lock.json"
        self.hash_cache_path = self.dir / "hash_cache.json"

    def scratch_for(self, stage: str, fingerprint: str) -> Path:
        return self.dir / "scratch" / f"{stage}-{fingerprint[:16]}"

    def scratch_folders(self, stage: str) -> list[Path]:
        return sorted((self.dir / "scratch").glob(f"{stage}-*"))

    def acquire(self, wait: float, artifacts: Path | None = None) -> RunLocks:
        """Hold the run lock, waiting up to `wait` seconds; fail clearly if another run holds it. With
        `artifacts`, also hold that folder's lock: two pipeline files sharing an artifacts folder (each with its
        own workspace) never write into it at the same time."""
        self.dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        locks: list[FileLock] = []
        places = [(self.dir / "run.lock", self.dir, "workspace")]
        if artifacts is not None:
            artifacts.mkdir(parents=True, exist_ok=True)
            places.append((artifacts / RUN_LOCK, artifacts, "artifacts folder"))
        try:
            for lock_path, folder, what in places:
                lock = FileLock(lock_path)
                try:
                    lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
                except Timeout:
                    raise LockedError(f"another kgpipe run is using the {what} {folder}{self._holder()}",
                                      hint="wait for it to finish, or pass --wait SECONDS to queue behind it"
                                      ) from None
                locks.append(lock)
        except BaseException:
            for lock in reversed(locks):
                lock.release()
            raise
        atomic_write_text(self.dir / "run.owner", json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                              "started_at": _now(), "argv": sys.argv}))
        return RunLocks(locks)

    def _holder(self) -> str:
        try:
            who = json.loads((self.dir / "run.owner").read_text(encoding="utf-8"))
            return f" (pid {who['pid']} on {who['host']}, started {who['started_at']})"
        except (OSError, ValueError, KeyError, TypeError):
            return ""

    def remove_leftovers(self, pipeline: Pipeline) -> list[Path]:
        """Temporary copies that a killed run left beside outs and in the workspace (only kgpipe's own
        names; called with the run locks held, so no other run is writing them)."""
        found = [p for stage in pipeline.stages.values() for out in stage.outs.values() for p in leftovers_of(out)]
        found += sorted(p for p in self.dir.glob(f"*{TMP_MARKER}*"))
        for path in found:
            log.info("removing a leftover of an interrupted run: %s", path)
            remove_path(path)
        return found


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _input_values(stage: Stage) -> dict[str, Path | list[Path] | None]:
    values: dict[str, Path | list[Path] | None] = {}
    for spec in stage.type.inputs:
        paths = stage.deps.get(spec.name)
        if paths is None:
            values[spec.name] = [] if spec.many else None
        else:
            values[spec.name] = list(paths) if spec.many else paths[0]
    return values


def _written_by_kgpipe(pipeline: Pipeline, lock: LockFile, path: Path) -> bool:
    """Whether an existing out path may be replaced: the lock lists it, or it lies in the pipeline's artifacts
    folder (so deleting the workspace stays a safe reset), or it is a folder carrying kgpipe's marker."""
    rel = pipeline.rel(path)
    if any(rel in entry.outs for entry in lock.stages.values()):
        return True
    if pipeline.artifacts in path.parents:
        return True
    return path.is_dir() and not path.is_symlink() and (path / OUT_MARKER).is_file()


def check_outs_replaceable(pipeline: Pipeline, names: list[str], lock: LockFile) -> None:
    """Refuse, before anything runs, to replace a file or folder kgpipe did not write."""
    for name in names:
        stage = pipeline.stages[name]
        for out_name, path in stage.outs.items():
            if (path.exists() or path.is_symlink()) and not _written_by_kgpipe(pipeline, lock, path):
                kind = "folder" if path.is_dir() else "file"
                raise WorkspaceError(
                    f"stage '{name}': out '{out_name}' would replace {path}, a {kind} kgpipe did not write "
                    "(not in the lock file, not under the artifacts folder)",
                    hint="kgpipe never deletes what it did not write: move it away, delete it yourself, or point "
                    f"the out elsewhere ({pipeline.path.name}, line "
                    f"{pipeline.line_of('stages', name, 'outs', out_name) or pipeline.stages[name].line})")


def stage_executors(pipeline: Pipeline, names: list[str], *, engine: str | None = None,
                    address: str | None = None) -> dict[str, ExecutorConfig]:
    """Each named stage's executor config: the pipeline's block, the stage's keys over it, the command line's
    --engine/--address over both."""
    overrides = {k: v for k, v in (("engine", engine), ("address", address)) if v is not None}
    return {name: pipeline.stages[name].executor.with_overrides(overrides) for name in names}


def _executor_line(pipeline: Pipeline, stage: str, key: str) -> tuple[Path, int | None]:
    """The line of an executor key: the stage's own, else the pipeline's, else the nearest block that holds it."""
    parts = tuple(key.split("."))
    for prefix in (("stages", stage, "executor"), ("executor",)):
        for n in range(len(parts), -1, -1):
            if (*prefix, *parts[:n]) in pipeline.lines:
                return pipeline.path, pipeline.lines[(*prefix, *parts[:n])]
    return pipeline.path, pipeline.line_of("stages", stage)


def _check_engine(pipeline: Pipeline, name: str, config: ExecutorConfig) -> None:
    """A Ray stage: the cluster answers, has what the stage asks for, and every path a worker gets is on
    storage every node sees (the project or an allow_outside folder)."""
    from kgpipe.engine.ray import RaySession, check_resources

    stage = pipeline.stages[name]
    for dep, paths in stage.deps.items():
        for path in paths:
            if not pipeline.shared(path):
                raise PipelineError(
                    f"stage '{name}': dep '{dep}' ({path}) lies outside the project and allow_outside, so the "
                    "Ray cluster's workers may not see it", file=pipeline.path,
                    line=pipeline.line_of("stages", name, "deps", dep),
                    hint="put it under the project (on the shared filesystem) or list its folder in allow_outside")
    if not pipeline.shared(pipeline.workspace):
        raise PipelineError(f"the workspace {pipeline.workspace} is not under the project or allow_outside",
                            file=pipeline.path, line=pipeline.line_of("workspace"))
    RaySession.connect(config, lambda key: _executor_line(pipeline, name, key))
    check_resources(config, lambda key: _executor_line(pipeline, name, key), name)


def validate_stages(pipeline: Pipeline, names: list[str], executors: dict[str, ExecutorConfig] | None = None
                    ) -> None:
    """Every stage type's validate() hook, for each named stage, before any stage runs; a stage on the Ray
    engine first checks the cluster (connection, resources, shared paths)."""
    executors = executors or {}
    for name in names:
        stage = pipeline.stages[name]
        config = executors.get(name, stage.executor)
        ctx = ValidationContext(stage=name, params=stage.params, inputs=_input_values(stage), root=pipeline.root,
                                pipeline_file=pipeline.path, line_of=pipeline.line_of, executor=config)
        try:
            if config.engine != "local":
                _check_engine(pipeline, name, config)
            stage.type().validate(ctx)
        except KgpipeError as exc:
            exc.stage = name
            raise


def _run_remote(stage_type: type, ctx: StageContext) -> dict[str, Any] | None:
    """A stage's run() on a worker of the cluster (see StageType.remote)."""
    return stage_type().run(ctx)


def _run_stage(stage: Stage, ctx: StageContext) -> dict[str, Any] | None:
    if ctx.executor.distributed and stage.type.remote:
        # progress callbacks stay on the driver; paths, params and the logger's name travel
        remote_ctx = dataclasses.replace(ctx, on_progress=None)
        return ctx.executor.call(_run_remote, stage.type, remote_ctx, what=f"stage '{stage.name}' on the cluster")
    return stage.type().run(ctx)


def _is_folder_out(stage: Stage, name: str) -> bool:
    # The pipeline loader rejects outs the stage type does not declare, so the spec is always there.
    spec = stage.type.output_spec(name)
    return spec is not None and spec.folder


def _stage_delta(pipeline: Pipeline, stage: Stage, previous: LockEntry | None, new: dict[str, Path],
                 hasher: HashCache) -> StageDelta | None:
    """What the stage's new outputs (not yet committed) change against the ones they will replace
    (StageType.delta; kgpipe.delta says why here), with the replaced outputs' hashes; an error comparing is
    logged and recorded as a note, never fails the run."""
    old = {name: path for name, path in stage.outs.items() if previous is not None and path.exists()}
    t0 = time.perf_counter()
    try:
        delta = stage.type.delta(old, new)
    except Exception as exc:
        log.warning("stage %s: could not compare its outputs with the previous ones: %s: %s", stage.name,
                    type(exc).__name__, exc)
        return StageDelta.not_compared(f"could not compare with the previous outputs: {type(exc).__name__}: {exc}")
    if delta is None:
        return None
    base = {pipeline.rel(path): hasher.path_hash(path) or "" for path in old.values()} if delta.compared else {}
    return dataclasses.replace(delta, base_outs=base, seconds=round(time.perf_counter() - t0, 4))


def _execute(pipeline: Pipeline, stage: Stage, status: StageStatus, workspace: Workspace, hasher: HashCache,
             emit: EventCallback, executor: Executor, previous: LockEntry | None, compare: bool
             ) -> tuple[LockEntry, StageDelta | None]:
    """Run a stage and commit its outputs; `compare`: also say what they change against `previous`'s (the
    stage's lock entry before the run), for the run history."""
    missing = [p for p in stage.dep_paths() if not p.exists()]
    if missing:
        raise StageError(stage.name, f"dep missing: {pipeline.rel(missing[0])}",
                         hint="run the stage that produces it first (drop --only)")
    temps = {name: temp_path_for(path, directory=_is_folder_out(stage, name)) for name, path in stage.outs.items()}
    scratch = workspace.scratch_for(stage.name, status.fingerprint)
    ctx = StageContext(
        stage=stage.name, params=stage.params, inputs=_input_values(stage), outputs=temps,
        root=pipeline.root, scratch_dir=scratch, destinations=dict(stage.outs),
        log=logging.getLogger(f"kgpipe.stages.{stage.name}"),
        on_progress=lambda s, d, c, t: emit(RunEvent("progress", s, description=d, completed=c, total=t)),
        executor=executor, workspace_dir=workspace.dir,
        input_hashes={path: status.dep_hashes.get(pipeline.rel(path)) for path in stage.dep_paths()},
    )
    started_at, t0 = _now(), time.perf_counter()
    try:
        summary = _run_stage(stage, ctx) or {}
        unwritten = [name for name, tmp in temps.items() if not tmp.exists()]
        if unwritten:
            raise StageError(stage.name, f"did not write its output(s): {', '.join(unwritten)}",
                             hint=f"a bug in stage type '{stage.type.name}'")
        json.dumps(summary)  # the summary goes into the lock file
        # the old outputs are still there to compare with
        delta = _stage_delta(pipeline, stage, previous, temps, hasher) if compare else None
    except BaseException as exc:
        for tmp in temps.values():
            remove_path(tmp)
        if isinstance(exc, KgpipeError):
            exc.stage = stage.name
            raise
        if isinstance(exc, Exception):
            raise StageError(stage.name, f"{type(exc).__name__}: {exc}",
                             hint="earlier artifacts and the lock file are untouched; "
                             "fix the cause and run again (see the traceback with --verbose)") from exc
        raise
    for name, tmp in temps.items():
        if tmp.is_dir():  # says that kgpipe wrote this folder, so a later run may replace it
            atomic_write_text(tmp / OUT_MARKER, json.dumps({"pipeline": pipeline.path.name, "stage": stage.name,
                                                            "out": name}, sort_keys=True) + "\n")
        commit_path(tmp, stage.outs[name])
    duration = time.perf_counter() - t0
    for leftover in workspace.scratch_folders(stage.name):  # this attempt's and older failed attempts'
        remove_path(leftover)
    return LockEntry(
        type=stage.type.name, type_version=stage.type.version, params=stage.params_dict(),
        deps=status.dep_hashes,
        outs={pipeline.rel(p): hasher.path_hash(p) or "" for p in stage.out_paths()},
        started_at=started_at, duration_s=round(duration, 4), kgpipe_version=__version__, summary=summary,
    ), delta


def run(pipeline: str | Path | Pipeline, *, until: str | None = None, only: str | None = None,
        force: bool = False, dry_run: bool = False, wait: float = 0.0,
        on_event: EventCallback | None = None, engine: str | None = None, address: str | None = None,
        overrides: Overrides | None = None) -> RunResult:
    """Run the stale stages of a pipeline (and what their changed outputs feed), in topological order.

    until: run only this stage and its ancestors; only: this one stage; force: run the selected stages
    even if up to date; dry_run: report what would run, touch nothing; wait: seconds to wait for
    another run holding the workspace; engine, address: override every stage's executor (`local` or `ray`;
    the Ray cluster's address), which never changes what a stage writes; overrides: params for this run only,
    {'fuse.resolution.threshold': 0.6} (kgpipe.overrides; the pipeline file is not edited).

    Every run but a dry run is recorded in the workspace's run history (kgpipe.history), a failed one too.
    """
    pipe = apply_overrides(as_pipeline(pipeline), overrides)
    graph = build_graph(pipe)
    selected = select_stages(pipe, graph, until=until, only=only)
    try:
        executors = stage_executors(pipe, selected, engine=engine, address=address)
    except ValidationError as exc:  # a bad --engine value
        raise PipelineError(f"--engine/--address: {exc.errors()[0]['msg']}", hint="--engine takes local or ray"
                            ) from None
    try:
        options = {"until": until, "only": only, "force": force, "engine": engine}
        return _run_selected(pipe, graph, selected, executors, force=force, dry_run=dry_run, wait=wait,
                             on_event=on_event, overrides=recorded_values(pipe, overrides), options=options)
    finally:
        from kgpipe.engine.ray import RaySession

        RaySession.close()


def _run_selected(pipe: Pipeline, graph: Any, selected: list[str], executors: dict[str, ExecutorConfig], *,
                  force: bool, dry_run: bool, wait: float, on_event: EventCallback | None,
                  overrides: dict[str, Any], options: dict[str, Any]) -> RunResult:
    validate_stages(pipe, selected, executors)
    emit = on_event or (lambda event: None)
    workspace = Workspace(pipe)
    result = RunResult(pipeline=pipe.path, root=pipe.root,
                       outputs={name: dict(pipe.stages[name].outs) for name in selected})
    hasher = HashCache(workspace.hash_cache_path)

    if dry_run:
        lock = LockFile.read(workspace.lock_path)
        for status in plan(pipe, graph, selected, lock.stages, hasher, force=force):
            if status.stale:
                result.would_run[status.name] = status.reasons
            else:
                result.skipped.append(status.name)
            emit(RunEvent("plan" if status.stale else "skip", status.name, tuple(status.reasons)))
        hasher.save()
        return result

    run_locks = workspace.acquire(wait, pipe.artifacts)
    recorder = RunRecorder(pipe, overrides, options)
    lock = LockFile(workspace.lock_path)
    error: BaseException | None = None
    try:
        workspace.remove_leftovers(pipe)
        lock = LockFile.read(workspace.lock_path)
        check_outs_replaceable(pipe, selected, lock)
        _note_returned_params(pipe, overrides, result, emit)
        for name in selected:
            recorder.current = name
            stage = pipe.stages[name]
            # Re-checked just before running: a stage whose upstream re-ran but produced identical
            # outputs stays up to date (DVC semantics), one whose deps changed runs.
            status = stage_status(pipe, stage, lock.stages.get(name), hasher)
            if not (force or status.stale):
                result.skipped.append(name)
                emit(RunEvent("skip", name))
                continue
            emit(RunEvent("start", name, tuple(status.reasons or ["forced"])))
            log.info("running stage %s: %s", name, "; ".join(status.reasons or ["forced"]))
            t0 = time.perf_counter()
            try:
                config = executors[name]
                entry, delta = _execute(pipe, stage, status, workspace, hasher, emit,
                                        executor_class(config.engine)(config, name), lock.stages.get(name),
                                        compare=recorder.history.keep > 0)
            except BaseException as exc:
                recorder.failed_stage, recorder.durations[name] = name, time.perf_counter() - t0
                emit(RunEvent("fail", name, (str(exc),)))
                raise
            lock.stages[name] = entry
            lock.write()
            result.ran.append(name)
            result.durations[name] = entry.duration_s
            result.summaries[name] = entry.summary
            recorder.durations[name] = entry.duration_s
            if delta is not None:
                recorder.deltas[name] = delta
            emit(RunEvent("done", name, duration_s=entry.duration_s, summary=entry.summary))
    except BaseException as exc:
        error = exc
        raise
    finally:
        hasher.save()
        # the lock file is written: an error recording the run is only logged (RunRecorder.write)
        result.run_id = recorder.write(selected, result.ran, result.skipped, lock.stages, error)
        remove_path(workspace.dir / "run.owner")
        run_locks.release()
    return result


def _note_returned_params(pipe: Pipeline, overrides: dict[str, Any], result: RunResult,
                          emit: EventCallback) -> None:
    """Say which stages' params are back to the pipeline file's after a last run with -S (they rerun)."""
    for stage, given in returned_overrides(History.of(pipe).last(), overrides).items():
        if stage in pipe.stages:
            note = f"{stage}: params back to the pipeline file's (last run had -S {', -S '.join(given)})"
            log.info("%s", note)
            result.notes.append(note)
            emit(RunEvent("note", stage, (note,)))


def status(pipeline: str | Path | Pipeline) -> list[StageStatus]:
    """Each stage of the pipeline with the reasons it is stale (empty when up to date)."""
    pipe = as_pipeline(pipeline)
    graph = build_graph(pipe)
    hasher = HashCache(Workspace(pipe).hash_cache_path)
    lock = LockFile.read(Workspace(pipe).lock_path)
    statuses = plan(pipe, graph, select_stages(pipe, graph), lock.stages, hasher)
    hasher.save()
    return statuses
