"""The ingest stage: a corpus and seed KGs in; documents, seed entities, triples, attributes and a report out.

Bad corpus records and seed triples with a bad term are skipped and listed in ingest_report.json (or fail
the stage with strict: true); a seed KG that cannot be trusted as a whole (syntax, a reference to anything
outside the file) always fails, naming file and line, since a half-read KG would mislead every later stage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field

from kgpipe.atomic import atomic_write_text
from kgpipe.corpus import printable
from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType, ValidationContext


class IngestParams(StageParams):
    format: Literal["auto", "txt", "jsonl", "csv", "parquet"] = Field(
        "auto", description="corpus reader; auto picks one per file by suffix")
    id_field: str | None = Field("id", description="jsonl/csv/parquet field with the document id; "
                                                   "null numbers documents by file and line/row")
    text_field: str = Field("text", description="jsonl/csv/parquet field with the document text")
    csv_delimiter: str = Field(",", min_length=1, max_length=1)
    strict: bool = Field(False, description="fail on the first unreadable corpus record or file, or seed triple "
                                            "with a bad term, instead of skipping it")
    seed_format: Literal["auto", "turtle", "nt", "n3", "xml", "json-ld", "tsv"] = "auto"
    label_properties: list[str] | None = Field(None, description="RDF label properties, most preferred first")
    alias_properties: list[str] | None = None
    languages: list[str] = Field(["en"], description="language tags accepted for labels (untagged always are)")
    tsv_namespace: str = Field("http://kgpipe.org/seed/", description="namespace for TSV names that are not IRIs")
    seed_base: str | None = Field(None, description="base IRI for relative IRIs in seed files; default "
                                                    "http://kgpipe.invalid/seed/<the seed's path under the root>")


class IngestStage(StageType):
    name = "ingest"
    version = 2
    description = "read a corpus (txt/md, jsonl, csv, parquet) and seed KGs (RDF, TSV) into typed tables"
    Params = IngestParams
    inputs = (
        InputSpec("corpus", required=False, doc="a folder of documents, or one .jsonl/.csv/.parquet/.txt file"),
        InputSpec("seeds", required=False, many=True, doc="seed KG files (Turtle, N-Triples, RDF/XML, JSON-LD, TSV)"),
    )
    outputs = (
        OutputSpec("documents", "documents.parquet", role="documents"),
        OutputSpec("seed_entities", "seed_entities.parquet", role="seed_entities"),
        OutputSpec("seed_triples", "seed_triples.parquet", role="seed_triples"),
        OutputSpec("seed_attributes", "seed_attributes.parquet"),
        OutputSpec("report", "ingest_report.json"),
    )

    def validate(self, ctx: ValidationContext) -> None:
        from kgpipe.kg.iri import iri_problem

        for param in ("tsv_namespace", "seed_base"):
            value = getattr(ctx.params, param)
            if value is not None and (problem := iri_problem(value)):
                raise ctx.error(problem, param=param, hint="give an absolute IRI, e.g. http://example.org/kg/")

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from kgpipe.artifacts import DOCUMENTS, SEED_ATTRIBUTES, SEED_ENTITIES, SEED_TRIPLES, write_table
        from kgpipe.errors import InputError
        from kgpipe.kg.seed import SeedOptions, merge_seeds, read_seed

        p: IngestParams = ctx.params
        corpus = ctx.input("corpus")
        if corpus is None and not ctx.input("seeds"):
            raise InputError("nothing to ingest: neither a corpus nor seed KGs",
                             hint="give the ingest stage a `corpus` dep, `seeds`, or both")
        read = _Corpus() if corpus is None else _read_documents(ctx, p)

        seed_options = SeedOptions(
            label_properties=tuple(p.label_properties or SeedOptions.label_properties),
            alias_properties=tuple(p.alias_properties or SeedOptions.alias_properties),
            languages=tuple(lang.lower() for lang in p.languages), tsv_namespace=p.tsv_namespace,
            base=p.seed_base, strict=p.strict)
        seeds = [read_seed(path, _source(ctx, path), p.seed_format, seed_options)
                 for path in ctx.track(ctx.input("seeds") or [], description="read seed KGs")]
        entities, triples, attributes = merge_seeds(seeds)
        seed_skipped = [{"source": s.source, "line": s.line, "reason": s.reason} for g in seeds for s in g.skipped]
        documents, skipped = read.documents, read.skipped

        write_table(documents, ctx.output("documents"), DOCUMENTS)
        write_table(entities, ctx.output("seed_entities"), SEED_ENTITIES)
        write_table(triples, ctx.output("seed_triples"), SEED_TRIPLES)
        write_table(attributes, ctx.output("seed_attributes"), SEED_ATTRIBUTES)
        summary = {"documents": len(documents), "duplicates": len(read.duplicates), "skipped": len(skipped),
                   "seed_entities": len(entities), "seed_triples": len(triples),
                   "seed_attributes": len(attributes), "seed_triples_skipped": len(seed_skipped)}
        report = {
            "corpus": {"path": printable(ctx.relpath(corpus)) if corpus is not None else None,
                       "files": read.files, "hidden_files": read.hidden_files,
                       "hidden_folders": read.hidden_folders,
                       "characters": sum(d["n_chars"] for d in documents), **summary},
            "skipped": skipped,
            "duplicates": read.duplicates,
            "seeds": [seed.stats() for seed in seeds],
            "seed_skipped": seed_skipped,
        }
        atomic_write_text(ctx.output("report"), json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        where = ctx.relpath(ctx.destination("report"))
        if skipped:
            ctx.log.warning("skipped %d unreadable corpus file(s) or record(s); see %s", len(skipped), where)
        if seed_skipped:
            ctx.log.warning("skipped %d seed triple(s) with a bad term; see %s", len(seed_skipped), where)
        return summary


def _source(ctx: StageContext, path: Path) -> str:
    """A path as the user wrote it, relative to the root where possible: the folder resolved, the last name
    kept, since a symlink's target may lie anywhere and a report must name the link, not where it leads."""
    return printable(PurePosixPath(ctx.relpath(path.parent), path.name).as_posix())


