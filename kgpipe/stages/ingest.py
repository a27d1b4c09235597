"""The ingest stage: a corpus and seed KGs in; documents, seed entities, triples, attributes and a report out.

Bad corpus records are skipped and listed in ingest_report.json (or fail the stage with strict: true);
seed KG syntax errors always fail, naming file and line, since a half-read KG would mislead every later stage.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from kgpipe.atomic import atomic_write_text
from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType


class IngestParams(StageParams):
    format: Literal["auto", "txt", "jsonl", "csv", "parquet"] = Field(
        "auto", description="corpus reader; auto picks one per file by suffix")
    id_field: str | None = Field("id", description="jsonl/csv/parquet field with the document id; "
                                                   "null numbers documents by file and line/row")
    text_field: str = Field("text", description="jsonl/csv/parquet field with the document text")
    csv_delimiter: str = Field(",", min_length=1, max_length=1)
    strict: bool = Field(False, description="fail on the first unreadable corpus record instead of skipping it")
    seed_format: Literal["auto", "turtle", "nt", "n3", "xml", "json-ld", "tsv"] = "auto"
    label_properties: list[str] | None = Field(None, description="RDF label properties, most preferred first")
    alias_properties: list[str] | None = None
    languages: list[str] = Field(["en"], description="language tags accepted for labels (untagged always are)")
    tsv_namespace: str = Field("http://kgpipe.org/seed/", description="namespace for TSV names that are not IRIs")


class IngestStage(StageType):
    name = "ingest"
    version = 1
    description = "read a corpus (txt/md, jsonl, csv, parquet) and seed KGs (RDF, TSV) into typed tables"
    Params = IngestParams
    inputs = (
        InputSpec("corpus", required=False, doc="a folder of documents, or one .jsonl/.csv/.parquet/.txt file"),
        InputSpec("seeds", required=False, many=True, doc="seed KG files (Turtle, N-Triples, RDF/XML, JSON-LD, TSV)"),
    )
    outputs = (
        OutputSpec("documents", "documents.parquet"),
        OutputSpec("seed_entities", "seed_entities.parquet"),
        OutputSpec("seed_triples", "seed_triples.parquet"),
        OutputSpec("seed_attributes", "seed_attributes.parquet"),
        OutputSpec("report", "ingest_report.json"),
    )

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from kgpipe.artifacts import DOCUMENTS, SEED_ATTRIBUTES, SEED_ENTITIES, SEED_TRIPLES, write_table
        from kgpipe.errors import InputError
        from kgpipe.kg.seed import SeedOptions, merge_seeds, read_seed

        p: IngestParams = ctx.params
        corpus = ctx.input("corpus")
        if corpus is None and not ctx.input("seeds"):
            raise InputError("nothing to ingest: neither a corpus nor seed KGs",
                             hint="give the ingest stage a `corpus` dep, `seeds`, or both")
        documents, files, skipped, duplicates = ([], [], [], []) if corpus is None else _read_documents(ctx, p)

        seed_options = SeedOptions(
            label_properties=tuple(p.label_properties or SeedOptions.label_properties),
            alias_properties=tuple(p.alias_properties or SeedOptions.alias_properties),
            languages=tuple(lang.lower() for lang in p.languages), tsv_namespace=p.tsv_namespace)
        seeds = [read_seed(path, ctx.relpath(path), p.seed_format, seed_options)
                 for path in ctx.track(ctx.input("seeds"), description="read seed KGs")]
        entities, triples, attributes = merge_seeds(seeds)

        write_table(documents, ctx.output("documents"), DOCUMENTS)
        write_table(entities, ctx.output("seed_entities"), SEED_ENTITIES)
        write_table(triples, ctx.output("seed_triples"), SEED_TRIPLES)
        write_table(attributes, ctx.output("seed_attributes"), SEED_ATTRIBUTES)
        summary = {"documents": len(documents), "duplicates": len(duplicates), "skipped": len(skipped),
                   "seed_entities": len(entities), "seed_triples": len(triples),
                   "seed_attributes": len(attributes)}
        report = {
            "corpus": {"path": ctx.relpath(corpus) if corpus is not None else None, "files": len(files),
                       "characters": sum(d["n_chars"] for d in documents), **summary},
            "skipped": skipped,
            "duplicates": duplicates,
            "seeds": [seed.stats() for seed in seeds],
        }
        atomic_write_text(ctx.output("report"), json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        if skipped:
            ctx.log.warning("skipped %d unreadable corpus record(s); see %s", len(skipped),
                            ctx.relpath(ctx.destination("report")))
        return summary


def _read_documents(ctx: StageContext, p: IngestParams) -> tuple[list[dict], list, list[dict], list[dict]]:
    """Documents of the corpus (deduplicated by content), its files, skipped records and duplicates."""
    from kgpipe.corpus import CorpusOptions, Document, corpus_files, read_corpus
    from kgpipe.errors import InputError

    corpus = ctx.input("corpus")
    options = CorpusOptions(id_field=p.id_field, text_field=p.text_field, csv_delimiter=p.csv_delimiter)
    files = corpus_files(corpus) if corpus.exists() else []
    documents: list[dict[str, Any]] = []
    by_sha: dict[str, str] = {}
    by_id: dict[str, str] = {}
    skipped: list[dict[str, Any]] = []
    duplicates: list[dict[str, str]] = []
    for record in read_corpus(corpus, p.format, options, files=ctx.track(files, description="read corpus")):
        source = ctx.relpath(record.source)
        if not isinstance(record, Document):
            if p.strict:
                raise InputError(record.reason, file=source, line=record.line,
                                 hint="fix the record, or set strict: false to skip bad records")
            skipped.append({"source": source, "line": record.line, "reason": record.reason})
            continue
        sha = record.sha256
        if sha in by_sha:
            duplicates.append({"doc_id": record.doc_id, "source": source, "duplicate_of": by_sha[sha]})
            continue
        if record.doc_id in by_id:
            reason = f"duplicate doc_id '{record.doc_id}' with different text (first in {by_id[record.doc_id]})"
            if p.strict:
                raise InputError(reason, file=source, line=record.source_line, hint="give documents unique ids")
            skipped.append({"source": source, "line": record.source_line, "reason": reason})
            continue
        by_sha[sha] = record.doc_id
        by_id[record.doc_id] = source
        documents.append({"doc_id": record.doc_id, "source": source, "source_line": record.source_line,
                          "text": record.text, "sha256": sha, "n_chars": len(record.text)})
    if not documents:
        first = f" First problem: {skipped[0]['source']}: {skipped[0]['reason']}." if skipped else ""
        raise InputError(f"no readable documents in the corpus ({len(files)} file(s), "
                         f"{len(skipped)} skipped).{first}", file=ctx.relpath(corpus),
                         hint="check the corpus path, format, id_field and text_field params")
    return documents, files, skipped, duplicates
