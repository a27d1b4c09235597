"""The fused graph as files: Turtle through rdflib (labels, aliases, types, owl:sameAs to seed IRIs, the
triples) and GraphML through networkx (a multi-digraph: one edge per triple, its relation and counts as
attributes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd


def _as_list(value) -> list:
    return [] if value is None else list(value)


def write_turtle(entities: pd.DataFrame, triples: pd.DataFrame, path: Path,
                 same_as: Mapping[str, Sequence[str]] | None = None,
                 extra_types: Mapping[str, Sequence[str]] | None = None) -> int:
    """Write graph.ttl; returns the number of RDF statements."""
    from rdflib import Graph, Literal, URIRef
    from rdflib.namespace import OWL, RDF, RDFS, SKOS

    graph = Graph()
    graph.bind("owl", OWL)
    graph.bind("skos", SKOS)
    graph.bind("schema", "http://schema.org/")
    same_as = same_as or {}
    extra_types = extra_types or {}
    for row in entities.itertuples(index=False):
        node = URIRef(row.id)
        graph.add((node, RDFS.label, Literal(row.label)))
        types = {t for t in [row.type, *extra_types.get(row.id, ())] if isinstance(t, str) and t}
        for kg_type in sorted(types):
            graph.add((node, RDF.type, URIRef(kg_type)))
        for alias in _as_list(row.aliases):
            graph.add((node, SKOS.altLabel, Literal(alias)))
        seeds = set(same_as.get(row.id, ()))
        if isinstance(row.seed_iri, str) and row.seed_iri and row.seed_iri != row.id:
            seeds.add(row.seed_iri)
        for iri in sorted(seeds - {row.id}):
            graph.add((node, OWL.sameAs, URIRef(iri)))
    for row in triples.itertuples(index=False):
        graph.add((URIRef(row.head), URIRef(row.relation), URIRef(row.tail)))
    graph.serialize(destination=str(path), format="turtle")
    return len(graph)


def write_graphml(entities: pd.DataFrame, triples: pd.DataFrame, path: Path) -> tuple[int, int]:
    """Write graph.graphml; returns (nodes, edges). List-valued attributes are joined with '|' since GraphML
    values are scalars."""
    import networkx as nx

    graph = nx.MultiDiGraph()
    for row in entities.itertuples(index=False):
        graph.add_node(row.id, label=row.label, type=row.type if isinstance(row.type, str) else "",
                       seed_iri=row.seed_iri if isinstance(row.seed_iri, str) else "",
                       mention_count=int(row.mention_count), aliases="|".join(_as_list(row.aliases)))
    for row in triples.itertuples(index=False):
        graph.add_edge(row.head, row.tail, key=row.relation, relation=row.relation, count=int(row.count),
                       confidence=float(row.confidence), sources="|".join(_as_list(row.sources)))
    nx.write_graphml(graph, path)
    return graph.number_of_nodes(), graph.number_of_edges()
