"""What a stage type is: a name, a version, a pydantic params model, named inputs and outputs, and run().

Stages know nothing about the runner beyond the StageContext they are handed: resolved input paths,
temporary output paths (the runner commits them atomically after run() returns), a scratch folder and a
progress callback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from kgpipe.engine.base import Executor
from kgpipe.engine.config import ExecutorConfig
from kgpipe.engine.local import LocalExecutor
from kgpipe.errors import PipelineError

if TYPE_CHECKING:
    from kgpipe.config import Stage
    from kgpipe.delta import StageDelta
    from kgpipe.lockfile import LockEntry
    from kgpipe.summary import StageSummary

T = TypeVar("T")
ProgressCallback = Callable[[str, str, int, int | None], None]


class StageParams(BaseModel):
    """Base of every stage's params model: unknown keys are rejected, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class InputSpec:
    """A named input of a stage type; the pipeline file maps it to one path (or a list, if many)."""

    name: str
    required: bool = True
    many: bool = False
    doc: str = ""


@dataclass(frozen=True)
class OutputSpec:
    """A named output; by default written to <artifacts>/<stage name>/<filename>. `role` says what it holds
    (a kgpipe.roles.Role), so that readers find it by role whatever the stage is called."""

    name: str
    filename: str
    doc: str = ""
    folder: bool = False
    role: str | None = None


class StageType:
    """Subclass this, set the class attributes, implement run(), and register it (see kgpipe.registry)."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""
    Params: ClassVar[type[StageParams]] = StageParams
    inputs: ClassVar[tuple[InputSpec, ...]] = ()
    outputs: ClassVar[tuple[OutputSpec, ...]] = ()
    # On a distributed engine, run() as a whole goes to a worker with the stage's declared resources (single-
    # process training: embed, inject) instead of running on the driver and mapping its work out (extract, fuse).
    remote: ClassVar[bool] = False

    def run(self, ctx: StageContext) -> dict[str, Any] | None:
        """Read ctx.inputs, write every ctx.outputs path; return a small summary (counts) or None."""
        raise NotImplementedError

    def validate(self, ctx: ValidationContext) -> None:
        """Check, before any stage of the run starts, what can fail without running: names that a library
        must resolve (models, losses), devices, installed packages and models. Raise `ctx.error(...)` (a
        PipelineError at the param's line) or a DependencyMissingError; never read the inputs' contents
        (they may not exist yet). Cheap checks only: this runs on every `kgpipe run`, `--dry-run` included."""

    @classmethod
    def summarise(cls, stage: Stage, entry: LockEntry | None) -> StageSummary | None:
        """What a reader looks for first in this stage's results (kgpipe.summary.StageSummary), read from its
        outputs (`stage.outs`) and its lock entry (`entry.summary`: what varies run to run, such as timings);
        None when the type has nothing to add to the listing of its outputs. Called by the report and the web
        app on finished runs only; may raise on half-written artifacts (the caller shows the error)."""
        return None

    @classmethod
    def delta(cls, old: dict[str, Path], new: dict[str, Path]) -> StageDelta | None:
        """What a run changed in the outputs (kgpipe.delta.StageDelta: counts and examples per kind of change),
        for the run history, `kgpipe diff` and the report; None (the default): the type does not compare its
        outputs. `old`: the outputs the run replaces, by output name (those that exist; empty on the stage's
        first run); `new`: the ones it wrote, not yet committed. Called by the runner just before the commit,
        on the driver; it must only read (an error is recorded as a note, never fails the run)."""
        return None

    @classmethod
    def input_spec(cls, name: str) -> InputSpec | None:
        return next((spec for spec in cls.inputs if spec.name == name), None)

    @classmethod
    def output_spec(cls, name: str) -> OutputSpec | None:
        return next((spec for spec in cls.outputs if spec.name == name), None)


@dataclass(frozen=True)
class ValidationContext:
    """What validate() may look at: the stage's name, validated params, resolved dep paths (which may not
    exist yet), the pipeline root, and the pipeline file's lines for error messages."""

    stage: str
    params: Any
    inputs: dict[str, Path | list[Path] | None]
    root: Path
    pipeline_file: Path
    line_of: Callable[..., int | None] = field(default=lambda *loc: None)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def input(self, name: str) -> Any:
        return self.inputs.get(name)

    def error(self, message: str, *, param: str | None = None, hint: str | None = None) -> PipelineError:
        """A PipelineError at the line of `param` (dotted, e.g. 'model' or 'early_stopping.metric')."""
        loc: tuple[str, ...] = ("stages", self.stage, "params", *param.split(".")) if param else ("stages", self.stage)
        where = f"params.{param}: " if param else ""
        return PipelineError(f"stage '{self.stage}': {where}{message}", file=self.pipeline_file,
                             line=self.line_of(*loc), hint=hint)


