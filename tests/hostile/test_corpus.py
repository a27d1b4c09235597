"""Hostile corpus folders and records: lone surrogates, deep nesting, symlink loops and links out of the
corpus, names that are not UTF-8, fifos, unreadable files and folders, hidden entries. Each bad entry is
skipped and listed (file, line, reason) and the good documents are kept; strict: true makes it an error.

Most cases call the stage itself (IngestStage.run on a StageContext): the runner hashes a corpus folder
before any stage runs, and that hashing (kgpipe/hashing.py, outside this slice) does not yet survive
dangling links, loops, fifos or non-UTF-8 names. The cases it does survive also run through `kgpipe run`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kgpipe.artifacts import DOCUMENTS, read_table
from kgpipe.errors import InputError
from kgpipe.stage import StageContext
from kgpipe.stages.ingest import IngestParams, IngestStage
from tests.hostile.cases import Case, assert_clear_error, assert_untouched, hostile, parametrize, snapshot
from tests.hostile.ingest_helpers import RECORDER, cli_run, write_ingest_pipeline
from tests.test_ingest import write

GOOD_TEXT = "A good document about Marie Curie."
SECRET = "TOP SECRET: the corpus must not leak this"


@dataclass
class Ingested:
    summary: dict[str, Any]
    report: dict[str, Any]
    documents: list[dict[str, Any]]

    def skipped(self) -> list[tuple[str, int | None, str]]:
        return [(s["source"], s["line"], s["reason"]) for s in self.report["skipped"]]


def ingest(root: Path, corpus: str = "corpus", **params: Any) -> Ingested:
    """IngestStage.run on root/corpus, outputs under root/out."""
    out = root / "out"
    out.mkdir(exist_ok=True)
    outputs = {spec.name: out / spec.filename for spec in IngestStage.outputs}
    ctx = StageContext(stage="ingest", params=IngestParams(**params), inputs={"corpus": root / corpus, "seeds": []},
                       outputs=outputs, root=root, scratch_dir=root / "scratch")
    summary = IngestStage().run(ctx)
    report = json.loads(outputs["report"].read_text(encoding="utf-8"))
    documents = read_table(outputs["documents"], DOCUMENTS).to_dict("records")
    return Ingested(summary, report, documents)


def _jsonl(tmp: Path, bad_line: str) -> None:
    write(tmp / "corpus/docs.jsonl", '{"id": "j1", "text": "First good line."}\n' + bad_line + "\n"
          '{"id": "j3", "text": "Third good line."}\n')


def _parquet_with_invalid_utf8(tmp: Path) -> None:
    raw = pa.array([b"Row one is fine.", b"Row two has \xff in it.", b"Row three is fine."], type=pa.binary())
    text = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())  # bytes labelled UTF-8 without a check
    (tmp / "corpus").mkdir(exist_ok=True)
    pq.write_table(pa.table({"id": ["p1", "p2", "p3"], "text": text}), tmp / "corpus/rows.parquet")


def _symlink(link: Path, target: str | Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


# case, how to build it, [(source, line, words in the reason)], document ids kept besides 'good'
SKIPPED: list[tuple[Case, Callable[[Path], None], list[tuple[str, int | None, str]], list[str]]] = [
    (Case("corpus-jsonl-lone-surrogate-text", "corpus", 'jsonl line whose text has the escape "\\ud800"',
          "skipped"),
     lambda t: _jsonl(t, '{"id": "j2", "text": "half a pair \\ud800 here"}'),
     [("corpus/docs.jsonl", 2, "lone surrogate U+D800")], ["j1", "j3"]),
    (Case("corpus-jsonl-lone-surrogate-id", "corpus", 'jsonl line whose id is "\\udc00x"', "skipped"),
     lambda t: _jsonl(t, '{"id": "\\udc00x", "text": "Text with a bad id."}'),
     [("corpus/docs.jsonl", 2, "'id' contains a lone surrogate U+DC00")], ["j1", "j3"]),
    (Case("corpus-jsonl-deep-array", "corpus", "jsonl line of 200k nested [ brackets", "skipped"),
     lambda t: _jsonl(t, "[" * 200_000 + "]" * 200_000), [("corpus/docs.jsonl", 2, "nested too deeply")],
     ["j1", "j3"]),
    (Case("corpus-jsonl-deep-object", "corpus", "jsonl record with a 100k-deep nested object beside its text",
          "skipped"),
     lambda t: _jsonl(t, '{"id": "j2", "text": "t", "meta": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001),
     [("corpus/docs.jsonl", 2, "nested too deeply")], ["j1", "j3"]),
    (Case("corpus-parquet-invalid-utf8", "corpus", "parquet string column holding a non-UTF-8 byte in row 2",
          "skipped"),
     _parquet_with_invalid_utf8, [("corpus/rows.parquet", 2, "invalid UTF-8")], ["p1", "p3"]),
    (Case("corpus-symlink-loop", "corpus", "two symlinks pointing at each other (a.txt -> b.txt -> a.txt)",
          "skipped"),
     lambda t: (_symlink(t / "corpus/a.txt", "b.txt"), _symlink(t / "corpus/b.txt", "a.txt")),
     [("corpus/a.txt", None, "symlink loop"), ("corpus/b.txt", None, "symlink loop")], []),
    (Case("corpus-folder-symlink-to-ancestor", "corpus", "a folder symlink to the corpus itself (sub/up -> ..)",
          "skipped"),
     lambda t: (write(t / "corpus/sub/x.txt", "In a subfolder."), _symlink(t / "corpus/sub/up", "..")),
     [("corpus/sub/up", None, "symlink to a folder")], ["sub/x"]),
    (Case("corpus-dangling-symlink", "corpus", "a symlink whose target does not exist", "skipped"),
     lambda t: _symlink(t / "corpus/gone.txt", "missing.txt"), [("corpus/gone.txt", None, "dangling symlink")],
     []),
    (Case("corpus-symlink-outside-file", "corpus", "a symlink to a secret file beside the corpus folder",
          "skipped"),
     lambda t: (write(t / "secret.txt", SECRET), _symlink(t / "corpus/secret.txt", "../secret.txt")),
     [("corpus/secret.txt", None, "outside the corpus folder")], []),
    (Case("corpus-symlink-outside-folder", "corpus", "a symlink to a folder outside the corpus", "skipped"),
     lambda t: (write(t / "elsewhere/s.txt", SECRET), _symlink(t / "corpus/elsewhere", t / "elsewhere")),
     [("corpus/elsewhere", None, "outside the corpus folder")], []),
    (Case("corpus-symlink-etc-passwd", "corpus", "a symlink to /etc/passwd by absolute path", "skipped"),
     lambda t: _symlink(t / "corpus/passwd.txt", "/etc/passwd"),
     [("corpus/passwd.txt", None, "outside the corpus folder")], []),
    (Case("corpus-symlink-dev-zero", "corpus", "a symlink to /dev/zero (an endless read)", "skipped"),
     lambda t: _symlink(t / "corpus/zero.txt", "/dev/zero"), [("corpus/zero.txt", None, "outside the corpus")],
     []),
    (Case("corpus-symlink-sneaks-out-through-inner-link", "corpus", "a file symlink inside the corpus whose "
          "target is itself a link out of it", "skipped"),
     lambda t: (write(t / "secret.txt", SECRET), _symlink(t / "corpus/inner.txt", "../secret.txt"),
                _symlink(t / "corpus/sub/outer.txt", "../inner.txt")),
     [("corpus/inner.txt", None, "outside the corpus"), ("corpus/sub/outer.txt", None, "outside the corpus")], []),
    (Case("corpus-non-utf8-file-name", "corpus", "a file named caf\\xe9.txt (Latin-1 bytes)", "skipped"),
     lambda t: write(Path(os.fsdecode(bytes(t) + b"/corpus/caf\xe9.txt")), "Named in Latin-1."),
     [("corpus/caf\\xe9.txt", None, "not valid UTF-8")], []),
    (Case("corpus-non-utf8-folder-name", "corpus", "a folder named d\\xff holding a readable file", "skipped"),
     lambda t: write(Path(os.fsdecode(bytes(t) + b"/corpus/d\xff/inside.txt")), "Inside a Latin-1 folder."),
     [("corpus/d\\xff", None, "not valid UTF-8")], []),
    (Case("corpus-fifo", "corpus", "a named pipe (fifo) called pipe.txt: reading it would block forever",
          "skipped"),
     lambda t: os.mkfifo(t / "corpus/pipe.txt"), [("corpus/pipe.txt", None, "not a regular file (a fifo)")], []),
]


def _ingest_within(root: Path, seconds: float, **params: Any) -> Ingested:
    """ingest() in a thread, so that a regression that blocks on a fifo fails the test instead of hanging."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = ingest(root, **params)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"ingest still running after {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


@parametrize(*(case for case, *_ in SKIPPED))
def test_a_bad_corpus_entry_is_skipped_and_listed(tmp_path, case):
    _, build, expected, kept = next(s for s in SKIPPED if s[0] == case)
    write(tmp_path / "corpus/good.txt", GOOD_TEXT)
    build(tmp_path)

    with RECORDER.recording() as recorder:
        result = _ingest_within(tmp_path, 30)

    skipped = result.skipped()
    assert [(source, line) for source, line, _ in skipped] == [(source, line) for source, line, _ in expected]
    for (_, _, reason), (_, _, words) in zip(skipped, expected, strict=True):
        assert words in reason, reason
    assert sorted(d["doc_id"] for d in result.documents) == sorted(["good", *kept])
    assert result.summary["skipped"] == result.report["corpus"]["skipped"] == len(expected)
    assert not [d for d in result.documents if SECRET in d["text"] or "root:" in d["text"]]
    assert not [p for p in recorder.opened if p in ("/etc/passwd", "/dev/zero") or p.endswith("secret.txt")]
    json.dumps(result.report, ensure_ascii=False).encode("utf-8")  # the report is valid UTF-8 JSON


def _deny(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Root reads everything, so unreadable files are simulated: opening `name` raises PermissionError."""
    real_open = Path.open

    def guarded(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.name == name:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)


@parametrize(
    Case("corpus-unreadable-txt", "corpus", "a .txt file the process may not read (PermissionError)", "skipped"),
    Case("corpus-unreadable-jsonl", "corpus", "a .jsonl file the process may not read", "skipped"),
    Case("corpus-unreadable-parquet", "corpus", "a .parquet file the process may not read", "skipped"),
)
def test_an_unreadable_file_is_skipped_and_listed(tmp_path, monkeypatch, case):
    name = {"corpus-unreadable-txt": "locked.txt", "corpus-unreadable-jsonl": "locked.jsonl",
            "corpus-unreadable-parquet": "locked.parquet"}[case.id]
    write(tmp_path / "corpus/good.txt", GOOD_TEXT)
    if name.endswith(".parquet"):
        pq.write_table(pa.table({"id": ["p"], "text": [SECRET]}), tmp_path / "corpus" / name)
    else:
        write(tmp_path / "corpus" / name, SECRET if name.endswith(".txt") else json.dumps({"id": "x", "text": SECRET}))
    _deny(monkeypatch, name)

    result = ingest(tmp_path)

    assert result.skipped() == [(f"corpus/{name}", None, "cannot read file (Permission denied)")]
    assert [d["doc_id"] for d in result.documents] == ["good"]


@hostile("corpus-unreadable-folder", area="corpus", outcome="skipped",
         what="a subfolder the process may not list (PermissionError from os.scandir)")
def test_an_unreadable_folder_is_skipped_and_listed(tmp_path, monkeypatch):
    write(tmp_path / "corpus/good.txt", GOOD_TEXT)
    write(tmp_path / "corpus/locked/inside.txt", SECRET)
    real_scandir = os.scandir

    def guarded(path: Any = ".") -> Any:
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", guarded)

    result = ingest(tmp_path)

    assert result.skipped() == [("corpus/locked", None, "cannot read folder (Permission denied); its files are left "
                                                        "out")]
    assert [d["doc_id"] for d in result.documents] == ["good"]


@hostile("corpus-hidden-entries", area="corpus", outcome="handled",
         what="dot-files and dot-folders (.env, .git/, sub/.cache/, a hidden link to /etc/passwd)")
def test_hidden_files_and_folders_are_counted_not_read(tmp_path):
    write(tmp_path / "corpus/good.txt", GOOD_TEXT)
    write(tmp_path / "corpus/.env", "API_KEY=" + SECRET)
    write(tmp_path / "corpus/.hidden.txt", SECRET)
    write(tmp_path / "corpus/.git/config", SECRET)
    write(tmp_path / "corpus/sub/visible.txt", "A visible document in a subfolder.")
    write(tmp_path / "corpus/sub/.cache/x.txt", SECRET)
    _symlink(tmp_path / "corpus/.passwd", "/etc/passwd")

    result = ingest(tmp_path)

    assert sorted(d["doc_id"] for d in result.documents) == ["good", "sub/visible"]
    corpus = result.report["corpus"]
    assert (corpus["hidden_files"], corpus["hidden_folders"], corpus["files"]) == (3, 2, 2)
    assert result.report["skipped"] == []


def test_a_symlink_to_a_file_inside_the_corpus_is_read(tmp_path):
    write(tmp_path / "corpus/real/doc.txt", GOOD_TEXT)
    _symlink(tmp_path / "corpus/alias.txt", "real/doc.txt")

    result = ingest(tmp_path)

    assert [d["doc_id"] for d in result.documents] == ["alias"]
    assert result.report["duplicates"] == [{"doc_id": "real/doc", "source": "corpus/real/doc.txt",
                                            "duplicate_of": "alias"}]


@pytest.mark.parametrize("strict", [False, True])
def test_strict_makes_a_listing_problem_an_error(tmp_path, strict):
    write(tmp_path / "corpus/good.txt", GOOD_TEXT)
    _symlink(tmp_path / "corpus/gone.txt", "missing.txt")
    if not strict:
        assert ingest(tmp_path).skipped()[0][:2] == ("corpus/gone.txt", None)
        return
    with pytest.raises(InputError, match="dangling symlink") as info:
        ingest(tmp_path, strict=True)
    assert info.value.file == "corpus/gone.txt"
    assert "strict: false" in str(info.value)


# --- through `kgpipe run` -------------------------------------------------------------------------------


def test_lone_surrogate_and_deep_nesting_through_the_cli_are_skipped_not_fatal(tmp_path):
    _jsonl(tmp_path, '{"id": "j2", "text": "half a pair \\ud800 here"}')
    with (tmp_path / "corpus/docs.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("[" * 200_000 + "]" * 200_000 + "\n")

    result = cli_run(write_ingest_pipeline(tmp_path))

    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    rep = json.loads((tmp_path / "artifacts/ingest/ingest_report.json").read_text(encoding="utf-8"))
    assert [(s["source"], s["line"]) for s in rep["skipped"]] == [("corpus/docs.jsonl", 2), ("corpus/docs.jsonl", 4)]
    assert rep["corpus"]["documents"] == 2


@hostile("corpus-strict-symlink-outside", area="corpus", outcome="error", exit_code=3,
         what="strict: true and a symlink to a file outside the corpus, through `kgpipe run`")
def test_strict_outside_symlink_through_the_cli_leaves_earlier_outputs_untouched(tmp_path):
    write(tmp_path / "corpus/good.txt", GOOD_TEXT)
    pipeline = write_ingest_pipeline(tmp_path, strict=True)
    assert cli_run(pipeline).exit_code == 0
    before = snapshot(tmp_path / "artifacts")
    write(tmp_path / "secret.txt", SECRET)
    _symlink(tmp_path / "corpus/secret.txt", "../secret.txt")

    result = cli_run(pipeline)

    assert_clear_error(result, 3, "corpus/secret.txt", "outside the corpus folder", "strict: false")
    assert SECRET not in result.output
    assert_untouched(before, tmp_path / "artifacts")


@hostile("corpus-only-unreadable", area="corpus", outcome="error", exit_code=3,
         what="a corpus whose only file is a symlink out of it, through `kgpipe run`")
def test_a_corpus_with_nothing_readable_names_the_first_problem(tmp_path):
    write(tmp_path / "secret.txt", SECRET)
    _symlink(tmp_path / "corpus/secret.txt", "../secret.txt")

    result = cli_run(write_ingest_pipeline(tmp_path))

    assert_clear_error(result, 3, "no readable documents", "0 file(s), 1 skipped", "corpus/secret.txt")


@parametrize(Case("corpus-cli-dangling-link", "corpus", "a dangling link in the corpus folder, through `kgpipe "
                  "run` (the dep is hashed first)", "skipped"),
             Case("corpus-cli-fifo", "corpus", "a named pipe (fifo) in the corpus folder, through `kgpipe run`",
                  "skipped"),
             Case("corpus-cli-link-to-device", "corpus", "a link to /dev/zero in the corpus folder, through "
                  "`kgpipe run`", "skipped"))
def test_special_entries_through_the_cli(case, tmp_path):
    """The dep folder is hashed before ingest reads it: neither step may hang or crash on these."""
    write(tmp_path / "corpus/good.txt", GOOD_TEXT)
    if case.id == "corpus-cli-dangling-link":
        _symlink(tmp_path / "corpus/gone.txt", "missing.txt")
    elif case.id == "corpus-cli-fifo":
        os.mkfifo(tmp_path / "corpus/pipe.txt")
    else:
        _symlink(tmp_path / "corpus/zero.txt", "/dev/zero")
    result = cli_run(write_ingest_pipeline(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "artifacts/ingest/ingest_report.json").read_text())
    assert len(report["skipped"]) == 1 and report["corpus"]["documents"] == 1, report
