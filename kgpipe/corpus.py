"""Corpus readers: a folder or file of .txt/.md, .jsonl, .csv or .parquet becomes documents.

A reader yields a Document for each good record and a Skipped (file, line or row, reason) for each bad
one, so that one broken file never costs the others.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import json
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgpipe.errors import InputError
from kgpipe.hashing import sha256_bytes
from kgpipe.kg.iri import text_problem


@dataclass(frozen=True)
class CorpusOptions:
    id_field: str | None = "id"
    text_field: str = "text"
    csv_delimiter: str = ","


@dataclass(frozen=True)
class Document:
    doc_id: str
    source: Path
    source_line: int | None
    text: str

    @property
    def sha256(self) -> str:
        return text_sha256(self.text)


def text_sha256(text: str) -> str:
    """A document's content hash: the sha256 of its text in UTF-8 (the extract stage's cache keys on it)."""
    return sha256_bytes(text.encode("utf-8", "surrogatepass"))


def document_row(doc_id: str, text: str, source: str, source_line: int | None = None) -> dict[str, Any]:
    """A row of the documents table (kgpipe.artifacts.DOCUMENTS), its sha256 and n_chars those of `text`."""
    return {"doc_id": doc_id, "source": source, "source_line": source_line, "text": text,
            "sha256": text_sha256(text), "n_chars": len(text)}


@dataclass(frozen=True)
class Skipped:
    source: Path
    line: int | None
    reason: str


Record = Document | Skipped
Reader = Callable[[Path, str, CorpusOptions], Iterator[Record]]

FORMAT_BY_SUFFIX = {".txt": "txt", ".md": "txt", ".text": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl",
                    ".csv": "csv", ".parquet": "parquet"}
READERS: dict[str, Reader] = {}
_LINE_BREAK = re.compile(r"\r\n?|\n")  # the line ends csv keeps verbatim inside quoted cells


def reader(fmt: str) -> Callable[[Reader], Reader]:
    def register(func: Reader) -> Reader:
        READERS[fmt] = func
        return func
    return register


def utf8_error_position(data: bytes, exc: UnicodeDecodeError) -> tuple[int, int]:
    """(line, byte offset) of a decoding error in the file's own terms: utf-8-sig counts from after a BOM."""
    start = exc.start + (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0)
    return data.count(b"\n", 0, start) + 1, start


