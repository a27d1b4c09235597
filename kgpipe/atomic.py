"""Atomic writes: a temporary file in the same folder, then os.replace.

A reader never sees a half-written file, and a crash leaves the previous version in place.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Every temporary path kgpipe creates carries this marker, so hashing and cleanup can recognise it.
TMP_MARKER = ".kgpipe-tmp"
# kgpipe's own files inside output folders: left out of content hashes.
OUT_MARKER = ".kgpipe-out.json"   # in every folder out: which stage wrote it (so it may be replaced)
RUN_LOCK = ".kgpipe-run.lock"     # in the artifacts folder: one run at a time per artifacts folder
OWN_FILES = frozenset({OUT_MARKER, RUN_LOCK})

# mkdtemp creates folders with mode 0700; a committed folder gets the mode a plain mkdir would give it.
_UMASK = os.umask(0)
os.umask(_UMASK)


def is_own_file(name: str) -> bool:
    """A temporary file or one of kgpipe's bookkeeping files (never part of an artifact's content)."""
    return TMP_MARKER in name or name in OWN_FILES


def leftovers_of(target: Path) -> list[Path]:
    """Temporary copies of target that an interrupted write or commit left beside it, and temporary files of
    those (a stage writing its temporary output atomically: '..name.kgpipe-tmp-a.kgpipe-tmp-b')."""
    if not target.parent.is_dir():
        return []
    own = re.compile(rf"\.+{re.escape(target.name)}{re.escape(TMP_MARKER)}-")
    return sorted(p for p in target.parent.iterdir() if own.match(p.name))


def temp_path_for(target: Path, *, directory: bool = False) -> Path:
    """A fresh temporary path beside target (same filesystem, so os.replace is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}{TMP_MARKER}-"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
    os.close(fd)
    os.unlink(name)  # the writer creates it; we only reserve a unique name
    return Path(name)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def commit_path(tmp: Path, target: Path) -> None:
    """Move a finished temporary file or folder onto target, replacing what was there."""
    if tmp.is_dir():
        os.chmod(tmp, 0o777 & ~_UMASK)
        # os.replace cannot replace a non-empty folder: move the old one aside first, then swap.
        old = None
        if target.exists():
            old = temp_path_for(target, directory=True)
            old.rmdir()
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old is not None:
                os.replace(old, target)
            raise
        if old is not None:
            remove_path(old)
    else:
        if target.is_dir():
            remove_path(target)
        os.replace(tmp, target)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces target, on error it is removed."""
    target = Path(target)
    tmp = temp_path_for(target)
    try:
        yield tmp
        commit_path(tmp, target)
    except BaseException:
        remove_path(tmp)
        raise


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))
