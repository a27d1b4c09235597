"""The vectors stage's tables: its inputs read and checked (an InputError names the file and the row), and
entity_vectors.parquet written (embed's rows byte for byte first, then the predicted ones, flagged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kgpipe.artifacts import ENTITY_VECTORS, to_arrow
from kgpipe.atomic import atomic_path
from kgpipe.embed.inductive import EntityText
from kgpipe.errors import InputError


@dataclass
class VectorInputs:
    entities: list[tuple[str, str, list[str]]]       # (id, label, aliases) in entities.parquet order
    ids: list[str]                                   # embed's rows, in its order
    labels: list[str]
    vectors: np.ndarray                              # (rows, dim) float32, embed's values
    metadata: dict[bytes, bytes]                     # embed's schema metadata (layout, model)
    mentions: list[tuple[str, str, int, int]]        # (entity id, doc id, start, end)
    documents: dict[str, str] | None

    @property
    def embedded(self) -> dict[str, int]:
        return {entity: row for row, entity in enumerate(self.ids)}


def _table(path: Path, columns: Sequence[str], shown: str, what: str) -> Any:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise InputError("no such file", file=shown, hint=f"run the stage that writes {what}") from None
    except Exception as exc:  # pyarrow raises several unrelated types for unreadable files
        raise InputError(f"not a readable parquet file ({exc})", file=shown, hint=f"give {what}") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(f"not {what}: missing column(s) {', '.join(missing)}", file=shown,
                         hint=f"give {what}")
    return table


def read_inputs(entities: Path, embeddings: Path, mentions: Path | None, links: Path | None,
                documents: Path | None, *, shown: Callable[[Path], str] = str) -> VectorInputs:
    """Read and check the stage's inputs; text inputs are all given or all None."""
    table = _table(entities, ("id", "label"), shown(entities), "fuse's entities.parquet")
    ids = table.column("id").to_pylist()
    labels = table.column("label").to_pylist()
    aliases = table.column("aliases").to_pylist() if "aliases" in table.column_names else [[]] * len(ids)
    seen: set[str] = set()
    for row, (entity, label) in enumerate(zip(ids, labels, strict=True), start=1):
        if not entity or not isinstance(label, str):
            raise InputError("an entity without id or label", file=shown(entities), row=row,
                             hint="give fuse's entities.parquet")
        if entity in seen:
            raise InputError(f"entity '{entity}' appears twice", file=shown(entities), row=row)
        seen.add(entity)
    rows = [(e, label, [a for a in (al or []) if isinstance(a, str)]) for e, label, al in zip(ids, labels, aliases,
                                                                                             strict=True)]

    emb = _table(embeddings, ("id", "label", "vector"), shown(embeddings), "embed's entity_embeddings.parquet")
    if "inductive" in emb.column_names:
        raise InputError("this is a vectors table already (it has an 'inductive' column)", file=shown(embeddings),
                         hint="give embed's entity_embeddings.parquet, whose rows are all trained")
    emb_ids = emb.column("id").to_pylist()
    lists = emb.column("vector").to_pylist()
    widths = {len(v) for v in lists}
    if len(widths) > 1 or 0 in widths:
        bad = next(i for i, v in enumerate(lists) if len(v) != len(lists[0]) or not v)
        raise InputError(f"vectors of different lengths ({sorted(widths)[:4]})", file=shown(embeddings),
                         row=bad + 1, hint="give the embed stage's entity_embeddings.parquet unchanged")
    if len(set(emb_ids)) != len(emb_ids):
        raise InputError("an entity id appears twice", file=shown(embeddings))
    if not seen & set(emb_ids):
        raise InputError("no entity of the entities table has an embedding here", file=shown(embeddings),
                         hint=f"the embeddings must come from the graph of {shown(entities)} (embed on fuse's "
                              "triples)")
    vectors = np.asarray(lists, dtype=np.float32).reshape(len(emb_ids), -1)

    linked: list[tuple[str, str, int, int]] = []
    texts = None
    if mentions is not None and links is not None and documents is not None:
        docs = _table(documents, ("doc_id", "text"), shown(documents), "ingest's documents.parquet")
        texts = dict(zip(docs.column("doc_id").to_pylist(), docs.column("text").to_pylist(), strict=True))
        found = _table(mentions, ("mention_id", "doc_id", "start_char", "end_char"), shown(mentions),
                       "extract's mentions.parquet")
        spans = {}
        for row, (mention, doc, start, end) in enumerate(zip(*(found.column(c).to_pylist() for c in (
                "mention_id", "doc_id", "start_char", "end_char")), strict=True), start=1):
            if doc not in texts:
                raise InputError(f"mention '{mention}' is in document '{doc}', which {shown(documents)} lacks",
                                 file=shown(mentions), row=row, hint="give the documents the mentions came from")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(texts[doc])):
                raise InputError(f"mention '{mention}': span {start}-{end} is outside its document "
                                 f"({len(texts[doc])} characters)", file=shown(mentions), row=row,
                                 hint="give the documents the mentions came from")
            spans[mention] = (doc, start, end)
        pairs = _table(links, ("mention_id", "entity_id"), shown(links), "fuse's mention_entities.parquet")
        for row, (mention, entity) in enumerate(zip(pairs.column("mention_id").to_pylist(),
                                                    pairs.column("entity_id").to_pylist(), strict=True), start=1):
            if mention not in spans:
                raise InputError(f"mention '{mention}' is not in {shown(mentions)}", file=shown(links), row=row,
                                 hint="give mentions and mention_entities of the same run")
            if entity in seen:
                linked.append((entity, *spans[mention]))
    return VectorInputs(rows, emb_ids, emb.column("label").to_pylist(), vectors,
                        dict(emb.schema.metadata or {}), linked, texts)


def write_vectors(path: Path, inputs: VectorInputs, predicted_for: Sequence[EntityText],
                  predicted: np.ndarray | None, extra_metadata: dict[str, str]) -> int:
    """embed's rows unchanged, then one predicted row per entity in predicted_for; returns the row count."""
    import pandas as pd
    import pyarrow.parquet as pq

    label_of = {entity: label for entity, label, _ in inputs.entities}
    new = [t.entity_id for t in predicted_for]
    vectors = list(inputs.vectors) + (list(predicted) if predicted is not None else [])
    frame = pd.DataFrame({"id": inputs.ids + new, "label": inputs.labels + [label_of[e] for e in new],
                          "vector": vectors, "inductive": [False] * len(inputs.ids) + [True] * len(new)})
    metadata = {k: v for k, v in inputs.metadata.items() if not k.startswith(b"pandas")}
    metadata.update({k.encode(): v.encode() for k, v in extra_metadata.items()})
    table = to_arrow(frame, ENTITY_VECTORS).replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table.num_rows
