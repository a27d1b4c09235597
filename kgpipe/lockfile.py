"""The lock file: what each stage last ran with (type version, params, dep and out hashes) and when.

Written atomically after each successful stage, never by a failed one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kgpipe.atomic import atomic_write_text
from kgpipe.errors import KgpipeError

LOCK_FORMAT = 1


@dataclass
class LockEntry:
    type: str
    type_version: int
    params: dict[str, Any]
    deps: dict[str, str]
    outs: dict[str, str]
    started_at: str
    duration_s: float
    kgpipe_version: str
    summary: dict[str, Any] = field(default_factory=dict)


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
            stages = {name: LockEntry(**entry) for name, entry in data.get("stages", {}).items()}
        except (OSError, ValueError, TypeError) as exc:
            raise KgpipeError(f"{path}: lock file is unreadable ({exc})",
                              hint="delete it to re-run every stage from scratch") from None
        return cls(path, stages)

    def write(self) -> None:
        data = {"format": LOCK_FORMAT, "stages": {name: asdict(e) for name, e in sorted(self.stages.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")
