"""The extract stage's unit of work and its worker: ranges of documents formed by the driver, and a worker built
once per process (the driver itself on the local engine, each actor on Ray) that turns a range into typed tables.

The worker is built from plain, picklable arguments (a model name or folder, option dataclasses, file paths) and
loads spaCy, the gazetteer and the pattern library itself: a loaded `nlp` never crosses a process boundary.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kgpipe.nlp.extractor import DocumentResult, ExtractOptions, Extractor, GazetteerOptions, extract_documents

if TYPE_CHECKING:
    import pyarrow as pa

# A range holds at most this many documents and (but for a single longer document) characters: some seconds of
# spaCy per range, so that a pool (Ray actors, or the local engine's processes) balances its workers and a retry
# redoes little. With several workers a range is also at most a quarter of a worker's share of the corpus, so
# that a small corpus keeps every worker busy. Ranges may be cut anywhere: a document's rows do not depend on its
# range (see extract_documents), so the outputs do not depend on the engine or the number of workers.
RANGE_DOCS = 512
RANGE_CHARS = 200_000
RANGES_PER_WORKER = 4


def range_docs(documents: int, workers: int) -> int:
    """Documents per range for a corpus of `documents` over `workers` workers."""
    if workers <= 1:
        return RANGE_DOCS
    return max(1, min(RANGE_DOCS, -(-documents // (RANGES_PER_WORKER * workers))))

# KGPIPE_EXTRACT_FAULT="DOC_ID" makes every worker process that reaches document DOC_ID exit at once, as a segfault
# in a native library would; "DOC_ID@MARKER" only the first one (it creates the file MARKER, and exits only where
# MARKER does not exist yet). Read by the driver and handed to the workers, so it reaches every node. For tests.
FAULT_ENV = "KGPIPE_EXTRACT_FAULT"


@dataclass(frozen=True)
class DocumentRange:
    """Documents of documents.parquet in file order; `first_row` is the 1-based row of the first. They are
    consecutive rows unless `rows` lists each one's row (the documents an incremental run extracts)."""

    first_row: int
    doc_ids: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    rows: tuple[int, ...] = ()

    @property
    def last_row(self) -> int:
        return self.rows[-1] if self.rows else self.first_row + len(self.doc_ids) - 1

    def row(self, index: int) -> int:
        """The row of document number `index` of the range."""
        return self.rows[index] if self.rows else self.first_row + index

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(doc_id, text) of each document."""
        return list(zip(self.doc_ids, self.texts, strict=True))

    def alone(self) -> list[DocumentRange]:
        """One range per document."""
        return [DocumentRange(self.row(i), (d,), (t,)) for i, (d, t) in enumerate(self.pairs)]

    def describe(self) -> str:
        if len(self.doc_ids) > 1:
            rows = f"documents.parquet rows {self.first_row}-{self.last_row}"
            return f"{len(self.doc_ids)} documents of {rows}" if self.rows else rows
        return (f"document '{self.doc_ids[0]}' (documents.parquet row {self.first_row})" if self.doc_ids else
                "no documents")


def document_ranges(documents: Iterable[tuple[str, str]], max_docs: int | None = None) -> Iterator[DocumentRange]:
    """The documents (rows 1, 2, 3, ... of documents.parquet) cut into ranges of at most `max_docs` (default
    RANGE_DOCS) documents and RANGE_CHARS characters; always at least one, possibly empty, range, so that a worker
    reports its facts even for an empty corpus."""
    return numbered_ranges(((row, doc_id, text) for row, (doc_id, text) in enumerate(documents, 1)), max_docs)


def numbered_ranges(documents: Iterable[tuple[int, str, str]], max_docs: int | None = None
                    ) -> Iterator[DocumentRange]:
    """As document_ranges, for (row, doc_id, text) of documents in file order but not necessarily every one
    (those an incremental run extracts)."""
    max_docs, max_chars = max_docs or RANGE_DOCS, RANGE_CHARS
    ids: list[str] = []
    texts: list[str] = []
    rows: list[int] = []
    chars, yielded = 0, False
    for row, doc_id, text in documents:
        if ids and (len(ids) >= max_docs or chars + len(text) > max_chars):
            yield _range(ids, texts, rows)
            ids, texts, rows, chars, yielded = [], [], [], 0, True
        ids.append(doc_id)
        texts.append(text)
        rows.append(row)
        chars += len(text)
    if ids or not yielded:
        yield _range(ids, texts, rows)


def _range(ids: list[str], texts: list[str], rows: list[int]) -> DocumentRange:
    """A range of these documents; `rows` kept only where they are not consecutive."""
    if not rows:
        return DocumentRange(1)
    consecutive = rows[-1] - rows[0] == len(rows) - 1
    return DocumentRange(rows[0], tuple(ids), tuple(texts), () if consecutive else tuple(rows))


@dataclass(frozen=True)
class Fault:
    """Fault injection (FAULT_ENV): the worker process exits on `doc_id`, every time or (marker) once."""

    doc_id: str
    marker: str | None = None

    @classmethod
    def from_env(cls) -> Fault | None:
        value = os.environ.get(FAULT_ENV)
        if not value:
            return None
        doc_id, _, marker = value.partition("@")
        return cls(doc_id, marker or None)

    def strike(self, doc_ids: tuple[str, ...]) -> None:
        if self.doc_id not in doc_ids:
            return
        if self.marker is not None:
            try:
                Path(self.marker).touch(exist_ok=False)
            except FileExistsError:
                return
        os._exit(70)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker is built from; plain values only."""

    model: str                            # a spaCy package name or a model folder, as the driver resolved it
    options: ExtractOptions
    gazetteer: GazetteerOptions
    seed_entities: str | None = None      # seed_entities.parquet (None: no gazetteer)
    patterns: tuple[str, ...] = ()        # pattern files and folders
    relation_model: str | None = None     # a relation model folder (`kgpipe rel train`), loaded by each worker
    one_thread: bool = False              # a worker process owns one CPU; the local driver keeps its threads
    fault: Fault | None = None


