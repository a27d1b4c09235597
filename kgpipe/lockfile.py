"""The lock file: what each stage last ran with (type version, params, dep and out hashes) and when.

Written atomically after each successful stage, never by a failed one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kgpipe.atomic import atomic_write_text
from kgpipe.errors import WorkspaceError

LOCK_FORMAT = 1


@dataclass
class LockEntry:
    type: str
    type_version: int
    params: dict[str, Any]
    deps: dict[str, str | None]  # None: the dep did not exist when the stage ran (the reader accepts null)
    outs: dict[str, str]
    started_at: str
    duration_s: float
    kgpipe_version: str
    summary: dict[str, Any] = field(default_factory=dict)


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "type": str, "type_version": int, "params": dict, "deps": dict, "outs": dict, "started_at": str,
    "duration_s": (int, float), "kgpipe_version": str, "summary": dict}
_OPTIONAL = {"summary"}


def _entries(data: Any) -> dict[str, LockEntry]:
    """The stage entries of a parsed lock file, checked field by field (a hand-edited or foreign JSON file
    raises ValueError naming what is wrong)."""
    if not isinstance(data, dict) or not isinstance(data.get("stages", {}), dict):
        raise ValueError("expected an object with a 'stages' object")
    if data.get("format", LOCK_FORMAT) != LOCK_FORMAT:
        raise ValueError(f"format {data.get('format')!r}, this kgpipe reads format {LOCK_FORMAT}")
    entries = {}
    for name, entry in data.get("stages", {}).items():
        if not isinstance(entry, dict):
            raise ValueError(f"stage '{name}': expected an object")
        unknown = sorted(set(entry) - set(_FIELD_TYPES))
        missing = sorted(set(_FIELD_TYPES) - set(entry) - _OPTIONAL)
        wrong = [key for key, kind in _FIELD_TYPES.items()
                 if key in entry and (not isinstance(entry[key], kind) or isinstance(entry[key], bool))]
        if unknown or missing or wrong:
            raise ValueError(f"stage '{name}': " + "; ".join(
                part for part in (f"unknown fields {unknown}" if unknown else "",
                                  f"missing fields {missing}" if missing else "",
                                  f"wrong type of {wrong}" if wrong else "") if part))
        for key in ("deps", "outs"):
            if not all(isinstance(v, str | None) for v in entry[key].values()):
                raise ValueError(f"stage '{name}': {key} must map paths to hashes")
        entries[name] = LockEntry(**entry)
    return entries


@dataclass
class LockFile:
    path: Path
    stages: dict[str, LockEntry] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> LockFile:
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            stages = _entries(data)
        except (OSError, ValueError, TypeError) as exc:
            raise WorkspaceError(f"{path}: lock file is damaged ({exc})",
                                 hint="delete it: every stage then runs again (the artifacts are kept until "
                                 "each stage replaces them)") from None
        return cls(path, stages)

    def write(self) -> None:
        data = {"format": LOCK_FORMAT, "stages": {name: asdict(e) for name, e in sorted(self.stages.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")
