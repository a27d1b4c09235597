"""kgpipe: raw text and seed knowledge graphs in; a fused KG, its embeddings and knowledge-enhanced
transformer representations out, as a staged DAG of file artifacts.

>>> import kgpipe
>>> result = kgpipe.run("pipelines/default.yaml")   # doctest: +SKIP
>>> result.outputs["ingest"]["documents"]           # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from kgpipe.runner import RunResult


def run(pipeline: Any = "pipelines/default.yaml", **kwargs: Any) -> RunResult:
    """Run a pipeline's stale stages; see kgpipe.runner.run for the keyword arguments."""
    from kgpipe.runner import run as _run

    return _run(pipeline, **kwargs)


def status(pipeline: Any = "pipelines/default.yaml") -> list:
    """Each stage with the reasons it is stale (an empty list of reasons: up to date)."""
    from kgpipe.runner import status as _status

    return _status(pipeline)


def load_artifact(pipeline: Any, name: str) -> Any:
    """A pipeline output by 'stage.out' name: a pandas DataFrame for a table, parsed JSON for a report.

    >>> docs = kgpipe.load_artifact("pipelines/default.yaml", "ingest.documents")   # doctest: +SKIP
    """
    import json

    from kgpipe.artifacts import read_table
    from kgpipe.config import as_pipeline
    from kgpipe.inspect import resolve_artifact

    path = resolve_artifact(name, as_pipeline(pipeline))
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return read_table(path)


def load_embeddings(path: Any) -> Any:
    """Entity embeddings (parquet or safetensors written by kgpipe) with vector(), most_similar(), ids, labels.

    >>> emb = kgpipe.load_embeddings("artifacts/embed/entity_embeddings.parquet")   # doctest: +SKIP
    >>> emb.most_similar("Marie Curie", k=5)                                        # doctest: +SKIP
    """
    from kgpipe.export.embeddings import load_embeddings as _load

    return _load(path)


def load_graph(path: Any) -> Any:
    """A networkx MultiDiGraph from GraphML, or from RDF (Turtle, N-Triples, ...): entity-to-entity edges keyed
    by relation, labels and types as node attributes."""
    from kgpipe.export.graph import load_graph as _load

    return _load(path)


__all__ = ["__version__", "load_artifact", "load_embeddings", "load_graph", "run", "status"]