@dataclass(frozen=True)
class DocumentFailure:
    """A document whose extraction raised: its row, id and the error."""

    row: int
    doc_id: str
    error: str


@dataclass(frozen=True)
class WorkerFacts:
    """What the stage's summary says about the pipeline a worker built (the same in every worker)."""

    model: str
    gazetteer_names: int
    patterns: int
    relation_model: str | None = None     # its pattern_id, "model:<folder name>"


# What DocumentCounts counts, beside the document's rows (the extract stage sums them).
COUNTS = ("sentences", "mentions_ner", "mentions_gazetteer", "seed_linked", "dropped_unmapped_labels",
          "dropped_long_mentions", "relation_pairs_scored", "relation_pairs_dropped", "relation_pairs_skipped",
          "relation_unknown_labels", "relations_model")


@dataclass(frozen=True)
class DocumentCounts:
    """One document's share of a RangeResult: how many of the range's mention and relation rows are its own
    (a document's rows follow one another, in document order) and its counts (COUNTS), which add up to the
    range's. What the extraction cache keeps beside a document's rows."""

    doc_id: str
    mentions: int = 0
    relations: int = 0
    sentences: int = 0
    mentions_ner: int = 0
    mentions_gazetteer: int = 0
    seed_linked: int = 0
    dropped_unmapped_labels: int = 0
    dropped_long_mentions: int = 0
    relation_pairs_scored: int = 0
    relation_pairs_dropped: int = 0
    relation_pairs_skipped: int = 0
    relation_unknown_labels: int = 0
    relations_model: int = 0
    unmapped_relations: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, result: DocumentResult) -> DocumentCounts:
        mentions, relations = result.mentions, result.relations
        gazetteer = sum(m["source"] != "ner" for m in mentions)
        return cls(result.doc_id, mentions=len(mentions), relations=len(relations), sentences=result.sentences,
                   mentions_ner=len(mentions) - gazetteer, mentions_gazetteer=gazetteer,
                   seed_linked=sum(m["seed_iri"] is not None for m in mentions),
                   dropped_unmapped_labels=result.dropped_mentions, dropped_long_mentions=result.long_mentions,
                   relation_pairs_scored=result.pairs_scored, relation_pairs_dropped=result.pairs_dropped,
                   relation_pairs_skipped=result.pairs_skipped, relation_unknown_labels=result.unknown_labels,
                   relations_model=sum(r["pattern_id"].startswith("model:") for r in relations),
                   unmapped_relations=frozenset(r["relation"] for r in relations if r["relation_iri"] is None))


