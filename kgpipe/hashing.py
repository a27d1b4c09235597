"""Content hashes: sha256 of files, of folders (relative path + content of every file) and of params.

A stat cache (size, mtime, inode) lets a no-op re-run skip re-reading unchanged files, as DVC and git do.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from kgpipe.atomic import TMP_MARKER, atomic_write_text

_CHUNK = 1 << 20
# A file modified this recently may change again within the same mtime tick: never cache it ("racy git").
_RACY_SECONDS = 2.0


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hash_params(params: Any) -> str:
    return sha256_bytes(canonical_json(params).encode("utf-8"))


class HashCache:
    """Content hashes keyed by (size, mtime_ns, inode); persisted as JSON in the workspace."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries: dict[str, list] = {}
        self._dirty = False
        if path is not None and path.exists():
            try:
                self._entries = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._entries = {}  # a corrupt cache only costs re-hashing

    def file_hash(self, path: Path) -> str:
        stat = path.stat()
        key = str(path.resolve())
        signature = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        cached = self._entries.get(key)
        if cached is not None and cached[:3] == signature:
            return cached[3]
        digest = _sha256_file(path)
        if time.time() - stat.st_mtime_ns / 1e9 > _RACY_SECONDS:
            self._entries[key] = [*signature, digest]
            self._dirty = True
        return digest

    def path_hash(self, path: Path) -> str | None:
        """Hash of a file or folder; None if it does not exist."""
        if path.is_file():
            return self.file_hash(path)
        if path.is_dir():
            digest = hashlib.sha256()
            for file in iter_files(path):
                rel = file.relative_to(path).as_posix()
                digest.update(rel.encode("utf-8") + b"\0" + self.file_hash(file).encode("ascii") + b"\n")
            return "dir:" + digest.hexdigest()
        return None

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self._entries))
        self._dirty = False


def iter_files(folder: Path) -> list[Path]:
    """Every regular file below folder, in a stable order, skipping kgpipe's own temporary files."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if TMP_MARKER not in d)
        files.extend(Path(root) / n for n in sorted(names) if TMP_MARKER not in n)
    return files


def path_hash(path: Path) -> str | None:
    """Uncached hash of a file or folder (None if missing)."""
    return HashCache().path_hash(path)
