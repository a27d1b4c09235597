"""The fused graph as files: Turtle through rdflib (labels, aliases, types, owl:sameAs to seed IRIs, the
triples) and GraphML through networkx (a multi-digraph: one edge per triple, its relation and counts as
attributes). Ids and labels go through kgpipe.export.safe_text, so any Unicode gives a valid file.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from kgpipe.export.safe_text import iri_safe, utf8_safe, xml_keep_carriage_returns, xml_safe


def _as_list(value) -> list:
    return [] if value is None else list(value)


def _str(value) -> str:
    return value if isinstance(value, str) else ""


def turtle_text(graph) -> str:  # an rdflib Graph
    """graph as Turtle with the same bytes in every process: rdflib names unbound namespaces ns1, ns2, ... in
    the order it meets them, which follows the hash seed; binding them first, in sorted order, fixes it."""
    from rdflib import URIRef
    from rdflib.namespace import RDF

    names = {p for p in graph.predicates() if isinstance(p, URIRef)}
    names |= {o for o in graph.objects(None, RDF.type) if isinstance(o, URIRef)}
    for name in sorted(names):
        with contextlib.suppress(ValueError):  # no namespace to split off: rdflib writes it in full
            graph.namespace_manager.compute_qname(name, generate=True)
    return graph.serialize(format="turtle")


def write_turtle(entities: pd.DataFrame, triples: pd.DataFrame, path: Path,
                 same_as: Mapping[str, Sequence[str]] | None = None,
                 extra_types: Mapping[str, Sequence[str]] | None = None) -> int:
    """Write graph.ttl; returns the number of RDF statements. Ids are written with iri_safe, literals as
    they are (rdflib escapes them) but for lone surrogates (utf8_safe)."""
    from rdflib import Graph, Literal, URIRef
    from rdflib.namespace import OWL, RDF, RDFS, SKOS

    graph = Graph()
    graph.bind("owl", OWL)
    graph.bind("skos", SKOS)
    graph.bind("schema", "http://schema.org/")
    same_as = same_as or {}
    extra_types = extra_types or {}
    for row in entities.itertuples(index=False):
        node = URIRef(iri_safe(row.id))
        graph.add((node, RDFS.label, Literal(utf8_safe(_str(row.label)))))
        types = {t for t in [row.type, *extra_types.get(row.id, ())] if isinstance(t, str) and t}
        for kg_type in sorted(types):
            graph.add((node, RDF.type, URIRef(iri_safe(kg_type))))
        for alias in _as_list(row.aliases):
            graph.add((node, SKOS.altLabel, Literal(utf8_safe(_str(alias)))))
        seeds = set(same_as.get(row.id, ()))
        if isinstance(row.seed_iri, str) and row.seed_iri and row.seed_iri != row.id:
            seeds.add(row.seed_iri)
        for iri in sorted(seeds - {row.id}):
            graph.add((node, OWL.sameAs, URIRef(iri_safe(iri))))
    for row in triples.itertuples(index=False):
        graph.add((URIRef(iri_safe(row.head)), URIRef(iri_safe(row.relation)), URIRef(iri_safe(row.tail))))
    path.write_text(turtle_text(graph), encoding="utf-8")
    return len(graph)


def write_graphml(entities: pd.DataFrame, triples: pd.DataFrame, path: Path) -> tuple[int, int]:
    """Write graph.graphml; returns (nodes, edges). List-valued attributes are joined with '|' since GraphML
    values are scalars. Ids and IRIs are written with iri_safe (as in graph.ttl), text with xml_safe."""
    import networkx as nx

    def iri(value) -> str:
        return iri_safe(value) if isinstance(value, str) else ""

    graph = nx.MultiDiGraph()
    for row in entities.itertuples(index=False):
        graph.add_node(iri_safe(row.id), label=xml_safe(_str(row.label)), type=iri(row.type),
                       seed_iri=iri(row.seed_iri),
                       mention_count=int(row.mention_count),
                       aliases=xml_safe("|".join(map(_str, _as_list(row.aliases)))))
    for row in triples.itertuples(index=False):
        relation = iri_safe(row.relation)
        graph.add_edge(iri_safe(row.head), iri_safe(row.tail), key=relation, relation=relation,
                       count=int(row.count), confidence=float(row.confidence),
                       sources=xml_safe("|".join(map(_str, _as_list(row.sources)))))
    buffer = io.BytesIO()
    nx.write_graphml(graph, buffer, encoding="utf-8")
    Path(path).write_bytes(xml_keep_carriage_returns(buffer.getvalue()))
    return graph.number_of_nodes(), graph.number_of_edges()
