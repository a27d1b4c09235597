"""Property tests: any Unicode label or id gives a GraphML, Turtle and N-Triples file that networkx and rdflib read
back, holding what kgpipe/export/safe_text.py says it holds (needs hypothesis, a test dependency)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest

from kgpipe.export.safe_text import iri_safe, terminal_safe, utf8_safe, word2vec_key, xml_safe

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# characters writers have tripped on, drawn often; the rest of Unicode (surrogates included) drawn too
TRICKY = [*"\x00\x01\x08\x0b\x0c\x0d\x1b\x7f\x85\t\n \"'<>&\\{}|^`%#[]:;,.",
          "\ufffe", "\uffff", "\ud800", "\udfff", "\u2028", "\u202e", "\ufffd", "\U0001f600", "]]>", '"""', "\r\n"]
any_char = st.characters(exclude_categories=())   # Cs (lone surrogates) included
text = st.lists(st.one_of(st.sampled_from(TRICKY), any_char), max_size=20).map("".join)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _graph(labels: list[str], ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(ids)
    entities = pd.DataFrame({"id": pd.Series(ids, dtype=object), "label": pd.Series(labels, dtype=object),
                             "type": [None] * n, "aliases": [[label] for label in labels], "seed_iri": [None] * n,
                             "mention_count": [1] * n, "sources": [[]] * n})
    triples = pd.DataFrame({"head": pd.Series(ids[:-1], dtype=object),
                            "relation": ["http://kgpipe.org/r/" + "x"] * (n - 1),
                            "tail": pd.Series(ids[1:], dtype=object), "count": [1] * (n - 1),
                            "sources": [[]] * (n - 1), "confidence": [1.0] * (n - 1)})
    return entities, triples


def _unique_ids(raw: list[str]) -> list[str]:
    """ids as urn:k:<text>; texts whose safe forms coincide (an unsafe character and its percent-encoding are
    one IRI) are dropped, as fuse never gives two entities one IRI."""
    seen, ids = set(), []
    for value in raw:
        iri = "urn:k:" + value
        if iri_safe(iri) not in seen:
            seen.add(iri_safe(iri))
            ids.append(iri)
    return ids


graphs = st.lists(st.tuples(text, text), min_size=1, max_size=6)


@SETTINGS
@given(graphs)
def test_graphml_reads_back_in_networkx_for_any_text(rows: list[tuple[str, str]]) -> None:
    import networkx as nx

    from kgpipe.kg.graph_files import write_graphml

    ids = _unique_ids([raw_id for raw_id, _ in rows])
    labels = [label for _, label in rows][: len(ids)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.graphml"
        write_graphml(*_graph(labels, ids), path)
        graph = nx.read_graphml(path, force_multigraph=True)
    assert list(graph.nodes) == [iri_safe(i) for i in ids]
    assert [graph.nodes[iri_safe(i)].get("label", "") for i in ids] == [xml_safe(label) for label in labels]
    assert graph.number_of_edges() == len(ids) - 1


@SETTINGS
@given(graphs)
def test_turtle_and_ntriples_read_back_in_rdflib_for_any_text(rows: list[tuple[str, str]]) -> None:
    import rdflib

    from kgpipe.export.graph import to_ntriples, to_turtle

    ids = _unique_ids([raw_id for raw_id, _ in rows])
    labels = [label for _, label in rows][: len(ids)]
    entities, triples = _graph(labels, ids)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        to_turtle(entities, triples, None, folder)
        to_ntriples(entities, triples, None, folder)
        for name, fmt in (("graph.ttl", "turtle"), ("graph.nt", "nt")):
            rdf = rdflib.Graph().parse(folder / name, format=fmt)
            got = {str(s): str(o) for s, o in rdf.subject_objects(rdflib.RDFS.label)}
            assert got == {iri_safe(i): utf8_safe(label) for i, label in zip(ids, labels, strict=True)}, fmt
            assert len(list(rdf.triples((None, rdflib.URIRef("http://kgpipe.org/r/x"), None)))) == len(ids) - 1


@SETTINGS
@given(text)
def test_safe_forms_hold_no_forbidden_character(value: str) -> None:
    import re
    from urllib.parse import unquote

    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]", xml_safe(value))
    iri = iri_safe(value)
    assert not re.search('[\x00-\x20<>"{}|^`\\\\\ud800-\udfff]', iri) and not any(c.isspace() for c in iri)
    key = word2vec_key(value)
    assert not any(c.isspace() for c in key) and unquote(key) == utf8_safe(value)
    shown = terminal_safe(value)
    assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]", shown)
