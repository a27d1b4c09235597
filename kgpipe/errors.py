"""One error hierarchy for kgpipe.

Every message says what was wrong, where (file, line or row, stage) and what to do; only the CLI turns
these into exit codes.
"""

from __future__ import annotations

from pathlib import Path


class KgpipeError(Exception):
    """Base class of every error kgpipe raises on purpose."""

    exit_code = 1
    stage: str | None = None  # set by the runner when the error came from a running stage

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


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
    """An optional package or model (spaCy model, transformer) is not installed."""

    exit_code = 7
