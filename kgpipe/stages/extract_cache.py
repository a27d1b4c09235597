"""The extract stage's per-document cache: each document's mention and relation rows, keyed by (doc_id, sha256 of
its text) under an extractor fingerprint (kgpipe.stages.extract_fingerprint), so that a run over a changed corpus
extracts only its new and changed documents.

One SQLite file in the pipeline's workspace (`cache/extract.sqlite`): a table of fingerprints (what each stands
for, the facts a worker reports about the extractor), a table of entries, one per document and fingerprint (its
key, size and last use: small rows, so that marking them used rewrites no blobs), and beside each entry its
contents: its rows as Arrow IPC record batch messages in the artifact schemas (MENTIONS, RELATIONS; the schemas are
part of the fingerprint, so a message is always read with the schema it was written in) and its counts as JSON.
Writes are SQLite transactions (a killed run leaves the last committed state); the pipeline's run lock keeps
two runs (or a run and `kgpipe cache prune`) from writing at once. The file is bounded: entries least recently
used go first once it holds more than a size limit. An entry that does not read back as what was written (a
damaged file, another schema) is dropped with a warning and its document extracted again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import operator
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgpipe.artifacts import MENTIONS, RELATIONS, TableSchema
from kgpipe.atomic import remove_path
from kgpipe.errors import WorkspaceError
from kgpipe.nlp.extract_worker import DocumentCounts, WorkerFacts

if TYPE_CHECKING:
    import pyarrow as pa

    from kgpipe.config import Pipeline

log = logging.getLogger(__name__)

CACHE_FILE = Path("cache") / "extract.sqlite"   # under the pipeline's workspace
FORMAT = 2                                      # PRAGMA user_version; another one: the file is started afresh
DEFAULT_MAX_BYTES = 2_000_000_000
READ_BATCH = 400                                # entries read (and written to the outputs) at once
LOOKUP_BATCH = 10_000                           # keys looked up (not read) at once

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fingerprints (
    fingerprint TEXT PRIMARY KEY,
    stage TEXT NOT NULL,            -- the stage that last used it
    parts TEXT NOT NULL,            -- JSON: what the fingerprint is the hash of
    facts TEXT,                     -- JSON: WorkerFacts, once a worker reported them
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,           -- of the document's text (UTF-8)
    bytes INTEGER NOT NULL,         -- of its contents
    used INTEGER NOT NULL,          -- time.time_ns() of the run that last read or wrote it
    UNIQUE (fingerprint, doc_id, sha256)
);
CREATE INDEX IF NOT EXISTS entries_by_use ON entries (used);
CREATE TABLE IF NOT EXISTS contents (
    entry INTEGER PRIMARY KEY,      -- entries.id
    mentions BLOB NOT NULL,         -- Arrow IPC record batch message, MENTIONS schema
    relations BLOB NOT NULL,        -- Arrow IPC record batch message, RELATIONS schema
    counts TEXT NOT NULL            -- JSON: DocumentCounts
);
"""


_WANTED_ENTRY = "e.fingerprint = ? AND e.doc_id = w.doc_id AND e.sha256 = w.sha256"


def cache_path(workspace: Path) -> Path:
    return workspace / CACHE_FILE


@dataclass(frozen=True)
class CachedDocument:
    """A document's rows (artifact schemas, in the order a full run writes them) and counts."""

    mentions: pa.RecordBatch
    relations: pa.RecordBatch
    counts: DocumentCounts


@dataclass(frozen=True)
class FingerprintUsage:
    """What `kgpipe cache` lists for one fingerprint."""

    fingerprint: str
    stage: str
    entries: int
    bytes: int
    last_used: float | None   # seconds since the epoch; None: no entries


@dataclass(frozen=True)
class Pruned:
    entries: int
    bytes: int
    current: int = 0   # of them, entries the run that evicted them had used


class BrokenEntry(Exception):
    """An entry that does not read back as a document's rows."""


