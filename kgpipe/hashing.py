"""Content hashes: sha256 of files, of folders (relative path + content of every file) and of params.

A stat cache (size, mtime, ctime, inode) lets a no-op re-run skip re-reading unchanged files, as DVC and git do.
Inside a folder, an entry that cannot be read (a dangling link, a link loop, no permission) is hashed as such
and listed in `HashCache.unreadable`; the stages that read the folder skip it and say so.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from pathlib import Path
from stat import S_ISREG
from typing import Any

from kgpipe.atomic import atomic_write_text, is_own_file

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
    """Content hashes keyed by (size, mtime_ns, ctime_ns, inode); persisted as JSON in the workspace.

    ctime catches an in-place edit that restores size and mtime (a tool that writes and then resets the mtime):
    no user-space call can set it.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries: dict[str, list] = {}
        self._dirty = False
        self.unreadable: dict[str, str] = {}  # path -> reason, for entries of folders that could not be read
        if path is not None and path.exists():
            try:
                entries = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                entries = {}  # a corrupt cache only costs re-hashing
            self._entries = {k: v for k, v in entries.items() if _valid_entry(v)} if isinstance(entries, dict) else {}

    def file_hash(self, path: Path) -> str:
        stat = path.stat()
        if not S_ISREG(stat.st_mode):  # a fifo would block, a device (/dev/zero) never end
            raise OSError(errno.EINVAL, "not a regular file (a pipe, socket or device)", str(path))
        key = os.fsdecode(path.resolve())
        signature = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        cached = self._entries.get(key)
        if cached is not None and cached[:4] == signature:
            return cached[4]
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
            odd: dict[str, str] = {}  # folders that could not be listed, links to folders (not followed)
            for file in iter_files(path, odd):
                rel = os.fsencode(file.relative_to(path).as_posix())  # non-UTF-8 names hash as their bytes
                try:
                    content = self.file_hash(file).encode("ascii")
                except OSError as exc:
                    # A dangling link, a link loop or an unreadable file: its state is part of the hash (so a
                    # repair is noticed), and the stages reading the folder skip it and list it.
                    self.unreadable[os.fsdecode(file)] = _reason(exc)
                    content = b"!" + _reason(exc).encode("utf-8", "backslashreplace")
                digest.update(rel + b"\0" + content + b"\n")
            for entry, state in sorted(odd.items()):
                digest.update(os.fsencode(Path(entry).relative_to(path).as_posix()) + b"/\0"
                              + state.encode("utf-8", "backslashreplace") + b"\n")
            self.unreadable.update((k, v) for k, v in odd.items() if not v.startswith("@link"))
            return "dir:" + digest.hexdigest()
        if path.is_symlink():
            raise FileNotFoundError(f"{path}: a link to a path that does not exist")
        if path.exists():
            raise OSError(errno.EINVAL, "not a regular file or folder (a pipe, socket or device)", str(path))
        return None

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self._entries))
        self._dirty = False


def _valid_entry(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 5 and all(isinstance(v, int) for v in value[:4])
            and isinstance(value[4], str))


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def iter_files(folder: Path, odd: dict[str, str] | None = None) -> list[Path]:
    """Every file below folder (and links to files), in a stable order, skipping kgpipe's own files. Links to
    folders are not followed (no loops, nothing outside the folder): they go into `odd` as '@link -> target',
    and so does a subfolder that cannot be listed, with the reason."""
    files: list[Path] = []

    def on_error(exc: OSError) -> None:
        if odd is not None and exc.filename is not None:
            odd[os.fsdecode(exc.filename)] = _reason(exc)

    for root, dirs, names in os.walk(folder, onerror=on_error):
        if odd is not None:
            for name in dirs:
                if os.path.islink(os.path.join(root, name)):
                    odd[os.path.join(root, name)] = "@link -> " + os.readlink(os.path.join(root, name))
        dirs[:] = sorted(d for d in dirs if not is_own_file(d) and not os.path.islink(os.path.join(root, d)))
        files.extend(Path(root) / n for n in sorted(names) if not is_own_file(n))
    return files


def path_hash(path: Path) -> str | None:
    """Uncached hash of a file or folder (None if missing)."""
    return HashCache().path_hash(path)
