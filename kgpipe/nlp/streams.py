"""The extract stage's tables as streams: documents.parquet read a few rows at a time, mention and relation
rows written a row group at a time, so that the stage's memory does not grow with the corpus or its outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kgpipe.artifacts import DOCUMENTS, TableSchema, to_arrow
from kgpipe.atomic import atomic_path
from kgpipe.errors import ArtifactError

READ_ROWS = 8             # documents decoded at once (each may be megabytes)
READ_KEYS = 65_536        # (doc_id, sha256) pairs decoded at once
READ_BUFFER = 1 << 20     # bytes read at a time within a column chunk, rather than the whole chunk
GROUP_ROWS = 20_000       # rows per parquet row group written


class DocumentReader:
    """(doc_id, text) of documents.parquet in file order; `rows` without reading the texts."""

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.path = path
        if not path.exists():
            raise ArtifactError(f"{path}: artifact does not exist", hint="run the stage that produces it")
        try:
            self._file = pq.ParquetFile(path, buffer_size=READ_BUFFER)
        except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
            raise ArtifactError(f"{path}: not a readable parquet file ({exc})",
                                hint="re-run the stage that produces it (kgpipe run --force)") from exc
        names = self._file.schema_arrow.names
        missing = [c for c in DOCUMENTS.column_names if c not in names]
        if missing:
            raise ArtifactError(f"{path}: not a '{DOCUMENTS.name}' table, missing column(s) {', '.join(missing)}",
                                hint="re-run the stage that produces it (kgpipe run --force)")
        self.rows = self._file.metadata.num_rows

    def _batches(self, columns: list[str], rows: int = READ_ROWS) -> Iterator[Any]:
        try:
            yield from self._file.iter_batches(batch_size=rows, columns=columns)
        except OSError as exc:  # a damaged page is found only when it is read
            raise ArtifactError(f"{self.path}: not a readable parquet file ({exc})",
                                hint="re-run the stage that produces it (kgpipe run --force)") from exc

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _, doc_id, text in self.select():
            yield doc_id, text

    def select(self, skip: bytes | bytearray | None = None, total: int | None = None) -> Iterator[tuple[int, str, str]]:
        """(row, doc_id, text) of the documents in file order, rows counted from 1; `skip`: a byte per row, the
        rows whose byte is not 0 are passed over without making their text a Python str; `total`: stop after this
        many rows are given (the rest of the file is not read)."""
        row = given = 0
        if total == 0:
            return
        for batch in self._batches(["doc_id", "text"]):
            ids, texts = batch.column(0), batch.column(1)
            for i in range(batch.num_rows):  # one document's Python str at a time
                row += 1
                if skip is not None and skip[row - 1]:
                    continue
                doc_id, text = ids[i].as_py(), texts[i].as_py()
                if not isinstance(doc_id, str) or not isinstance(text, str):
                    raise ArtifactError(f"{self.path}: row {row} has no doc_id or no text",
                                        hint="re-run ingest (kgpipe run --force)")
                yield row, doc_id, text
                given += 1
                if given == total:
                    return

    def keys(self) -> Iterator[tuple[str, str]]:
        """(doc_id, sha256 of the text) of the documents in file order, without reading the texts."""
        row = 0
        for batch in self._batches(["doc_id", "sha256"], READ_KEYS):
            for doc_id, sha in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                row += 1
                if not isinstance(doc_id, str) or not isinstance(sha, str):
                    raise ArtifactError(f"{self.path}: row {row} has no doc_id or no sha256",
                                        hint="re-run ingest (kgpipe run --force)")
                yield doc_id, sha

    def longest(self) -> int:
        """The longest text in characters (one pass over the text column, in pyarrow)."""
        import pyarrow.compute as pc

        longest = 0
        for batch in self._batches(["text"]):
            if batch.num_rows:
                longest = max(longest, pc.max(pc.utf8_length(batch.column(0))).as_py() or 0)
        return longest


def conform(table: Any, schema: TableSchema) -> Any:
    """A pyarrow table with the artifact's columns and types (Ray may hand over large_string)."""
    if table.schema != schema.arrow:
        table = table.select(schema.column_names).cast(schema.arrow)
    return table


class RowGroupWriter:
    """Rows appended to a parquet file (atomically written: it appears whole on a clean exit, not at all
    after an error) in row groups of exactly `group_rows` rows (the last one shorter), whatever pieces the
    rows arrive in: the file's bytes depend on its rows alone, not on how a stage batched its work."""

    def __init__(self, path: Path, schema: TableSchema, *, group_rows: int = GROUP_ROWS) -> None:
        self.path = path
        self.schema = schema
        self.group_rows = group_rows
        self.rows = 0
        self._pending: list[Any] = []   # pyarrow tables in the artifact schema
        self._held = 0
        self._stack = ExitStack()
        self._writer: Any = None

    def __enter__(self) -> Self:
        import pyarrow.parquet as pq

        tmp = self._stack.enter_context(atomic_path(self.path))
        self._writer = pq.ParquetWriter(tmp, self.schema.arrow)
        return self

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = list(rows)
        if rows:
            self.write(to_arrow(rows, self.schema))

    def write(self, table: Any) -> None:
        """Append a pyarrow table; it is cast to the artifact's schema (Ray may hand over large_string)."""
        if table.num_rows == 0:
            return
        table = conform(table, self.schema)
        self._pending.append(table)
        self._held += table.num_rows
        while self._held >= self.group_rows:
            self._flush(self.group_rows)

    def _flush(self, rows: int) -> None:
        import pyarrow as pa

        held = pa.concat_tables(self._pending)
        # one contiguous chunk per column: parquet pages are cut per chunk written, so chunking would show
        group, rest = held.slice(0, rows).combine_chunks(), held.slice(rows)
        self._writer.write_table(group, row_group_size=rows)
        self.rows += group.num_rows
        self._pending, self._held = ([rest] if rest.num_rows else []), rest.num_rows

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> bool | None:
        try:
            if error is None and self._held:
                self._flush(self._held)
        finally:
            self._writer.close()  # before atomic_path commits (or removes) the file
        return self._stack.__exit__(kind, error, trace)