def _connect(path: Path) -> sqlite3.Connection:
    """The cache file, created with its tables; sqlite3.DatabaseError when it is not a cache of this format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30.0)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, FORMAT):
            raise sqlite3.DatabaseError(f"cache format {version}, this kgpipe writes format {FORMAT}")
        if version == 0:
            connection.execute("PRAGMA auto_vacuum = INCREMENTAL")  # a new file: freed pages can be given back
        connection.executescript(_SCHEMA)
        connection.execute(f"PRAGMA user_version = {FORMAT}")
        connection.commit()
    except BaseException:
        connection.close()
        raise
    return connection


def open_or_reset(path: Path, logger: logging.Logger = log) -> sqlite3.Connection:
    """The cache file; one that cannot be read as a cache (damaged, another format) is removed with a warning
    and started afresh (it only costs extracting again)."""
    try:
        return _connect(path)
    except sqlite3.DatabaseError as exc:
        logger.warning("extract cache %s is unreadable (%s): starting an empty one, so every document is "
                       "extracted again", path, exc)
    for leftover in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        remove_path(leftover)
    return _connect(path)


class ExtractCache:
    """The entries of one fingerprint, opened by the extract stage for one run. Reads and writes mark entries as
    used by this run; `commit` makes the writes (and those marks) durable."""

    def __init__(self, path: Path, fingerprint: str, *, stage: str, parts: dict[str, Any],
                 logger: logging.Logger = log) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.log = logger
        self.stamp = time.time_ns()
        self.broken: list[tuple[str, str]] = []   # (doc_id, what is wrong) of the broken entries read() dropped
        self.db = open_or_reset(path, logger)
        self.db.execute("INSERT INTO fingerprints (fingerprint, stage, parts, created) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (fingerprint) DO UPDATE SET stage = excluded.stage",
                        (fingerprint, stage, json.dumps(parts, sort_keys=True), time.time()))
        self.db.commit()

    def close(self) -> None:
        self.commit()
        self.db.close()

    def __enter__(self) -> ExtractCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- facts ------------------------------------------------------------------------------------------

    def facts(self) -> WorkerFacts | None:
        row = self.db.execute("SELECT facts FROM fingerprints WHERE fingerprint = ?", (self.fingerprint,)).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            return WorkerFacts(**json.loads(row[0]))
        except (ValueError, TypeError):
            return None

    def set_facts(self, facts: WorkerFacts) -> None:
        self.db.execute("UPDATE fingerprints SET facts = ? WHERE fingerprint = ?",
                        (json.dumps(asdict(facts)), self.fingerprint))

    # --- entries ----------------------------------------------------------------------------------------

    def holds(self, keys: Sequence[tuple[str, str]]) -> list[bool]:
        """Whether each of these (doc_id, sha256) keys has an entry (not read: see read)."""
        found = [False] * len(keys)
        for position, in self._wanted(keys, "w.position FROM wanted w CROSS JOIN entries e ON "
                                            f"{_WANTED_ENTRY}"):
            found[position] = True
        return found

    def _wanted(self, keys: Sequence[tuple[str, str]], select: str) -> sqlite3.Cursor:
        """SELECT `select` (over the temporary table `wanted` of the keys and their positions). CROSS JOIN keeps
        `wanted` the outer loop: the planner knows nothing of a temporary table's size and would otherwise scan
        it for every entry of the fingerprint."""
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (position INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, "
                        "sha256 TEXT NOT NULL)")
        self.db.execute("DELETE FROM wanted")
        self.db.executemany("INSERT INTO wanted VALUES (?, ?, ?)",
                            ((i, doc_id, sha) for i, (doc_id, sha) in enumerate(keys)))
        return self.db.execute(f"SELECT {select}", (self.fingerprint,))

    def _entry(self, key: tuple[str, str]) -> int | None:
        row = self.db.execute("SELECT id FROM entries WHERE fingerprint = ? AND doc_id = ? AND sha256 = ?",
                              (self.fingerprint, *key)).fetchone()
        return None if row is None else int(row[0])

    def read(self, keys: Sequence[tuple[str, str]]) -> list[CachedDocument | None]:
        """The cached rows of these (doc_id, sha256) keys, in their order: None for a key without an entry, or
        whose entry is broken (it is removed and listed in `broken`). The entries read are marked as used by
        this run."""
        found: list[CachedDocument | None] = [None] * len(keys)
        ids: list[int | None] = [None] * len(keys)
        problems: dict[int, str] = {}
        for i, entry, *contents in self._wanted(keys, "w.position, e.id, c.mentions, c.relations, c.counts FROM "
                                                      f"wanted w CROSS JOIN entries e ON {_WANTED_ENTRY} CROSS JOIN "
                                                      "contents c ON c.entry = e.id"):
            ids[i] = entry
            try:
                found[i] = decode(keys[i][0], *contents)
            except BrokenEntry as exc:
                problems[i] = str(exc)
        problems.update(dict.fromkeys(_foreign(found), "rows of another document"))
        for i, problem in problems.items():
            self.broken.append((keys[i][0], problem))
            found[i] = None
        self._delete([(ids[i],) for i in problems])
        self.db.executemany("UPDATE entries SET used = ? WHERE id = ?",
                            [(self.stamp, entry) for i, entry in enumerate(ids) if entry is not None
                             and i not in problems])
        return found

    def put(self, doc_id: str, sha256: str, mentions: pa.Table, relations: pa.Table, counts: DocumentCounts) -> None:
        """Store a document's rows (tables in the artifact schemas), replacing an entry of the same key."""
        blobs = _message(mentions), _message(relations)
        text = json.dumps({**asdict(counts), "unmapped_relations": sorted(counts.unmapped_relations)})
        old = self._entry((doc_id, sha256))
        if old is not None:
            self._delete([(old,)])
        entry = self.db.execute("INSERT INTO entries (fingerprint, doc_id, sha256, bytes, used) VALUES "
                                "(?, ?, ?, ?, ?)", (self.fingerprint, doc_id, sha256,
                                                    sum(map(len, blobs)) + len(text), self.stamp)).lastrowid
        # OR REPLACE: contents left behind by an entry removed from outside (ids are reused) give way
        self.db.execute("INSERT OR REPLACE INTO contents VALUES (?, ?, ?, ?)", (entry, *blobs, text))

    def _delete(self, ids: list[tuple[int | None]]) -> None:
        _delete(self.db, ids)

    def commit(self) -> None:
        self.db.commit()

    def evict(self, max_bytes: int) -> Pruned:
        """Drop the entries least recently used (of any fingerprint) until the file holds at most max_bytes;
        `Pruned.current`: how many of them this run used."""
        self.commit()
        return _evict(self.db, max_bytes, self.stamp)