@dataclass
class _Corpus:
    """What reading the corpus gave: documents, how many files, what was skipped, duplicates, hidden entries."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    hidden_files: int = 0
    hidden_folders: int = 0


def _read_documents(ctx: StageContext, p: IngestParams) -> _Corpus:
    """Documents of the corpus (deduplicated by content) and what was skipped, in the order of the files."""
    from kgpipe.corpus import CorpusListing, CorpusOptions, Document, document_row, list_corpus, read_corpus
    from kgpipe.errors import InputError

    corpus = ctx.input("corpus")
    options = CorpusOptions(id_field=p.id_field, text_field=p.text_field, csv_delimiter=p.csv_delimiter)
    listing = list_corpus(corpus) if corpus.exists() else CorpusListing([], [])
    result = _Corpus(files=len(listing.files), hidden_files=listing.hidden_files,
                     hidden_folders=listing.hidden_folders)
    by_sha: dict[str, str] = {}
    by_id: dict[str, str] = {}

    def skip(source: str, line: int | None, reason: str, hint: str) -> None:
        if p.strict:
            raise InputError(reason, file=source, line=line, hint=hint)
        result.skipped.append({"source": source, "line": line, "reason": reason})

    for left_out in listing.skipped:
        skip(_source(ctx, left_out.source), None, left_out.reason,
             "fix or remove it, or set strict: false to skip what cannot be read")
    records = read_corpus(corpus, p.format, options, files=ctx.track(listing.files, description="read corpus"))
    for record in records:
        source = _source(ctx, record.source)
        if not isinstance(record, Document):
            skip(source, record.line, record.reason, "fix the record, or set strict: false to skip bad records")
            continue
        row = document_row(record.doc_id, record.text, source, record.source_line)
        sha = row["sha256"]
        if sha in by_sha:
            result.duplicates.append({"doc_id": record.doc_id, "source": source, "duplicate_of": by_sha[sha]})
            continue
        if record.doc_id in by_id:
            skip(source, record.source_line,
                 f"duplicate doc_id '{record.doc_id}' with different text (first in {by_id[record.doc_id]})",
                 "give documents unique ids")
            continue
        by_sha[sha] = record.doc_id
        by_id[record.doc_id] = source
        result.documents.append(row)
    if not result.documents:
        first = (f" First problem: {result.skipped[0]['source']}: {result.skipped[0]['reason']}."
                 if result.skipped else "")
        raise InputError(f"no readable documents in the corpus ({result.files} file(s), "
                         f"{len(result.skipped)} skipped).{first}", file=printable(ctx.relpath(corpus)),
                         hint="check the corpus path, format, id_field and text_field params")
    return result
