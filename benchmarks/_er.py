"""Shared by the entity-resolution benchmarks: reading CSVs that are Latin-1 in places, gold clusters as the
transitive closure of gold pairs, and a threshold sweep printed as a table."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import pandas as pd


def read_csv_any(path: Path, **kwargs) -> pd.DataFrame:
    """UTF-8 where the bytes are UTF-8, Latin-1 otherwise (the Leipzig files mix both)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return pd.read_csv(io.StringIO(text), **kwargs)


def gold_clusters(ids: Iterable[str], pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Cluster number per id: connected components of the gold pairs (their transitive closure)."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(ids)
    graph.add_edges_from(pairs)
    out: dict[str, int] = {}
    for number, component in enumerate(sorted(nx.connected_components(graph), key=lambda c: min(c))):
        for node in component:
            out[node] = number
    return out


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
