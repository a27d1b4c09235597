"""Embedding exporters by format name: each writes the files its users' tools read, into one folder.

npy (+ JSON id map), safetensors (ids and labels in the metadata), parquet, word2vec text (gensim),
TensorBoard Projector TSV, a torch nn.Embedding state dict with its vocabulary, int8 with per-row scales.
Text goes through kgpipe.export.safe_text (lone surrogates replaced; word2vec keys percent-encoded), and every
file is the same bytes for the same embeddings (safetensors headers are written with sorted keys).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kgpipe.atomic import atomic_path, atomic_write_text
from kgpipe.errors import KgpipeError
from kgpipe.export.embeddings import Embeddings
from kgpipe.export.safe_text import utf8_safe, word2vec_key

Exporter = Callable[[Embeddings, Path], list[Path]]
EMBEDDING_FORMATS: dict[str, Exporter] = {}


def exporter(name: str) -> Callable[[Exporter], Exporter]:
    def register(func: Exporter) -> Exporter:
        EMBEDDING_FORMATS[name] = func
        return func
    return register


def _safe(values: Sequence[str | None] | None) -> list[str | None] | None:
    return None if values is None else [v if v is None else utf8_safe(v) for v in values]


def _safe_metadata(emb: Embeddings) -> dict[str, str]:
    """The metadata as strings (JSON for anything else), keys sorted, as every format stores it."""
    return {utf8_safe(k): utf8_safe(v if isinstance(v, str) else json.dumps(v, sort_keys=True))
            for k, v in sorted(emb.metadata.items())}


def _id_map(emb: Embeddings) -> dict:
    mapping: dict[str, object] = {"ids": _safe(emb.ids), "labels": _safe(emb.labels), "types": _safe(emb.types),
                                  "dim": emb.dim,
                                  "metadata": {utf8_safe(k): v for k, v in sorted(emb.metadata.items())}}
    if emb.inductive is not None:  # only the vectors stage's tables have the flag; embed's files stay as they were
        mapping["inductive"] = list(emb.inductive)
    return mapping


def _json(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=False)


@exporter("npy")
def to_npy(emb: Embeddings, folder: Path) -> list[Path]:
    vectors, ids = folder / "vectors.npy", folder / "ids.json"
    with atomic_path(vectors) as tmp, open(tmp, "wb") as handle:
        np.save(handle, emb.vectors)
    atomic_write_text(ids, _json(_id_map(emb)))
    return [vectors, ids]


def _safetensors_metadata(emb: Embeddings) -> dict[str, str]:
    meta = {"ids": _json(_safe(emb.ids)), "labels": _json(_safe(emb.labels))}
    if emb.inductive is not None:
        meta["inductive"] = _json(list(emb.inductive))
    meta.update(_safe_metadata(emb))
    return meta


@exporter("safetensors")
def to_safetensors(emb: Embeddings, folder: Path) -> list[Path]:
    from kgpipe.tensorfile import write_numpy

    path = folder / "embeddings.safetensors"
    write_numpy(path, {"entity_embeddings": emb.vectors}, _safetensors_metadata(emb))
    return [path]


@exporter("parquet")
def to_parquet(emb: Embeddings, folder: Path) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder / "embeddings.parquet"
    columns = {"id": _safe(emb.ids), "label": _safe(emb.labels),
               "vector": pa.FixedSizeListArray.from_arrays(pa.array(emb.vectors.ravel()), emb.dim)}
    if emb.types is not None:
        columns["type"] = _safe(emb.types)
    if emb.inductive is not None:
        columns["inductive"] = pa.array(emb.inductive, type=pa.bool_())
    table = pa.table(columns).replace_schema_metadata(_safe_metadata(emb))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return [path]


@exporter("word2vec")
def to_word2vec(emb: Embeddings, folder: Path) -> list[Path]:
    """word2vec text format; keys are the entity ids, with '%', whitespace and control characters (which the
    format cannot hold) percent-encoded: urllib.parse.unquote(key) gives the id back."""
    path = folder / "embeddings.w2v.txt"
    lines = [f"{len(emb)} {emb.dim}"]
    lines += [f"{word2vec_key(entity)} " + " ".join(f"{x:.9g}" for x in row)
              for entity, row in zip(emb.ids, emb.vectors, strict=True)]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return [path]


def _tsv_cell(value: object) -> str:
    return utf8_safe(" ".join(str("" if value is None else value).split()))  # no tabs or newlines in a cell


@exporter("projector")
def to_projector(emb: Embeddings, folder: Path) -> list[Path]:
    """TensorBoard Embedding Projector: vectors.tsv (no header) and metadata.tsv (label, type, id, and
    inductive where the vectors stage flagged rows, so the projector can colour predicted vectors)."""
    vectors, metadata = folder / "vectors.tsv", folder / "metadata.tsv"
    atomic_write_text(vectors, "\n".join("\t".join(f"{x:.9g}" for x in row) for row in emb.vectors) + "\n")
    types = emb.types or [None] * len(emb)
    rows = ["label\ttype\tid"] + [f"{_tsv_cell(label)}\t{_tsv_cell(kind)}\t{_tsv_cell(entity)}"
                                   for entity, label, kind in zip(emb.ids, emb.labels, types, strict=True)]
    if emb.inductive is not None:
        rows = [f"{row}\t{flag}" for row, flag in zip(rows, ["inductive", *emb.inductive], strict=True)]
    atomic_write_text(metadata, "\n".join(rows) + "\n")
    return [vectors, metadata]


@exporter("torch")
def to_torch(emb: Embeddings, folder: Path) -> list[Path]:
    """An nn.Embedding state dict (load with torch.load(..., weights_only=True)) and its vocabulary."""
    import torch

    state, vocab = folder / "embedding.pt", folder / "vocab.json"
    layer = torch.nn.Embedding.from_pretrained(torch.from_numpy(emb.vectors.copy()))
    with atomic_path(state) as tmp:
        torch.save(layer.state_dict(), tmp)
    atomic_write_text(vocab, _json(_id_map(emb)))
    return [state, vocab]


@exporter("int8")
def to_int8(emb: Embeddings, folder: Path) -> list[Path]:
    """int8 codes with a float32 scale per row: vector ~= codes * scale (error at most scale / 2)."""
    import torch

    from kgpipe.lm.knowledge import quantize_int8
    from kgpipe.tensorfile import write_torch

    codes, scales = quantize_int8(torch.from_numpy(emb.vectors.copy()))
    path = folder / "embeddings.int8.safetensors"
    write_torch(path, {"codes": codes, "scales": scales}, _safetensors_metadata(emb))
    return [path]


def export_embeddings(emb: Embeddings, folder: Path, formats: list[str]) -> dict[str, list[Path]]:
    unknown = [f for f in formats if f not in EMBEDDING_FORMATS]
    if unknown:
        raise KgpipeError(f"unknown embedding format(s): {', '.join(unknown)}",
                          hint=f"choose from: {', '.join(sorted(EMBEDDING_FORMATS))}")
    folder.mkdir(parents=True, exist_ok=True)
    return {name: EMBEDDING_FORMATS[name](emb, folder) for name in formats}