def _evict(db: sqlite3.Connection, max_bytes: int, stamp: int | None = None) -> Pruned:
    total = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM entries").fetchone()[0]
    doomed: list[tuple[int | None]] = []
    freed = current = 0
    if total > max_bytes:
        oldest = db.execute("SELECT id, bytes, used FROM entries ORDER BY used, id")
        for rowid, size, used in oldest:
            if total - freed <= max_bytes:
                break
            doomed.append((rowid,))
            freed += size
            current += used == stamp
        oldest.close()
        _delete(db, doomed)
        db.execute("DELETE FROM fingerprints WHERE fingerprint NOT IN (SELECT DISTINCT fingerprint FROM entries)")
        db.execute("DELETE FROM contents WHERE entry NOT IN (SELECT id FROM entries)")  # left by hand-made deletes
        db.commit()
        db.execute("PRAGMA incremental_vacuum")
    return Pruned(len(doomed), freed, current)


def _delete(db: sqlite3.Connection, ids: list[tuple[int | None]]) -> None:
    """Remove these entries and their contents."""
    db.executemany("DELETE FROM contents WHERE entry = ?", ids)
    db.executemany("DELETE FROM entries WHERE id = ?", ids)


def _message(table: pa.Table) -> bytes:
    """A table's rows as one Arrow IPC record batch message (no schema: the reader knows it)."""
    import pyarrow as pa

    batches = table.combine_chunks().to_batches()
    batch = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
    return bytes(batch.serialize().to_pybytes())


def _batch(blob: Any, schema: TableSchema) -> pa.RecordBatch:
    import pyarrow as pa

    if not isinstance(blob, bytes):
        raise BrokenEntry(f"{schema.name}: not a blob")
    try:
        batch = pa.ipc.read_record_batch(pa.py_buffer(blob), schema.arrow)
        batch.validate(full=True)
    except Exception as exc:  # pyarrow raises several unrelated types for damaged data
        raise BrokenEntry(f"{schema.name}: not a record batch of the '{schema.name}' table ({exc})") from exc
    return batch


_COUNT_FIELDS = {f.name for f in fields(DocumentCounts)}
_numbers = operator.itemgetter(*sorted(_COUNT_FIELDS - {"doc_id", "unmapped_relations"}))