@dataclass
class RangeResult:
    """A range's rows as tables in the artifact schemas (document order), each document's share of them and its
    counts (`per_document`, in document order), and the first document that failed, if one did."""

    first_row: int
    mentions: pa.Table
    relations: pa.Table
    facts: WorkerFacts
    failure: DocumentFailure | None = None
    per_document: tuple[DocumentCounts, ...] = ()

    @property
    def documents(self) -> int:
        return len(self.per_document)

    @classmethod
    def of_documents(cls, first_row: int, mentions: pa.Table, relations: pa.Table, facts: WorkerFacts,
                     documents: Sequence[DocumentCounts], failure: DocumentFailure | None = None) -> RangeResult:
        return cls(first_row, mentions, relations, facts, failure=failure, per_document=tuple(documents))

    @classmethod
    def merge(cls, results: list[RangeResult]) -> RangeResult:
        """One result for consecutive ranges (in order, at least one): rows and documents concatenated, the
        first failure kept."""
        import pyarrow as pa

        first = results[0]
        return cls(first.first_row, pa.concat_tables([r.mentions for r in results]),
                   pa.concat_tables([r.relations for r in results]), first.facts,
                   failure=next((r.failure for r in results if r.failure is not None), None),
                   per_document=tuple(d for r in results for d in r.per_document))


class ExtractWorker:
    """Built once per process; called with one DocumentRange at a time."""

    def __init__(self, spec: WorkerSpec) -> None:
        from kgpipe.artifacts import SEED_ENTITIES, read_table
        from kgpipe.nlp.extractor import build_extractor
        from kgpipe.nlp.models import load_model
        from kgpipe.nlp.patterns import load_patterns

        self.spec = spec
        nlp = load_model(spec.model)  # cached per process: on the local engine, the one earlier runs loaded
        if spec.one_thread and "torch" in sys.modules:  # a transformer pipeline brought torch in
            sys.modules["torch"].set_num_threads(1)
        seeds = read_table(Path(spec.seed_entities), SEED_ENTITIES).to_dict("records") \
            if spec.seed_entities is not None else None
        library = load_patterns([Path(p) for p in spec.patterns]) if spec.patterns else None
        relation_model = None
        if spec.relation_model is not None and spec.options.relation_policy != "patterns":
            from kgpipe.nlp.model_relations import load_model_relations

            # loaded here from its path, once per process; a loaded model never crosses a process boundary
            relation_model = load_model_relations(spec.relation_model, threshold=spec.options.relation_threshold,
                                                  max_pairs=spec.options.max_pairs_per_sentence)
        self.extractor, facts = build_extractor(nlp, options=spec.options, seed_entities=seeds,
                                                gazetteer=spec.gazetteer, patterns=library, model=relation_model)
        self.facts = WorkerFacts(model=nlp.meta.get("name", "?"), gazetteer_names=facts.get("gazetteer_names", 0),
                                 patterns=len(library) if library is not None else 0,
                                 relation_model=relation_model.pattern_id if relation_model is not None else None)
        self._alone: Extractor | None = None

    def __call__(self, batch: DocumentRange) -> RangeResult:
        if self.spec.fault is not None:
            self.spec.fault.strike(batch.doc_ids)
        try:
            results = extract_documents(self.extractor, batch.pairs)
        except Exception:
            failure = self._failing_document(batch)
            if failure is None:  # no document fails alone: not one document's fault, so the error stands
                raise
            return self._result(batch.first_row, [], failure)
        return self._result(batch.first_row, results)

    def _failing_document(self, documents: DocumentRange) -> DocumentFailure | None:
        """The first document whose extraction raises when it is extracted alone (in this process)."""
        if self._alone is None:
            e = self.extractor
            self._alone = Extractor(e.nlp, dataclasses.replace(e.options, n_process=1), e.library, e.gazetteer,
                                    e.model)
        for one in documents.alone():
            try:
                extract_documents(self._alone, one.pairs)
            except Exception as exc:
                return DocumentFailure(one.first_row, one.doc_ids[0], f"{type(exc).__name__}: {exc}")
        return None

    def _result(self, first_row: int, results: list[DocumentResult],
                failure: DocumentFailure | None = None) -> RangeResult:
        from kgpipe.artifacts import MENTIONS, RELATIONS, to_arrow

        mentions = to_arrow([m for r in results for m in r.mentions], MENTIONS)
        relations = to_arrow([r for d in results for r in d.relations], RELATIONS)
        return RangeResult.of_documents(first_row, mentions, relations, self.facts,
                                        [DocumentCounts.of(r) for r in results], failure)
