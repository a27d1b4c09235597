"""The extract stage's unit of work and its worker: ranges of documents formed by the driver, and a worker built
once per process (the driver itself on the local engine, each actor on Ray) that turns a range into typed tables.

The worker is built from plain, picklable arguments (a model name or folder, option dataclasses, file paths) and
loads spaCy, the gazetteer and the pattern library itself: a loaded `nlp` never crosses a process boundary.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
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
    """Consecutive documents of documents.parquet; `first_row` is the 1-based row of the first."""

    first_row: int
    doc_ids: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.doc_ids) - 1

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(doc_id, text) of each document."""
        return list(zip(self.doc_ids, self.texts, strict=True))

    def alone(self) -> list[DocumentRange]:
        """One range per document."""
        return [DocumentRange(self.first_row + i, (d,), (t,)) for i, (d, t) in enumerate(self.pairs)]

    def describe(self) -> str:
        return (f"documents.parquet rows {self.first_row}-{self.last_row}" if len(self.doc_ids) > 1 else
                f"document '{self.doc_ids[0]}' (documents.parquet row {self.first_row})" if self.doc_ids else
                "no documents")


def document_ranges(documents: Iterable[tuple[str, str]], max_docs: int | None = None) -> Iterator[DocumentRange]:
    """The documents cut into ranges of at most `max_docs` (default RANGE_DOCS) documents and RANGE_CHARS
    characters; always at least one, possibly empty, range, so that a worker reports its facts even for an
    empty corpus."""
    max_docs, max_chars = max_docs or RANGE_DOCS, RANGE_CHARS
    ids: list[str] = []
    texts: list[str] = []
    chars, first = 0, 1
    for row, (doc_id, text) in enumerate(documents, 1):
        if ids and (len(ids) >= max_docs or chars + len(text) > max_chars):
            yield DocumentRange(first, tuple(ids), tuple(texts))
            ids, texts, chars, first = [], [], 0, row
        ids.append(doc_id)
        texts.append(text)
        chars += len(text)
    if ids or first == 1:
        yield DocumentRange(first, tuple(ids), tuple(texts))


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


@dataclass
class RangeResult:
    """A range's rows as tables in the artifact schemas (document order) and its counts."""

    first_row: int
    mentions: pa.Table
    relations: pa.Table
    facts: WorkerFacts
    documents: int = 0
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
    failure: DocumentFailure | None = None

    @classmethod
    def merge(cls, results: list[RangeResult]) -> RangeResult:
        """One result for consecutive ranges (in order, at least one): rows concatenated, counts summed, the
        first failure kept."""
        import pyarrow as pa

        first = results[0]
        counts = {f.name: sum(getattr(r, f.name) for r in results) for f in fields(cls)
                  if f.type in ("int", int) and f.name != "first_row"}
        return cls(first.first_row, pa.concat_tables([r.mentions for r in results]),
                   pa.concat_tables([r.relations for r in results]), first.facts, **counts,
                   unmapped_relations=frozenset().union(*(r.unmapped_relations for r in results)),
                   failure=next((r.failure for r in results if r.failure is not None), None))


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

        mentions = [m for r in results for m in r.mentions]
        relations = [r for d in results for r in d.relations]
        gazetteer = sum(m["source"] != "ner" for m in mentions)
        return RangeResult(
            first_row, to_arrow(mentions, MENTIONS), to_arrow(relations, RELATIONS), self.facts,
            documents=len(results), sentences=sum(r.sentences for r in results),
            mentions_ner=len(mentions) - gazetteer, mentions_gazetteer=gazetteer,
            seed_linked=sum(m["seed_iri"] is not None for m in mentions),
            dropped_unmapped_labels=sum(r.dropped_mentions for r in results),
            dropped_long_mentions=sum(r.long_mentions for r in results),
            relation_pairs_scored=sum(r.pairs_scored for r in results),
            relation_pairs_dropped=sum(r.pairs_dropped for r in results),
            relation_pairs_skipped=sum(r.pairs_skipped for r in results),
            relation_unknown_labels=sum(r.unknown_labels for r in results),
            relations_model=sum(r["pattern_id"].startswith("model:") for r in relations),
            unmapped_relations=frozenset(r["relation"] for r in relations if r["relation_iri"] is None),
            failure=failure)
