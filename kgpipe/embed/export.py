"""Embeddings out of a trained model: one real vector per entity and per relation, as parquet tables (id,
label, vector) and as one safetensors file with the id maps and the vector layout in its metadata.

Complex-valued representations (ComplEx, RotatE) become real vectors [real parts, imaginary parts].
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgpipe.artifacts import EMBEDDINGS as ENTITY_EMBEDDINGS
from kgpipe.artifacts import RELATION_EMBEDDINGS, to_arrow
from kgpipe.atomic import atomic_path
from kgpipe.errors import ArtifactError

FORMAT = "kgpipe-embeddings"


@dataclass(frozen=True)
class Matrix:
    """One representation as a real float32 matrix and how its columns are laid out."""

    values: Any      # numpy array (rows, columns)
    layout: dict[str, Any]


def representation_matrix(representation: Any) -> Matrix:
    """All rows of a PyKEEN representation as a real matrix; complex values become [real, imaginary]."""
    import torch

    with torch.no_grad():
        tensor = representation(indices=None).detach().cpu()
    rows = tensor.shape[0]
    shape = list(tensor.shape[1:])
    if tensor.is_complex():
        flat = tensor.reshape(rows, -1)
        width = flat.shape[1]
        values = torch.cat([flat.real, flat.imag], dim=1)
        layout = {"kind": "complex", "shape": shape, "dim": 2 * width,
                  "real": [0, width], "imaginary": [width, 2 * width],
                  "description": f"columns 0..{width - 1} are the real parts and {width}..{2 * width - 1} the "
                                 "imaginary parts of the complex vector"}
    else:
        values = tensor.reshape(rows, -1)
        layout = {"kind": "real", "shape": shape, "dim": int(values.shape[1])}
    return Matrix(values=values.to(torch.float32).numpy(), layout=layout)


def complex_from_real(values: Any, layout: dict[str, Any]) -> Any:
    """Undo the [real, imaginary] layout: a complex numpy array with the representation's own shape."""
    if layout["kind"] != "complex":
        return values
    lo, hi = layout["real"], layout["imaginary"]
    joined = values[:, lo[0]:lo[1]] + 1j * values[:, hi[0]:hi[1]]
    return joined.reshape(values.shape[0], *layout["shape"])


def export_embeddings(model: Any, *, entity_ids: Sequence[str], entity_labels: Sequence[str],
                      relation_ids: Sequence[str], relation_labels: Sequence[str], inverse_triples: bool,
                      entity_table: Path, relation_table: Path, tensors: Path,
                      metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Write the first entity and relation representation of model; return the layouts and counts.

    Relation rows are the relations in id order, then (for models trained with inverse triples) their
    reciprocal relations in the same order, flagged inverse.
    """
    from kgpipe.tensorfile import write_numpy

    entities = representation_matrix(model.entity_representations[0])
    relations = representation_matrix(model.relation_representations[0])
    if entities.values.shape[0] != len(entity_ids):
        raise ArtifactError(f"the model has {entities.values.shape[0]} entity rows but the id map "
                            f"{len(entity_ids)} entities", hint="a bug in the embed stage")
    rows = _relation_rows(relation_ids, relation_labels, inverse_triples, relations.values.shape[0])
    relation_values = relations.values[[row["model_row"] for row in rows]]
    extra_representations = {"entity": len(model.entity_representations) - 1,
                             "relation": len(model.relation_representations) - 1}
    shared = {"format": FORMAT, "other_representations": json.dumps(extra_representations), **(metadata or {})}

    _write_embedding_table(
        {"id": list(entity_ids), "label": list(entity_labels), "vector": list(entities.values)},
        entity_table, ENTITY_EMBEDDINGS, {**shared, "layout": json.dumps(entities.layout)})
    _write_embedding_table(
        {"id": [r["id"] for r in rows], "label": [r["label"] for r in rows], "vector": list(relation_values),
         "inverse": [r["inverse"] for r in rows]},
        relation_table, RELATION_EMBEDDINGS, {**shared, "layout": json.dumps(relations.layout)})
    header = {
        **shared,
        # "ids"/"labels" name the rows of entity_embeddings (kgpipe.export.embeddings reads these keys)
        "ids": json.dumps(list(entity_ids), ensure_ascii=False),
        "labels": json.dumps(list(entity_labels), ensure_ascii=False),
        "entity_layout": json.dumps(entities.layout),
        "relation_ids": json.dumps([r["id"] for r in rows], ensure_ascii=False),
        "relation_labels": json.dumps([r["label"] for r in rows], ensure_ascii=False),
        "relation_inverse": json.dumps([r["inverse"] for r in rows]),
        "relation_layout": json.dumps(relations.layout),
    }
    # canonical bytes: safetensors alone writes its metadata in an order that changes run to run
    write_numpy(tensors, {"entity_embeddings": entities.values, "relation_embeddings": relation_values}, header)
    return {"entity_layout": entities.layout, "relation_layout": relations.layout,
            "entities": len(entity_ids), "relation_rows": len(rows),
            "other_representations": extra_representations}


def _write_embedding_table(columns: dict[str, list[Any]], path: Path, schema: Any,
                           metadata: dict[str, str]) -> None:
    """A typed parquet table whose schema metadata carries the vector layout."""
    import pandas as pd
    import pyarrow.parquet as pq

    table = to_arrow(pd.DataFrame(columns), schema)
    table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _relation_rows(ids: Sequence[str], labels: Sequence[str], inverse_triples: bool,
                   rows: int) -> list[dict[str, Any]]:
    """The exported relation rows and the model row each comes from: with inverse triples, PyKEEN keeps
    relation i in row 2i and its reciprocal in row 2i + 1."""
    forward = [{"id": ids[i], "label": labels[i], "inverse": False, "model_row": 2 * i if inverse_triples else i}
               for i in range(len(ids))]
    inverse = [{"id": ids[i], "label": f"inverse of {labels[i]}", "inverse": True, "model_row": 2 * i + 1}
               for i in range(len(ids))] if inverse_triples else []
    if len(forward) + len(inverse) != rows:
        raise ArtifactError(f"the model has {rows} relation rows, the id map says {len(forward) + len(inverse)}",
                            hint="a bug in the embed stage")
    return forward + inverse


def read_embeddings(path: str | Path, *, kind: str = "entity") -> tuple[Any, list[str], list[str], dict[str, Any]]:
    """A safetensors file written by the embed stage: (matrix, ids, labels, layout) for entities or relations.

    >>> vectors, ids, labels, layout = read_embeddings("artifacts/embed/embeddings.safetensors")  # doctest: +SKIP
    """
    from safetensors import safe_open

    if kind not in ("entity", "relation"):
        raise ValueError("kind is 'entity' or 'relation'")
    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            header = handle.metadata() or {}
            matrix = handle.get_tensor(f"{kind}_embeddings")
    except (OSError, ValueError, KeyError) as exc:  # safetensors reports a bad header as several kinds
        raise ArtifactError(f"{path}: not an embeddings file written by the embed stage ({exc})") from None
    if header.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not an embeddings file written by the embed stage")
    prefix = "" if kind == "entity" else "relation_"
    return (matrix, json.loads(header[f"{prefix}ids"]), json.loads(header[f"{prefix}labels"]),
            json.loads(header[f"{kind}_layout"]))