@dataclass
class StageContext:
    """Everything a running stage may touch."""

    stage: str
    params: Any
    inputs: dict[str, Path | list[Path] | None]
    outputs: dict[str, Path]
    root: Path
    scratch_dir: Path
    destinations: dict[str, Path] = field(default_factory=dict)  # where outputs land after commit
    on_progress: ProgressCallback | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("kgpipe.stage"))
    executor: Executor = field(default_factory=LocalExecutor.in_process)
    workspace_dir: Path | None = None  # the pipeline's workspace; the runner sets it
    input_hashes: dict[Path, str | None] = field(default_factory=dict)  # dep path -> content hash (the runner's)

    def input(self, name: str) -> Any:
        return self.inputs.get(name)

    def output(self, name: str) -> Path:
        return self.outputs[name]

    def input_hash(self, path: Path) -> str | None:
        """A dep's content hash as the runner computed it for the lock entry (the same function as
        kgpipe.hashing's path_hash), or computed now for a path the runner did not hash."""
        if path in self.input_hashes:
            return self.input_hashes[path]
        from kgpipe.hashing import path_hash

        return path_hash(path)

    def destination(self, name: str) -> Path:
        """Where output `name` will be once the stage succeeds (for messages and reports)."""
        return self.destinations.get(name, self.outputs[name])

    def previous_output(self, name: str) -> Path | None:
        """Output `name` as the stage's last successful run left it, or None if there is none: the runner commits
        outputs only after run() returns, so the previous ones stay in place, readable, until then. For a stage
        that continues from its own last result (the embed stage's warm start); what it reads there is an input,
        and the stage records its hash."""
        previous = self.destinations.get(name)
        if previous is None or previous == self.outputs[name] or not (previous.exists() or previous.is_symlink()):
            return None
        return previous

    def relpath(self, path: Path) -> str:
        """A path as users wrote it: relative to the pipeline root where possible."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def portable_path(self, path: Path | str, out: str, *, within: bool = False) -> str:
        """A path to write into an artifact: relative to the pipeline root, or (outside the root) relative to
        the folder where output `out` lands (`within`: to `out` itself, a folder holding the artifact), so that
        no absolute path ends up in an artifact and equal inputs give equal bytes wherever the project or its
        artifacts lie."""
        inside = self.relpath(Path(path))
        if not Path(inside).is_absolute():
            return inside
        base = self.destination(out).resolve()
        return Path(os.path.relpath(Path(path).resolve(), base if within else base.parent)).as_posix()

    @property
    def workspace(self) -> Path:
        """The pipeline's workspace (lock file, caches): a stage keeps what must outlive its run here. A context
        made outside the runner without one uses the folder above the scratch folders (<workspace>/scratch/...)."""
        return self.workspace_dir if self.workspace_dir is not None else self.scratch_dir.parent.parent

    def scratch(self) -> Path:
        """A folder for checkpoints and caches, kept across failed attempts, removed on success."""
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        return self.scratch_dir

    def report(self, description: str, completed: int, total: int | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stage, description, completed, total)

    def track(self, items: Iterable[T], *, description: str, total: int | None = None,
              every: int = 1) -> Iterator[T]:
        """Iterate items, reporting progress every `every` items."""
        if total is None and isinstance(items, Sized):
            total = len(items)
        count = 0
        self.report(description, 0, total)
        for item in items:
            yield item
            count += 1
            if count % every == 0:
                self.report(description, count, total)
        self.report(description, count, total)
