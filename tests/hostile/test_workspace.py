"""Hostile workspace states: damaged lock files, leftovers of killed runs, odd dep folders, shared artifacts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kgpipe.atomic import OUT_MARKER, TMP_MARKER, commit_path, temp_path_for
from kgpipe.cli import app
from kgpipe.config import load_pipeline
from kgpipe.errors import LockedError
from kgpipe.runner import Workspace, run, status
from tests import toy_stages  # noqa: F401  (registers the toy stage types)
from tests.hostile.cases import Case, assert_clear_error, assert_untouched, hostile, parametrize, snapshot
from tests.toy_stages import CALLS, age, write

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def chain(root: Path) -> Path:
    """a (file out) -> c (folder out) in a project folder, run once."""
    write(root / "in/a.txt", "alpha")
    pipeline = root / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"stages": {
        "a": {"type": "toy_upper", "deps": {"source": "in/a.txt"}},
        "c": {"type": "toy_concat", "deps": {"parts": ["artifacts/a/result.txt", "in"]}},
    }}, sort_keys=False))
    assert run(pipeline).ran == ["a", "c"]
    return pipeline


LOCK_CASES = [
    Case("lock-not-a-mapping", "lock", "lock.json holding a JSON list", "error", 8),
    Case("lock-entry-a-string", "lock", "a stage entry that is a string", "error", 8),
    Case("lock-entry-missing-field", "lock", "a stage entry without its outs", "error", 8),
    Case("lock-entry-wrong-type", "lock", "a stage entry whose type_version is a string", "error", 8),
    Case("lock-entry-unknown-field", "lock", "a stage entry with an unknown field", "error", 8),
    Case("lock-deps-not-hashes", "lock", "deps mapping paths to numbers", "error", 8),
    Case("lock-not-json", "lock", "binary garbage in lock.json", "error", 8),
    Case("lock-future-format", "lock", "a lock file of a later format", "error", 8),
    Case("lock-stages-a-list", "lock", "`stages` a list", "error", 8),
]


def _damage(case_id: str, lock: dict) -> bytes:
    entry = lock["stages"]["a"]
    if case_id == "lock-not-a-mapping":
        return b"[]"
    if case_id == "lock-entry-a-string":
        lock["stages"]["a"] = "x"
    elif case_id == "lock-entry-missing-field":
        del entry["outs"]
    elif case_id == "lock-entry-wrong-type":
        entry["type_version"] = "1"
    elif case_id == "lock-entry-unknown-field":
        entry["shell"] = "rm -rf /"
    elif case_id == "lock-deps-not-hashes":
        entry["deps"] = {"in/a.txt": 5}
    elif case_id == "lock-not-json":
        return b"\x00\xff{{"
    elif case_id == "lock-future-format":
        lock["format"] = 99
    elif case_id == "lock-stages-a-list":
        lock["stages"] = []
    return json.dumps(lock).encode()


@parametrize(*LOCK_CASES)
def test_a_damaged_lock_file_is_a_clear_workspace_error(case: Case, tmp_path: Path) -> None:
    pipeline = chain(tmp_path)
    lock_path = Workspace(load_pipeline(pipeline)).lock_path
    lock_path.write_bytes(_damage(case.id, json.loads(lock_path.read_text())))
    before = snapshot(tmp_path)
    for command in ("run", "status"):
        assert_clear_error(invoke(command, pipeline), case.exit_code, "lock.json", "lock file is damaged",
                           "delete it")
    assert_untouched(before, tmp_path, ignore=(".kgpipe/p/hash_cache.json", ".kgpipe/p/run"))


@hostile("lock-deleted", area="lock", what="the whole workspace deleted (`rm -rf .kgpipe`) after a run",
         outcome="recovered")
def test_deleting_the_workspace_is_a_safe_reset(tmp_path: Path) -> None:
    pipeline = chain(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / ".kgpipe")
    CALLS.clear()
    assert run(pipeline).ran == ["a", "c"]  # outs under artifacts/ count as kgpipe's: replaced, not refused
    assert (tmp_path / "artifacts/c/joined/all.txt").read_text() == "ALPHAalpha"


@parametrize(Case("ws-out-replaces-user-folder", "workspace", "an out pointing at an existing folder of the "
                  "user's (outside artifacts/, not in the lock)", "refused", 8),
             Case("ws-out-replaces-user-file", "workspace", "an out pointing at an existing file of the user's",
                  "refused", 8))
def test_an_out_never_replaces_what_kgpipe_did_not_write(case: Case, tmp_path: Path) -> None:
    write(tmp_path / "in/a.txt", "alpha")
    write(tmp_path / "mine/notes.txt", "precious")
    target = "mine" if case.id.endswith("folder") else "mine/notes.txt"
    kind = "toy_concat" if case.id.endswith("folder") else "toy_upper"
    deps = {"parts": ["in"]} if kind == "toy_concat" else {"source": "in/a.txt"}
    out = "folder" if kind == "toy_concat" else "result"
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"stages": {"s": {"type": kind, "deps": deps, "outs": {out: target}}}}))
    before = snapshot(tmp_path)
    assert_clear_error(invoke("run", pipeline), case.exit_code, "kgpipe did not write", "move it away")
    assert_untouched(before, tmp_path)
    assert (tmp_path / "mine/notes.txt").read_text() == "precious"


@hostile("ws-folder-out-marker", area="workspace", what="a folder out outside artifacts/ after the lock file is "
         "lost: kgpipe's marker in it lets the next run replace it", outcome="recovered")
def test_a_folder_out_outside_artifacts_is_recognised_by_its_marker(tmp_path: Path) -> None:
    write(tmp_path / "in/a.txt", "alpha")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"stages": {"s": {"type": "toy_concat", "deps": {"parts": ["in"]},
                                                         "outs": {"folder": "exported"}}}}))
    run(pipeline)
    marker = json.loads((tmp_path / "exported" / OUT_MARKER).read_text())
    assert marker == {"out": "folder", "pipeline": "p.yaml", "stage": "s"}
    (Workspace(load_pipeline(pipeline)).lock_path).unlink()
    assert run(pipeline).ran == ["s"]
    (tmp_path / "exported" / OUT_MARKER).unlink()  # without lock and marker it is the user's folder
    (Workspace(load_pipeline(pipeline)).lock_path).unlink()
    with pytest.raises(Exception, match="kgpipe did not write"):
        run(pipeline)


@parametrize(Case("ws-killed-between-folder-renames", "workspace", "a run killed between the two renames of a "
                  "folder commit (old copy moved aside, new one not yet in place)", "recovered"),
             Case("ws-killed-mid-write", "workspace", "a run killed while writing an out (a temporary file beside "
                  "it) and while replacing the lock file", "recovered"))
def test_leftovers_of_a_killed_run_are_removed_by_the_next(case: Case, tmp_path: Path) -> None:
    pipeline = chain(tmp_path)
    joined = tmp_path / "artifacts/c/joined"
    if case.id == "ws-killed-between-folder-renames":
        aside = temp_path_for(joined, directory=True)
        aside.rmdir()
        os.replace(joined, aside)               # the first rename happened
        new = temp_path_for(joined, directory=True)
        (new / "all.txt").write_text("new")     # the second did not
    else:
        half = temp_path_for(tmp_path / "artifacts/a/result.txt")
        half.write_text("half")
        temp_path_for(half).write_text("half of half")  # a stage writing its temporary out atomically
        lock = Workspace(load_pipeline(pipeline)).lock_path
        temp_path_for(lock).write_text("{")
    leftovers = sorted(p.name for p in tmp_path.rglob(f"*{TMP_MARKER}*"))
    assert leftovers
    run(pipeline)
    assert not list(tmp_path.rglob(f"*{TMP_MARKER}*")), leftovers
    assert (joined / "all.txt").read_text() == "ALPHAalpha"
    assert all(not st.stale for st in status(pipeline))


@hostile("ws-commit-swap-fails", area="workspace", what="replacing a folder out fails half-way (os.replace raises "
         "after the old folder was moved aside)", outcome="recovered")
def test_a_failed_folder_swap_puts_the_old_folder_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write(tmp_path / "out/old.txt", "old").parent
    new = temp_path_for(target, directory=True)
    (new / "new.txt").write_text("new")
    real_replace = os.replace
    calls = []

    def failing(src: object, dst: object) -> None:
        calls.append((src, dst))
        if len(calls) == 2:  # the swap of the new folder into place
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="No space"):
        commit_path(new, target)
    monkeypatch.setattr(os, "replace", real_replace)
    assert (target / "old.txt").read_text() == "old" and not (target / "new.txt").exists()
    assert len(calls) == 3  # aside, failed swap, back


@hostile("ws-folder-out-mode", area="workspace", what="folder outs created by mkdtemp (mode 0700)",
         outcome="handled")
def test_committed_folders_get_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        chain(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "artifacts/c/joined").stat().st_mode) == 0o755


@hostile("ws-edit-keeps-size-and-mtime", area="workspace", what="a dep edited in place with its size and mtime "
         "restored afterwards", outcome="handled")
def test_an_edit_that_restores_size_and_mtime_is_still_seen(tmp_path: Path) -> None:
    pipeline = chain(tmp_path)
    source = tmp_path / "in/a.txt"
    age(source)
    run(pipeline)  # the hash cache now holds a settled entry for in/a.txt
    before = source.stat()
    source.write_text("ALPHA")  # same size
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert source.stat().st_size == before.st_size and source.stat().st_mtime_ns == before.st_mtime_ns
    reasons = {st.name: st.reasons for st in status(pipeline)}
    assert "dep changed: in/a.txt" in reasons["a"]


@parametrize(Case("ws-hash-cache-garbage", "workspace", "binary garbage in hash_cache.json", "recovered"),
             Case("ws-hash-cache-wrong-shape", "workspace", "hash_cache.json of the wrong shape (strings for "
                  "entries, a list at the top)", "recovered"))
def test_a_damaged_hash_cache_only_costs_rehashing(case: Case, tmp_path: Path) -> None:
    pipeline = chain(tmp_path)
    cache = Workspace(load_pipeline(pipeline)).hash_cache_path
    cache.write_bytes(b"\xff\x00" if case.id.endswith("garbage") else
                      json.dumps({str(tmp_path / "in/a.txt"): "x", "y": [1, 2]}).encode())
    assert all(not st.stale for st in status(pipeline))
    (tmp_path / "in/a.txt").write_text("beta")
    assert run(pipeline).ran == ["a", "c"]
    if case.id.endswith("shape"):
        cache.write_text("[1, 2]")
        assert all(not st.stale for st in status(pipeline))


DEP_CASES = [
    Case("ws-dep-folder-link-loop", "workspace", "a link loop (a -> a) inside a folder dep", "handled"),
    Case("ws-dep-folder-dangling-link", "workspace", "a dangling link inside a folder dep", "handled"),
    Case("ws-dep-folder-dir-link-cycle", "workspace", "a link to the folder's own parent inside a folder dep",
         "handled"),
    Case("ws-dep-folder-non-utf8-name", "workspace", "a file name that is not UTF-8 inside a folder dep", "handled"),
    Case("ws-dep-folder-unreadable", "workspace", "an unreadable subfolder inside a folder dep", "handled"),
]


@parametrize(*DEP_CASES)
def test_odd_entries_in_a_folder_dep_neither_crash_run_nor_status(case: Case, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = chain(tmp_path)
    folder = tmp_path / "in"
    if case.id == "ws-dep-folder-link-loop":
        os.symlink("loop", folder / "loop")  # names without .txt: the toy stage reads only *.txt
    elif case.id == "ws-dep-folder-dangling-link":
        os.symlink("missing", folder / "gone")
    elif case.id == "ws-dep-folder-dir-link-cycle":
        os.symlink("..", folder / "up")
    elif case.id == "ws-dep-folder-non-utf8-name":
        (Path(os.fsdecode(os.fsencode(folder) + b"/caf\xe9.txt"))).write_text("x")
    else:
        (folder / "locked").mkdir()
        write(folder / "locked/x.txt", "x")
        real_scandir = os.scandir

        def scandir(path: object = ".") -> object:
            if isinstance(path, str | bytes | os.PathLike) and os.fsdecode(path).endswith("locked"):
                raise PermissionError(13, "Permission denied", os.fsdecode(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
    result = invoke("status", pipeline)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "stale" in result.output and "dep changed: in" in result.output
    assert invoke("run", pipeline).exit_code == 0
    assert "up to date" in invoke("status", pipeline).output


@parametrize(Case("ws-dep-file-link-loop", "workspace", "a file dep that is a link loop", "error", 3),
             Case("ws-dep-file-unreadable", "workspace", "a file dep that cannot be read (permission denied)",
                  "error", 3),
             Case("ws-dep-file-fifo", "workspace", "a file dep that is a named pipe (reading it would block)",
                  "error", 3))
def test_a_file_dep_that_cannot_be_read_names_it(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = chain(tmp_path)
    source = tmp_path / "in/a.txt"
    if case.id == "ws-dep-file-link-loop":
        source.unlink()
        os.symlink("a.txt", source)
    elif case.id == "ws-dep-file-fifo":
        source.unlink()
        os.mkfifo(source)
    else:
        source.write_text("changed")  # not in the hash cache: it must be read
        import builtins

        real_open = builtins.open

        def guarded(file: object, *args: object, **kwargs: object) -> object:
            if os.fspath(file) == str(source):  # type: ignore[arg-type]
                raise PermissionError(13, "Permission denied", str(source))
            return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

        monkeypatch.setattr(builtins, "open", guarded)
    before = snapshot(tmp_path / "artifacts")
    for command in ("run", "status"):
        assert_clear_error(invoke(command, pipeline), case.exit_code, "in/a.txt", "dep 'source'",
                           "cannot be resolved" if case.id.endswith("loop") else "cannot be read")
    assert_untouched(before, tmp_path / "artifacts")


HOLD = """
import sys, time
from pathlib import Path
from filelock import FileLock
lock = FileLock(sys.argv[1]); lock.acquire()
Path(sys.argv[2]).write_text("held"); time.sleep(float(sys.argv[3]))
"""


@hostile("ws-shared-artifacts-folder", area="workspace", what="two pipeline files (two workspaces) writing one "
         "artifacts folder at the same time", outcome="error", exit_code=5)
def test_two_pipelines_sharing_an_artifacts_folder_do_not_run_at_once(tmp_path: Path) -> None:
    first = chain(tmp_path)
    second = tmp_path / "q.yaml"
    second.write_text(first.read_text())
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "artifacts/.kgpipe-run.lock"),
                               str(ready), "20"])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        before = snapshot(tmp_path / "artifacts")
        assert_clear_error(invoke("run", second, "--force"), 5, "another kgpipe run is using the artifacts folder")
        assert_untouched(before, tmp_path / "artifacts")
        with pytest.raises(LockedError):
            run(first, force=True)
    finally:
        holder.kill()
        holder.wait()
    assert run(second).ran == ["a", "c"]  # its own workspace: never run before, now free to


@hostile("cli-internal-error", area="cli", what="an unexpected exception inside a command (a bug)",
         outcome="error", exit_code=70)
def test_a_bug_exits_70_without_a_traceback_unless_verbose(tmp_path: Path) -> None:
    pipeline = chain(tmp_path)
    code = ("import sys, kgpipe.runner as r\n"
            "def boom(*a, **k): raise ZeroDivisionError('x')\n"
            "r.status = boom\n"
            "from kgpipe.cli import main\n"
            f"sys.argv = ['kgpipe'] + sys.argv[1:] + ['status', {str(pipeline)!r}]\n"
            "main()\n")
    for verbose in ([], ["-v"]):
        done = subprocess.run([sys.executable, "-c", code, *verbose], capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 70, done.stderr
        assert "internal error (ZeroDivisionError: x)" in done.stderr and "run again with -v" in done.stderr
        assert ("Traceback" in done.stderr) == bool(verbose)