def _decode(data: bytes, path: Path) -> str | Skipped:
    if b"\x00" in data[:8192]:
        return Skipped(path, None, "binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, start = utf8_error_position(data, exc)
        return Skipped(path, line, f"invalid UTF-8 at byte {start}; re-encode the file as UTF-8")


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@reader("txt")
def read_text_file(path: Path, doc_id: str, options: CorpusOptions) -> Iterator[Record]:
    text = _decode(path.read_bytes(), path)
    if isinstance(text, Skipped):
        yield text
    elif not text.strip():
        yield Skipped(path, None, "empty file")
    else:
        yield Document(doc_id, path, None, _normalise(text))


def _record_document(record: object, path: Path, where: int, fallback_id: str,
                     options: CorpusOptions, unit: str) -> Record:
    """One jsonl object / csv row / parquet row as a Document, or why it is skipped."""
    if not isinstance(record, dict):
        return Skipped(path, where, f"expected a JSON object, got {type(record).__name__}")
    text = record.get(options.text_field)
    if text is None:
        fields = ", ".join(map(str, record)) or "none"
        return Skipped(path, where, f"no '{options.text_field}' {unit} (has: {fields}); set text_field")
    if not isinstance(text, str):
        return Skipped(path, where, f"'{options.text_field}' is {type(text).__name__}, not a string")
    if not text.strip():
        return Skipped(path, where, f"empty '{options.text_field}'")
    if (surrogate := _lone_surrogate(text, f"'{options.text_field}'")) is not None:
        return Skipped(path, where, surrogate)
    if options.id_field is None:
        doc_id = fallback_id
    else:
        value = record.get(options.id_field)
        if value is None or str(value).strip() == "":
            return Skipped(path, where, f"no '{options.id_field}' {unit}; set id_field (or id_field: null "
                                        "to number documents by position)")
        doc_id = str(value).strip()
        if (surrogate := _lone_surrogate(doc_id, f"'{options.id_field}'")) is not None:
            return Skipped(path, where, surrogate)
    return Document(doc_id, path, where, _normalise(text))


def _lone_surrogate(text: str, what: str) -> str | None:
    """A JSON escape such as \\ud800 decodes to half a surrogate pair, which no UTF-8 file can hold."""
    problem = text_problem(text, what)  # the seed readers' check
    return None if problem is None else f"{problem}; fix the escape"


@reader("jsonl")
def read_jsonl(path: Path, doc_id: str, options: CorpusOptions) -> Iterator[Record]:
    with path.open("rb") as handle:
        if b"\x00" in handle.read(8192):
            yield Skipped(path, None, "binary file (contains NUL bytes), not JSON lines")
            return
        handle.seek(0)
        empty = True
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            empty = False
            try:
                record = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError as exc:
                yield Skipped(path, number, f"invalid UTF-8 at byte {exc.start} of the line; re-encode as UTF-8")
                continue
            except json.JSONDecodeError as exc:
                yield Skipped(path, number, f"malformed JSON ({exc.msg} at column {exc.colno})")
                continue
            except RecursionError:
                yield Skipped(path, number, "JSON nested too deeply to parse")
                continue
            yield _record_document(record, path, number, f"{doc_id}:{number}", options, "field")
        if empty:
            yield Skipped(path, None, "empty file")


@reader("csv")
def read_csv(path: Path, doc_id: str, options: CorpusOptions) -> Iterator[Record]:
    text = _decode(path.read_bytes(), path)
    if isinstance(text, Skipped):
        yield text
        return
    rows = csv.DictReader(io.StringIO(text, newline=""), delimiter=options.csv_delimiter, strict=True)
    try:
        header = rows.fieldnames or []
        if options.text_field not in header:
            yield Skipped(path, 1, f"no column '{options.text_field}' (columns: {', '.join(header) or 'none'}); "
                                   "set text_field")
            return
        for row in rows:
            cells = [c for v in row.values() for c in (v if isinstance(v, list) else [v]) if c]
            line = rows.line_num - sum(len(_LINE_BREAK.findall(c)) for c in cells)  # where the record starts
            if None in row:  # more cells than header names
                yield Skipped(path, line, f"{len(header) + len(row[None])} cells but the header has {len(header)}")
                continue
            yield _record_document(row, path, line, f"{doc_id}:{line}", options, "column")
    except csv.Error as exc:
        yield Skipped(path, rows.reader.line_num, f"malformed CSV ({exc}); the rest of the file is skipped")


@reader("parquet")
def read_parquet(path: Path, doc_id: str, options: CorpusOptions) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        with path.open("rb") as handle:  # opened here, like every reader, so one open() guards all reads
            table = pq.read_table(handle)
    except OSError as exc:
        if exc.errno is not None:  # the file system refused, not a corrupt file
            raise
        yield Skipped(path, None, f"not a readable parquet file ({exc})")
        return
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        yield Skipped(path, None, f"not a readable parquet file ({exc})")
        return
    if options.text_field not in table.column_names:
        yield Skipped(path, None, f"no column '{options.text_field}' (columns: {', '.join(table.column_names)}); "
                                  "set text_field")
        return
    wanted = [c for c in (options.id_field, options.text_field) if c and c in table.column_names]
    try:
        rows: Iterable[dict | Skipped] = table.select(wanted).to_pylist()
    except UnicodeDecodeError:  # a string column holding bytes that are not UTF-8: find the rows, keep the rest
        rows = _parquet_rows_one_by_one(table.select(wanted), path)
    for row_number, row in enumerate(rows, start=1):
        yield row if isinstance(row, Skipped) else _record_document(row, path, row_number, f"{doc_id}:{row_number}",
                                                                    options, "column")


def _parquet_rows_one_by_one(table, path: Path) -> Iterator[dict | Skipped]:
    columns = table.column_names
    for index in range(table.num_rows):
        try:
            yield {name: table.column(name)[index].as_py() for name in columns}
        except UnicodeDecodeError as exc:
            yield Skipped(path, index + 1, f"invalid UTF-8 in a string cell (byte {exc.start}); re-encode the data")


@dataclass(frozen=True)
class CorpusListing:
    """The files of a corpus with their base document ids, what was left out and why, and hidden entries."""

    files: list[tuple[Path, str]]
    skipped: list[Skipped]
    hidden_files: int = 0
    hidden_folders: int = 0


def printable(name: str) -> str:
    """A path for messages and reports: bytes that are not UTF-8 shown as \\xNN instead of lone surrogates."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def list_corpus(corpus: Path) -> CorpusListing:
    """Walk a corpus folder without leaving it. Hidden entries (a name starting with '.') are counted, not
    read; a symlink is read only when it points to a file inside the corpus (never to a folder, so the walk
    has no loops); whatever cannot be listed or read (a loop, a dangling link, a name that is not UTF-8, a
    fifo, a folder without permission) is a Skipped with the reason."""
    if corpus.is_file():
        return CorpusListing([(corpus, corpus.stem)], [])
    root = os.path.realpath(corpus)
    files: list[tuple[tuple[str, ...], Path]] = []
    skipped: list[Skipped] = []
    hidden = {"files": 0, "folders": 0}
    pending: list[tuple[Path, tuple[str, ...]]] = [(corpus, ())]
    while pending:
        folder, parts = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            skipped.append(Skipped(folder, None, f"cannot read folder ({exc.strerror}); its files are left out"))
            continue
        for entry in entries:
            path, name = Path(entry.path), entry.name
            try:
                is_dir = entry.is_dir()  # follows a symlink: a link's kind is its target's
            except OSError:
                is_dir = False
            if name.startswith("."):
                hidden["folders" if is_dir else "files"] += 1
                continue
            if printable(name) != name:
                skipped.append(Skipped(path, None, "the name is not valid UTF-8; rename the "
                                                   f"{'folder' if is_dir else 'file'} to read it"))
                continue
            if entry.is_symlink():
                reason = _link_problem(path, root, is_dir)
                if reason is not None:
                    skipped.append(Skipped(path, None, reason))
                    continue
            elif is_dir:
                pending.append((path, (*parts, name)))
                continue
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                skipped.append(Skipped(path, None, f"cannot read file ({exc.strerror})"))
                continue
            if not stat.S_ISREG(mode):
                kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
                skipped.append(Skipped(path, None, f"not a regular file ({kind}); only files are read"))
                continue
            files.append(((*parts, name), path))
    skipped.sort(key=lambda s: s.source.relative_to(corpus).parts if s.source != corpus else ())
    files.sort(key=lambda item: item[0])
    return CorpusListing([(p, p.relative_to(corpus).with_suffix("").as_posix()) for _, p in files], skipped,
                         hidden["files"], hidden["folders"])


_KINDS = {stat.S_IFIFO: "a fifo", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


def _link_problem(link: Path, root: str, is_dir: bool) -> str | None:
    """Why a symlink in the corpus is not read, or None when it points to a file inside the corpus."""
    try:
        os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop; not followed"
        if exc.errno == errno.ENOENT:
            try:
                target = repr(printable(os.readlink(link)))
            except OSError:
                target = "unknown"
            return f"dangling symlink (its target {target} does not exist)"
        return f"cannot follow symlink ({exc.strerror})"
    if not _inside(os.path.realpath(link), root):
        return "symlink to a path outside the corpus folder; not read"
    if is_dir:
        return "symlink to a folder; folders are never followed through symlinks (no loops, no reading twice)"
    return None


def corpus_files(corpus: Path) -> list[tuple[Path, str]]:
    """The files of a corpus with their base document id (relative path without suffix)."""
    return list_corpus(corpus).files


def read_corpus(corpus: Path, fmt: str, options: CorpusOptions,
                files: Iterable[tuple[Path, str]] | None = None) -> Iterator[Record]:
    """Every document of a corpus, lazily, file by file; fmt 'auto' picks the reader by each file's suffix."""
    if not corpus.exists():
        raise InputError("corpus not found", file=corpus, hint="check the 'corpus' dep in the pipeline file")
    for path, doc_id in files if files is not None else corpus_files(corpus):
        chosen = FORMAT_BY_SUFFIX.get(path.suffix.lower()) if fmt == "auto" else fmt
        if chosen is None:
            yield Skipped(path, None, f"unsupported file type '{path.suffix}' (expected one of "
                                      f"{', '.join(sorted(FORMAT_BY_SUFFIX))}); set format to force a reader")
            continue
        try:
            yield from READERS[chosen](path, doc_id, options)
        except OSError as exc:
            yield Skipped(path, None, f"cannot read file ({exc.strerror})")
