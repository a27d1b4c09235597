"""The embedding map: every entity vector projected to 2-D (UMAP when the `umap` package is installed, else
PCA by numpy's SVD), computed once per snapshot and sampled for the page."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kgpipe.web import models as m
from kgpipe.web.data import Snapshot

if TYPE_CHECKING:
    import numpy as np

UMAP_MAX_ROWS = 20_000   # beyond this UMAP takes minutes: project a sample


@dataclass(frozen=True)
class Projection:
    method: str
    rows: np.ndarray      # rows of the embeddings table that were projected
    xy: np.ndarray        # (len(rows), 2)


def project(snap: Snapshot) -> Projection | None:
    """The snapshot's 2-D projection (None without an embeddings table)."""
    table = snap.embeddings
    if table is None or len(table) < 2:
        return None

    def build() -> Projection:
        import numpy as np

        rows = np.arange(len(table))
        if importlib.util.find_spec("umap") is not None and len(table) > 15:
            import umap

            rows = rows if len(rows) <= UMAP_MAX_ROWS else np.random.default_rng(0).choice(
                rows, UMAP_MAX_ROWS, replace=False)
            xy = umap.UMAP(n_components=2, random_state=0, metric="cosine").fit_transform(table.vectors[rows])
            return Projection("umap", rows, np.asarray(xy, dtype=np.float32))
        return Projection("pca", rows, table.pca(2))
    return snap.cached("embedding_map", build)


def embedding_map(snap: Snapshot, limit: int = 5000) -> m.EmbeddingMap:
    """Up to `limit` points (an even sample of the projected rows), each with its label and type."""
    import numpy as np

    projection = project(snap)
    if projection is None:
        return m.EmbeddingMap(method="pca", points=[])
    table = snap.embeddings
    assert table is not None
    step = max(1, int(np.ceil(len(projection.rows) / max(1, limit))))
    points = []
    for (x, y), row in zip(projection.xy[::step], projection.rows[::step], strict=True):
        entity_id = table.ids[int(row)]
        points.append(m.MapPoint(id=entity_id, label=snap.label(entity_id), type=snap.entity_type(entity_id),
                                 x=float(x), y=float(y)))
    return m.EmbeddingMap(method=projection.method, points=points)  # type: ignore[arg-type]
