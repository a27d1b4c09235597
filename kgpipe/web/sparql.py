"""Read-only SPARQL over the fused graph (fuse's graph.ttl, loaded by rdflib once per snapshot).

Only SELECT and ASK are run. Refused before evaluation: updates (INSERT, DELETE, LOAD, CLEAR, ...), any
SERVICE clause and any FROM / FROM NAMED, since rdflib would fetch those IRIs from the network: what the app
reads must never make it fetch. Results stop at MAX_ROWS.
"""

from __future__ import annotations

from typing import Any

from kgpipe.errors import InputError
from kgpipe.web import models as m
from kgpipe.web.data import Snapshot

MAX_ROWS = 1000
READ_FORMS = {"SelectQuery": "SELECT", "AskQuery": "ASK"}


class QueryRefused(InputError):
    """A query the explorer does not run (the API answers 400 with the message)."""


def _contains(node: Any, name: str, seen: set[int] | None = None) -> bool:
    """Whether a parsed or translated query holds a part called `name` anywhere (sub-queries, EXISTS, ...)."""
    from rdflib.plugins.sparql.parserutils import CompValue

    seen = set() if seen is None else seen
    if id(node) in seen:
        return False
    seen.add(id(node))
    if isinstance(node, CompValue) and node.name == name:
        return True
    if isinstance(node, dict):
        return any(_contains(v, name, seen) for v in node.values())
    if isinstance(node, list | tuple | set | frozenset) or type(node).__name__ == "ParseResults":
        return any(_contains(v, name, seen) for v in node)
    return False


def check_query(text: str) -> Any:
    """The translated query, if it is one the explorer runs; else QueryRefused saying why."""
    from pyparsing import ParseException
    from rdflib.plugins.sparql.algebra import translateQuery
    from rdflib.plugins.sparql.parser import parseQuery, parseUpdate

    try:
        parsed = parseQuery(text)
    except ParseException as exc:
        try:
            parseUpdate(text)
        except ParseException:
            raise QueryRefused(f"not a SPARQL query: {exc.msg} (line {exc.lineno}, column {exc.col})") from None
        raise QueryRefused("updates are refused: the explorer is read-only (SELECT and ASK only)") from None
    form = parsed[1].name
    if form not in READ_FORMS:
        raise QueryRefused(f"{form.removesuffix('Query').upper()} queries are refused: SELECT and ASK only")
    if dict.get(parsed[1], "datasetClause"):  # CompValue.get answers a missing key with its name
        raise QueryRefused("FROM and FROM NAMED are refused: queries run over the fused graph only, and the "
                           "explorer never fetches graphs")
    if _contains(parsed, "ServiceGraphPattern"):
        raise QueryRefused("SERVICE clauses are refused: the explorer never queries remote endpoints")
    query = translateQuery(parsed)
    if _contains(query.algebra, "ServiceGraphPattern"):
        raise QueryRefused("SERVICE clauses are refused: the explorer never queries remote endpoints")
    return query


def graph(snap: Snapshot) -> Any:
    """The fused graph as an rdflib Graph (parsed once per snapshot)."""
    path = snap.paths.graph_ttl
    if path is None or not snap.has("graph_ttl"):
        raise QueryRefused("the pipeline has no graph.ttl to query", hint="run the fuse stage")

    def build() -> Any:
        import rdflib

        return rdflib.Graph().parse(path, format="turtle")
    return snap.cached("rdf_graph", build)


def run_query(snap: Snapshot, text: str, max_rows: int = MAX_ROWS) -> m.SparqlResult:
    """Columns and up to max_rows rows; IRIs that are entity ids carry the id (for links to their pages)."""
    query = check_query(text)
    result = graph(snap).query(query)
    if result.type == "ASK":
        return m.SparqlResult(columns=["ask"], rows=[[m.SparqlCell(value=str(bool(result.askAnswer)).lower(),
                                                                   entity_id=None)]])
    columns = [str(v) for v in (result.vars or [])]
    entity_row = snap.entity_row
    rows: list[list[m.SparqlCell]] = []
    for row in result:
        if len(rows) >= max_rows:
            break
        cells = []
        for value in row:
            text_value = "" if value is None else str(value)
            cells.append(m.SparqlCell(value=text_value,
                                      entity_id=text_value if value is not None and text_value in entity_row
                                      else None))
        rows.append(cells)
    return m.SparqlResult(columns=columns, rows=rows)
