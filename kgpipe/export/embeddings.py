"""Embeddings as users hold them: ids, labels, optional types and one float32 matrix, with lookups and
cosine nearest neighbours (vectorised), read from any of kgpipe's embedding files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kgpipe.errors import ArtifactError

INVERSE_SUFFIX = "_inverse"   # id of a reciprocal relation's row, as PyKEEN names inverse relations


@dataclass
class Embeddings:
    ids: list[str]
    labels: list[str]
    vectors: np.ndarray                      # (n, dim) float32
    types: list[str | None] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # the vectors stage's flag per row: True where the vector is predicted from text, not trained (None: none
    # given, as for embed's own tables)
    inductive: list[bool] | None = None

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or len(self.ids) != self.vectors.shape[0] or len(self.labels) != len(self.ids):
            raise ArtifactError(f"{len(self.ids)} ids, {len(self.labels)} labels but vectors of shape "
                                f"{self.vectors.shape}")
        if self.inductive is not None and len(self.inductive) != len(self.ids):
            raise ArtifactError(f"{len(self.ids)} ids but {len(self.inductive)} inductive flags")
        self._row = {entity: i for i, entity in enumerate(self.ids)}
        if len(self._row) != len(self.ids):
            twice = sorted({entity for entity in self.ids if self.ids.count(entity) > 1})[:5]
            raise ArtifactError(f"embedding ids must be unique; repeated: {', '.join(twice)}")
        self._by_label: dict[str, int] = {}
        for i, label in enumerate(self.labels):
            self._by_label.setdefault(label, i)
        self._unit: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def row(self, entity: str) -> int:
        """Row of an entity given by id or, failing that, by label; an unknown name raises UnknownNameError
        (a KeyError too) whose hint suggests the closest labels."""
        if entity in self._row:
            return self._row[entity]
        if entity in self._by_label:
            return self._by_label[entity]
        from kgpipe.lookup import UnknownNameError

        raise UnknownNameError("entity", entity, self.labels)

    def vector(self, entity: str) -> np.ndarray:
        return self.vectors[self.row(entity)]

    def most_similar(self, entity: str | np.ndarray, k: int = 10) -> list[tuple[str, str, float]]:
        """The k nearest entities by cosine similarity: (id, label, similarity), the query itself left out."""
        if self._unit is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._unit = self.vectors / np.maximum(norms, 1e-12)
        if isinstance(entity, str):
            exclude = self.row(entity)
            query = self._unit[exclude]
        else:
            exclude, query = -1, np.asarray(entity, dtype=np.float32) / max(float(np.linalg.norm(entity)), 1e-12)
        scores = self._unit @ query
        if exclude >= 0:
            scores[exclude] = -np.inf
        k = min(k, len(self.ids) - (exclude >= 0))
        top = np.argpartition(-scores, k - 1)[:k] if k > 0 else np.array([], dtype=int)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[i], self.labels[i], float(scores[i])) for i in top]

    def with_types(self, types: Sequence[str | None] | Any) -> Embeddings:
        """A copy with a type per entity: a sequence in row order, or a mapping (dict, pandas Series) from id
        to type; missing and NaN types become None."""
        if hasattr(types, "get") and not isinstance(types, str):
            types = [types.get(entity) for entity in self.ids]
        clean = [t if isinstance(t, str) and t else None for t in types]
        return Embeddings(self.ids, self.labels, self.vectors, clean, dict(self.metadata), self.inductive)

    def pca(self, n_components: int = 2) -> np.ndarray:
        """The vectors projected on their first principal components, (n, n_components), for plots."""
        if not 1 <= n_components <= min(self.vectors.shape):
            raise ValueError(f"n_components must be between 1 and {min(self.vectors.shape)}")
        centred = self.vectors - self.vectors.mean(axis=0, keepdims=True)
        _, _, components = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
        # a fixed sign per component (largest loading positive), so plots do not flip between runs
        signs = np.sign(components[np.arange(n_components), np.abs(components[:n_components]).argmax(axis=1)])
        return (centred @ (components[:n_components] * signs[:, None]).T).astype(np.float32)


def _from_parquet(path: Path) -> Embeddings:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = {"id", "vector"} - set(table.column_names)
    if missing:
        raise ArtifactError(f"{path}: not an embeddings table (missing {', '.join(sorted(missing))})")
    ids = table.column("id").to_pylist()
    labels = table.column("label").to_pylist() if "label" in table.column_names else list(ids)
    # one flat buffer, not a Python list per row (100k x 64 floats: milliseconds instead of seconds)
    column = table.column("vector").combine_chunks()
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths.min() != lengths.max() or column.null_count):
        raise ArtifactError(f"{path}: vectors of different lengths ({lengths.min()} to {lengths.max()}) or missing")
    vectors = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(ids), -1)
    types = table.column("type").to_pylist() if "type" in table.column_names else None
    if "inverse" in table.column_names:
        # embed's relation table: a reciprocal relation shares its relation's IRI; a suffix (PyKEEN's naming)
        # keeps ids unique, so word2vec, id maps and lookups see every row
        inverse = table.column("inverse").to_pylist()
        ids = [f"{entity}{INVERSE_SUFFIX}" if flag else entity for entity, flag in zip(ids, inverse, strict=True)]
        types = types or ["inverse relation" if flag else "relation" for flag in inverse]
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items() if not k.startswith(b"pandas")}
    inductive = ([bool(flag) for flag in table.column("inductive").to_pylist()]
                 if "inductive" in table.column_names else None)
    return Embeddings(ids, labels, vectors, types, meta, inductive)


def _from_safetensors(path: Path) -> Embeddings:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        meta = handle.metadata() or {}
        # a safetensors handle has keys() but no __contains__
        key = "entity_embeddings" if "entity_embeddings" in handle.keys() else next(iter(handle.keys()))  # noqa: SIM118
        vectors = handle.get_tensor(key)
    ids = json.loads(meta.get("ids", "[]"))
    labels = json.loads(meta["labels"]) if "labels" in meta else list(ids)
    if not ids:
        raise ArtifactError(f"{path}: safetensors file carries no 'ids' metadata",
                            hint="export it with kgpipe (ids and labels travel in the metadata)")
    inductive = json.loads(meta["inductive"]) if "inductive" in meta else None
    return Embeddings(ids, labels, vectors, None,
                      {k: v for k, v in meta.items() if k not in ("ids", "labels", "inductive")}, inductive)


def load_embeddings(path: str | Path) -> Embeddings:
    """Embeddings from a parquet table (id, label, vector) or a kgpipe safetensors file; for a folder, its
    entity_embeddings.parquet."""
    path = Path(path)
    if path.is_dir():
        path = path / "entity_embeddings.parquet"
    if not path.exists():
        raise ArtifactError(f"{path}: no such embeddings file", hint="run the embed stage first")
    readers = {".parquet": _from_parquet, ".safetensors": _from_safetensors}
    if path.suffix not in readers:
        raise ArtifactError(f"{path}: cannot read embeddings from '{path.suffix}'",
                            hint="pass a .parquet or .safetensors file written by kgpipe")
    return readers[path.suffix](path)
