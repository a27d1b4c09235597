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
    """Run a pipeline's stale stages; see kgpipe.runner.run for the keyword arguments, e.g.
    overrides={"fuse.resolution.threshold": 0.6} (params for this run only, as `kgpipe run -S`)."""
    from kgpipe.runner import run as _run

    return _run(pipeline, **kwargs)


def status(pipeline: Any = "pipelines/default.yaml") -> list:
    """Each stage with the reasons it is stale (an empty list of reasons: up to date)."""
    from kgpipe.runner import status as _status

    return _status(pipeline)


def load_artifact(pipeline: Any, name: str) -> Any:
    """A pipeline output by 'stage.out' name: a pandas DataFrame for a table, parsed JSON for a report, a
    networkx graph for GraphML or RDF; folders (models, exports) are opened from kgpipe.artifact_path.

    >>> docs = kgpipe.load_artifact("pipelines/default.yaml", "ingest.documents")   # doctest: +SKIP
    """
    import json

    from kgpipe.artifacts import read_table
    from kgpipe.config import as_pipeline
    from kgpipe.inspect import resolve_artifact

    path = resolve_artifact(name, as_pipeline(pipeline))
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    if path.suffix in (".graphml", ".ttl", ".nt"):
        return load_graph(path)
    if path.suffix != ".parquet":
        from kgpipe.errors import ArtifactError

        raise ArtifactError(f"{name} ({path.name}) is not a table, a report or a graph",
                            hint=f"open its files from kgpipe.artifact_path(pipeline, {name!r})")
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


def artifact_path(pipeline: Any, name: str) -> Any:
    """The path of a pipeline output named 'stage.out', e.g. 'fuse.graph_graphml' (run the pipeline first)."""
    from kgpipe.explore import artifact_path as _path

    return _path(pipeline, name)


def load_model(source: Any, device: str = "cpu") -> Any:
    """The embed stage's model for link prediction (a model folder, or a pipeline): predict_tails(head,
    relation, k) and predict_heads(relation, tail, k), entities and relations by id or label.

    >>> kgpipe.load_model("pipelines/default.yaml").predict_tails("Marie Curie", "awardReceived", k=5)  # doctest: +SKIP
    """
    from kgpipe.explore import load_model as _load

    return _load(source, device=device)


def provenance(pipeline: Any, triple: Any, relation: str | None = None, tail: str | None = None) -> Any:
    """A fused triple's evidence as a DataFrame: each sentence that states it (document, sentence, subject and
    object mentions, pattern, confidence) and each seed graph that holds it; see kgpipe.explore.provenance."""
    from kgpipe.explore import provenance as _provenance

    return _provenance(pipeline, triple, relation, tail)


def fusion_summary(source: Any) -> Any:
    """The fusion report as tables: largest_merges, overlap (between source graphs), conflicts."""
    from kgpipe.explore import fusion_summary as _summary

    return _summary(source)


def training_history(source: Any) -> Any:
    """The embed stage's training curve: epoch, loss and the validation metric where it was evaluated."""
    from kgpipe.explore import training_history as _history

    return _history(source)


def stage_timings(pipeline: Any = "pipelines/default.yaml") -> Any:
    """Each stage's start, duration and measurements (seconds, peak memory per step) of the last run, from
    the lock file: run-dependent numbers are kept there, so artifacts are the same bytes for the same inputs."""
    from kgpipe.explore import stage_timings as _timings

    return _timings(pipeline)


def ego_graph(graph: Any, entity: str, radius: int = 1, max_nodes: int = 40) -> Any:
    """The neighbourhood of an entity (id or label) in a graph from kgpipe.load_graph, for drawing."""
    from kgpipe.explore import ego_graph as _ego

    return _ego(graph, entity, radius=radius, max_nodes=max_nodes)


__all__ = ["__version__", "artifact_path", "ego_graph", "fusion_summary", "load_artifact", "load_embeddings",
           "load_graph", "load_model", "provenance", "run", "stage_timings", "status", "training_history"]
