"""Content hashes and atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgpipe.atomic import atomic_path, atomic_write_text, commit_path, temp_path_for
from kgpipe.hashing import HashCache, hash_params, path_hash
from tests.toy_stages import age, write


def test_folder_hash_covers_relative_paths_and_bytes_and_skips_temporaries(tmp_path: Path) -> None:
    write(tmp_path / "f/a.txt", "1")
    write(tmp_path / "f/sub/b.txt", "2")
    base = path_hash(tmp_path / "f")
    write(tmp_path / "g/a.txt", "1")
    write(tmp_path / "g/sub/b.txt", "2")
    assert path_hash(tmp_path / "g") == base               # location of the folder does not matter
    (tmp_path / "g/sub/b.txt").rename(tmp_path / "g/b.txt")
    assert path_hash(tmp_path / "g") != base               # a moved file does
    write(tmp_path / "f/.x.kgpipe-tmp-123", "partial")
    assert path_hash(tmp_path / "f") == base               # kgpipe's own temporaries do not
    assert path_hash(tmp_path / "missing") is None


def test_hash_cache_reuses_settled_files_and_notices_changes(tmp_path: Path) -> None:
    file = write(tmp_path / "a.txt", "one")
    age(file)
    cache = HashCache(tmp_path / "cache.json")
    first = cache.file_hash(file)
    cache.save()
    reloaded = HashCache(tmp_path / "cache.json")
    assert reloaded.file_hash(file) == first
    file.write_text("two")  # new size and mtime: re-hashed
    assert reloaded.file_hash(file) != first
    assert reloaded.file_hash(file) == path_hash(file)


def test_fresh_files_are_never_cached(tmp_path: Path) -> None:
    file = write(tmp_path / "a.txt", "one")
    cache = HashCache(tmp_path / "cache.json")
    cache.file_hash(file)
    cache.save()
    assert not (tmp_path / "cache.json").exists()  # within the racy window: nothing worth saving


def test_params_hash_ignores_key_order() -> None:
    assert hash_params({"a": 1, "b": [1, 2]}) == hash_params({"b": [1, 2], "a": 1})
    assert hash_params({"a": 1}) != hash_params({"a": 2})


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = write(tmp_path / "t.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_commit_path_swaps_folders(tmp_path: Path) -> None:
    target = tmp_path / "out"
    write(target / "old.txt", "old")
    tmp = temp_path_for(target, directory=True)
    write(tmp / "new.txt", "new")
    commit_path(tmp, target)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