def decode(doc_id: str, mentions: Any, relations: Any, counts: Any) -> CachedDocument:
    """An entry's columns as a document's rows and counts; BrokenEntry when they are not what put() wrote (but
    for rows of another document: see _foreign, which checks many entries at once)."""
    try:
        raw = json.loads(counts)
    except (TypeError, ValueError) as exc:
        raise BrokenEntry(f"counts: not JSON ({exc})") from exc
    if not isinstance(raw, dict) or raw.keys() != _COUNT_FIELDS or raw["doc_id"] != doc_id \
            or not isinstance(raw["unmapped_relations"], list) or set(map(type, _numbers(raw))) - {int}:
        raise BrokenEntry("counts: not the counts of this document")
    document = DocumentCounts(**{**raw, "unmapped_relations": frozenset(raw["unmapped_relations"])})
    batches = _batch(mentions, MENTIONS), _batch(relations, RELATIONS)
    for batch, rows, name in zip(batches, (document.mentions, document.relations), ("mentions", "relations"),
                                 strict=True):
        if batch.num_rows != rows:
            raise BrokenEntry(f"{name}: {batch.num_rows} rows, the counts say {rows}")
    return CachedDocument(*batches, document)


def _foreign(entries: list[CachedDocument | None]) -> set[int]:
    """The positions of the entries holding a row whose doc_id is not their document's (a few vectorised
    comparisons for all entries, rather than some per entry)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    present = [(i, entry) for i, entry in enumerate(entries) if entry is not None]
    ids = pa.array([entry.counts.doc_id for _, entry in present], pa.string())
    foreign: set[int] = set()
    for name in ("mentions", "relations"):
        batches = [getattr(entry, name) for _, entry in present]
        lengths = np.fromiter((batch.num_rows for batch in batches), np.int64, len(batches))
        if not lengths.sum():
            continue
        column = pa.chunked_array([batch.column("doc_id") for batch in batches], pa.string())
        wrong = pc.invert(pc.equal(column, ids.take(np.repeat(np.arange(len(batches)), lengths))))
        if pc.any(wrong).as_py():
            rows = np.flatnonzero(wrong.to_numpy(zero_copy_only=False))
            foreign.update(present[k][0] for k in np.searchsorted(np.cumsum(lengths), rows, side="right"))
    return foreign


# --- kgpipe cache: list, prune, clear ----------------------------------------------------------------------


@contextlib.contextmanager
def _existing(path: Path, *, write: bool = False) -> Iterator[sqlite3.Connection | None]:
    """The cache file (read-only unless `write`), or None when there is none; a file that is not a cache of this
    format is a WorkspaceError."""
    if not path.exists():
        yield None
        return
    try:
        if write:
            db = _connect(path)
        else:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != FORMAT:
                db.close()
                raise sqlite3.DatabaseError(f"cache format {version}, this kgpipe reads format {FORMAT}")
    except sqlite3.DatabaseError as exc:
        raise WorkspaceError(f"{path}: not a readable extract cache ({exc})",
                             hint="remove it with `kgpipe cache clear` (the next run extracts every document)"
                             ) from None
    try:
        yield db
    finally:
        db.close()


@contextlib.contextmanager
def workspace_held(pipeline: Pipeline) -> Iterator[None]:
    """The pipeline's run lock held, so that no run reads or writes the cache meanwhile (`kgpipe cache prune`,
    `clear`); LockedError when a run holds it."""
    from kgpipe.runner import Workspace

    workspace = Workspace(pipeline)
    locks = workspace.acquire(0.0)
    try:
        yield
    finally:
        remove_path(workspace.dir / "run.owner")
        locks.release()


def usage(path: Path) -> list[FingerprintUsage]:
    """Entries and bytes per fingerprint, the most recently used first."""
    with _existing(path) as db:
        if db is None:
            return []
        rows = db.execute(
            "SELECT f.fingerprint, f.stage, COUNT(e.doc_id), COALESCE(SUM(e.bytes), 0), MAX(e.used) "
            "FROM fingerprints f LEFT JOIN entries e ON e.fingerprint = f.fingerprint "
            "GROUP BY f.fingerprint ORDER BY MAX(e.used) DESC, f.created DESC").fetchall()
    return [FingerprintUsage(fp, stage, n, size, used / 1e9 if used is not None else None)
            for fp, stage, n, size, used in rows]


def prune(path: Path, max_bytes: int) -> Pruned:
    """Drop the entries least recently used until the cache holds at most max_bytes."""
    with _existing(path, write=True) as db:
        return Pruned(0, 0) if db is None else _evict(db, max_bytes)


def clear(path: Path) -> Pruned:
    """Remove the cache file (readable or not); what it held."""
    try:
        held = usage(path)
    except WorkspaceError:
        held = []
    for leftover in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        remove_path(leftover)
    return Pruned(sum(u.entries for u in held), sum(u.bytes for u in held))
