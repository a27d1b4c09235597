"""Typed tables at stage boundaries: a declared pyarrow schema per table, written atomically to parquet
and checked when read back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgpipe.atomic import atomic_path
from kgpipe.errors import ArtifactError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


@dataclass(frozen=True)
class TableSchema:
    """A named table and its columns as (name, pyarrow type factory name, nullable)."""

    name: str
    columns: tuple[tuple[str, str, bool], ...]

    @cached_property  # built once: the extract cache and the row writers ask for it per document
    def arrow(self) -> pa.Schema:
        import pyarrow as pa

        types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
                 "list<string>": pa.list_(pa.string()), "list<float32>": pa.list_(pa.float32())}
        return pa.schema([pa.field(name, types[kind], nullable=nullable)
                          for name, kind, nullable in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [name for name, _, _ in self.columns]


DOCUMENTS = TableSchema("documents", (
    ("doc_id", "string", False),
    ("source", "string", False),        # the file the document came from, relative to the pipeline root
    ("source_line", "int64", True),     # jsonl line / csv line / parquet row (1-based); null for txt
    ("text", "string", False),          # Unicode NFC; later offsets index this string
    ("sha256", "string", False),
    ("n_chars", "int64", False),
))

SEED_ENTITIES = TableSchema("seed_entities", (
    ("iri", "string", False),
    ("label", "string", False),
    ("aliases", "list<string>", False),
    ("types", "list<string>", False),
    ("sources", "list<string>", False),
))

SEED_TRIPLES = TableSchema("seed_triples", (
    ("head", "string", False),
    ("relation", "string", False),
    ("tail", "string", False),
    ("source", "string", False),
))

SEED_ATTRIBUTES = TableSchema("seed_attributes", (
    ("entity", "string", False),
    ("property", "string", False),
    ("value", "string", False),
    ("datatype", "string", True),
    ("lang", "string", True),
    ("source", "string", False),
))

# --- extract -> fuse ---------------------------------------------------------------------------------

MENTIONS = TableSchema("mentions", (
    ("mention_id", "string", False),    # stable: derived from doc_id and character offsets
    ("doc_id", "string", False),
    ("sentence", "int64", False),       # sentence index within the document
    ("start_char", "int64", False),     # documents.text[start_char:end_char] == text
    ("end_char", "int64", False),
    ("text", "string", False),
    ("label", "string", False),         # the NER / ruler label (PERSON, ORG, ...)
    ("kg_type", "string", True),        # label_map[label], an IRI
    ("source", "string", False),        # "ner" or "gazetteer"
    ("seed_iri", "string", True),       # the seed entity a gazetteer match stands for
))

RELATIONS = TableSchema("relations", (
    ("relation_id", "string", False),
    ("subject_id", "string", False),    # a mention_id
    ("relation", "string", False),      # pattern relation name (works_for, born_in, ...)
    ("relation_iri", "string", True),   # relation_map[relation]
    ("object_id", "string", False),     # a mention_id
    ("doc_id", "string", False),
    ("sentence_start", "int64", False), # the sentence's character span in the document
    ("sentence_end", "int64", False),
    ("pattern_id", "string", False),
    ("confidence", "float64", False),
))

# --- fuse -> embed, inject, export ---------------------------------------------------------------------

ENTITIES = TableSchema("entities", (
    ("id", "string", False),            # the seed IRI, or minted from canonical label and type
    ("label", "string", False),
    ("type", "string", True),
    ("aliases", "list<string>", False),
    ("seed_iri", "string", True),
    ("mention_count", "int64", False),
    ("sources", "list<string>", False),
))

TRIPLES = TableSchema("triples", (
    ("head", "string", False),          # entity ids
    ("relation", "string", False),      # relation IRI
    ("tail", "string", False),
    ("count", "int64", False),
    ("sources", "list<string>", False),
    ("confidence", "float64", False),
))

# Which entity each mention was resolved to: the link from a text triple back to its sentence
# (triples -> relations -> mentions -> documents), used by kgpipe.provenance.
MENTION_ENTITIES = TableSchema("mention_entities", (
    ("mention_id", "string", False),    # mentions.mention_id
    ("entity_id", "string", False),     # entities.id
))

# --- embed -> inject, export: one row per entity (or relation), vectors as float32 lists ----------------

EMBEDDINGS = TableSchema("embeddings", (
    ("id", "string", False),            # entity id (as in entities.parquet) or relation IRI
    ("label", "string", False),
    ("vector", "list<float32>", False), # complex models: [real..., imaginary...], layout in the metadata
))

RELATION_EMBEDDINGS = TableSchema("relation_embeddings", (
    *EMBEDDINGS.columns,
    ("inverse", "bool", False),         # the reciprocal relation's row (models trained with inverse triples)
))

# --- vectors -> inject, export: embed's rows as they are, then a predicted row per entity embed has none ----

ENTITY_VECTORS = TableSchema("entity_vectors", (
    *EMBEDDINGS.columns,
    ("inductive", "bool", False),       # True: predicted from the entity's text; False: embed's row, unchanged
))


def to_arrow(rows: Iterable[Mapping[str, Any]] | pd.DataFrame, schema: TableSchema) -> pa.Table:
    import pandas as pd
    import pyarrow as pa

    try:
        if isinstance(rows, pd.DataFrame):
            return pa.Table.from_pandas(rows[schema.column_names], schema=schema.arrow, preserve_index=False)
        return pa.Table.from_pylist(list(rows), schema=schema.arrow)
    except (KeyError, pa.ArrowException, TypeError, ValueError) as exc:
        raise ArtifactError(f"rows do not fit the '{schema.name}' table schema: {exc}",
                            hint="a bug in the stage that produced them") from exc


def write_table(rows: Iterable[Mapping[str, Any]] | pd.DataFrame, path: Path, schema: TableSchema) -> int:
    """Write rows as parquet with the declared schema (atomically); return the row count."""
    import pyarrow.parquet as pq

    table = to_arrow(rows, schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table.num_rows


def read_table(path: Path, schema: TableSchema | None = None) -> pd.DataFrame:
    """Read a parquet artifact; with a schema, fail clearly if a declared column is missing."""
    import pyarrow.parquet as pq

    if not path.exists():
        raise ArtifactError(f"{path}: artifact does not exist", hint="run the stage that produces it")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise ArtifactError(f"{path}: not a readable parquet file ({exc})") from exc
    if schema is not None:
        missing = [c for c in schema.column_names if c not in table.column_names]
        if missing:
            raise ArtifactError(f"{path}: not a '{schema.name}' table, missing column(s) {', '.join(missing)}",
                                hint="re-run the stage that produces it (kgpipe run --force)")
    return table.to_pandas()
