"""Graphs for graph tools: read GraphML or RDF into networkx; write Neo4j bulk-import CSVs from the fused
entity and triple tables.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kgpipe.atomic import atomic_write_text
from kgpipe.errors import ArtifactError
from kgpipe.export.safe_text import iri_safe, xml_safe

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
LABELS = ("http://www.w3.org/2000/01/rdf-schema#label", "http://www.w3.org/2004/02/skos/core#prefLabel")


def _graph_from_rdf(path: Path) -> Any:
    import networkx as nx
    import rdflib
    from rdflib.util import guess_format

    rdf = rdflib.Graph()
    rdf.parse(path, format=guess_format(str(path)) or "turtle")
    graph = nx.MultiDiGraph()
    for s, p, o in rdf:
        if isinstance(s, rdflib.BNode) or isinstance(o, rdflib.BNode):
            continue
        subject, predicate = str(s), str(p)
        if isinstance(o, rdflib.Literal):
            if predicate in LABELS:
                graph.add_node(subject, label=str(o))
        elif predicate == RDF_TYPE:
            graph.add_node(subject, type=str(o))
        else:
            graph.add_edge(subject, str(o), key=predicate, relation=predicate)
    return graph


def load_graph(path: str | Path) -> Any:
    """GraphML (networkx) or RDF (rdflib) as a networkx graph; a folder means its graph.graphml."""
    import networkx as nx

    path = Path(path)
    if path.is_dir():
        path = path / "graph.graphml"
    if not path.exists():
        raise ArtifactError(f"{path}: no such graph file", hint="run the fuse stage first")
    if path.suffix.lower() == ".graphml":
        return nx.read_graphml(path, force_multigraph=True)
    return _graph_from_rdf(path)


def _csv(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _text(value: Any) -> str | None:
    """A table cell as text; None for missing values (pandas gives NaN for them)."""
    return value if isinstance(value, str) and value else None


def _neo4j_label(kg_type: str | None) -> str:
    local = (_text(kg_type) or "Entity").rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1]
    return ";".join(dict.fromkeys(["Entity", "".join(c for c in local if c.isalnum() or c == "_") or "Entity"]))


def _neo4j_type(relation: str) -> str:
    local = relation.rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1]
    return "".join(c if c.isalnum() else "_" for c in local).upper() or "RELATED_TO"


def write_neo4j_csv(entities: Any, triples: Any, folder: Path) -> list[Path]:
    """nodes.csv (id:ID, label, iri, :LABEL) and relationships.csv (:START_ID, :END_ID, :TYPE, iri, count,
    confidence) for `neo4j-admin database import`. Ids and IRIs as in the other graph files (iri_safe), labels
    with XML-illegal characters (NUL first of all, which CSV readers reject) replaced (xml_safe); the csv
    module quotes commas, quotes and newlines."""
    nodes: list[list[Any]] = [["id:ID", "label", "seed_iri", "mention_count:int", ":LABEL"]]
    nodes += [[iri_safe(row.id), xml_safe(_text(row.label) or ""), iri_safe(_text(row.seed_iri) or ""),
               int(row.mention_count), _neo4j_label(row.type)]
              for row in entities.itertuples(index=False)]
    known = set(entities["id"])
    rels: list[list[Any]] = [[":START_ID", ":END_ID", ":TYPE", "relation_iri", "count:int", "confidence:float"]]
    rels += [[iri_safe(row.head), iri_safe(row.tail), _neo4j_type(row.relation), iri_safe(row.relation),
              int(row.count), float(row.confidence)]
             for row in triples.itertuples(index=False) if row.head in known and row.tail in known]
    paths = [folder / "nodes.csv", folder / "relationships.csv"]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths[0], _csv(nodes))
    atomic_write_text(paths[1], _csv(rels))
    return paths


# --- graph formats by name -------------------------------------------------------------------------------

GraphExporter = Callable[[Any, Any, "Path | None", Path], list[Path]]
GRAPH_FORMATS: dict[str, GraphExporter] = {}


def graph_exporter(name: str) -> Callable[[GraphExporter], GraphExporter]:
    def register(func: GraphExporter) -> GraphExporter:
        GRAPH_FORMATS[name] = func
        return func
    return register


def _rdf(entities: Any, triples: Any, rdf_source: Path | None) -> Any:
    """The fused graph as rdflib: fuse's graph.ttl when given (it carries owl:sameAs), else built from tables."""
    import rdflib

    graph = rdflib.Graph()
    if rdf_source is not None:
        graph.parse(rdf_source, format="turtle")
        return graph
    import tempfile

    from kgpipe.kg.graph_files import write_turtle

    with tempfile.TemporaryDirectory() as tmp:
        write_turtle(entities, triples, Path(tmp) / "g.ttl")
        graph.parse(Path(tmp) / "g.ttl", format="turtle")
    return graph


@graph_exporter("turtle")
def to_turtle(entities: Any, triples: Any, rdf_source: Path | None, folder: Path) -> list[Path]:
    from kgpipe.kg.graph_files import turtle_text

    path = folder / "graph.ttl"
    atomic_write_text(path, turtle_text(_rdf(entities, triples, rdf_source)))
    return [path]


@graph_exporter("ntriples")
def to_ntriples(entities: Any, triples: Any, rdf_source: Path | None, folder: Path) -> list[Path]:
    path = folder / "graph.nt"
    # rdflib writes statements in set order, which follows the process's hash seed: sorted lines give the same
    # bytes in every process (each N-Triples line is a statement of its own)
    # split at "\n" only: a literal may hold other line breaks (vertical tab, U+2028), which rdflib leaves as they are
    lines = _rdf(entities, triples, rdf_source).serialize(format="nt").split("\n")
    atomic_write_text(path, "".join(f"{line}\n" for line in sorted(line for line in lines if line)))
    return [path]


@graph_exporter("graphml")
def to_graphml(entities: Any, triples: Any, rdf_source: Path | None, folder: Path) -> list[Path]:
    from kgpipe.atomic import atomic_path
    from kgpipe.kg.graph_files import write_graphml

    path = folder / "graph.graphml"
    with atomic_path(path) as tmp:
        write_graphml(entities, triples, tmp)
    return [path]


@graph_exporter("neo4j")
def to_neo4j(entities: Any, triples: Any, rdf_source: Path | None, folder: Path) -> list[Path]:
    return write_neo4j_csv(entities, triples, folder)
