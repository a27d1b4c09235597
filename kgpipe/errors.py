"""One error hierarchy for kgpipe.

Every message says what was wrong, where (file, line or row, stage) and what to do; only the CLI turns
these into exit codes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class KgpipeError(Exception):
    """Base class of every error kgpipe raises on purpose (a subclass says which kind, and its exit code)."""

    exit_code = 4
    stage: str | None = None  # set by the runner when the error came from a running stage

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its attributes, not its constructor's arguments (which differ per subclass), so that
        an error raised in a worker process reaches the driver as itself."""
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[KgpipeError], args: tuple[Any, ...], state: dict[str, Any]) -> KgpipeError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


def _where(path: str | Path | None, line: int | None = None, what: str = "line") -> str:
    if path is None:
        return ""
    return f"{path}:{line}: " if line is not None and what == "line" else (
        f"{path} ({what} {line}): " if line is not None else f"{path}: "
    )


class PipelineError(KgpipeError):
    """The pipeline file is invalid: bad YAML, unknown stage type or param, cycle, duplicate out."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        self.file = file
        self.line = line
        super().__init__(_where(file, line) + message, hint=hint)


class InputError(KgpipeError):
    """An input file is unreadable or malformed (names the file and the line or row)."""

    exit_code = 3

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None,
                 row: int | None = None, hint: str | None = None) -> None:
        self.file = file
        self.line = line
        self.row = row
        where = _where(file, row, "row") if row is not None else _where(file, line)
        super().__init__(where + message, hint=hint)


class StageError(KgpipeError):
    """A stage failed while running; earlier artifacts and the lock file are untouched."""

    exit_code = 4

    def __init__(self, stage: str, message: str, *, hint: str | None = None) -> None:
        self.stage = stage
        super().__init__(f"stage '{stage}': {message}", hint=hint)


class LockedError(KgpipeError):
    """Another kgpipe run holds the workspace lock."""

    exit_code = 5


class ArtifactError(KgpipeError):
    """An artifact is missing or does not have the schema its reader expects."""

    exit_code = 6


class DependencyMissingError(KgpipeError):
    """The environment lacks something: an optional package, a model, a device or a cluster resource."""

    exit_code = 7


class WorkspaceError(KgpipeError):
    """The workspace is damaged (a lock file of the wrong shape) or a path kgpipe would write is in the way
    of something it did not write; the message names the file and what to do."""

    exit_code = 8


# Documented exit codes (README, "The command line"); 130 is an interrupt, 70 a bug in kgpipe itself.
EXIT_CODES = {
    2: "pipeline file: invalid YAML, unknown stage type or param, cycle, a path outside the project",
    3: "input data: a corpus, seed, task or pattern file is malformed (file and line or row named)",
    4: "a stage or command failed (a stage leaves earlier artifacts and the lock untouched)",
    5: "the workspace is locked by another run",
    6: "an artifact is missing or has the wrong schema",
    7: "environment: a package, model, device or resource is missing",
    8: "workspace: a damaged lock file, or an out in the way of a file kgpipe did not write",
    70: "an internal error (a bug in kgpipe: run with -v and report the traceback)",
    130: "interrupted",
}
