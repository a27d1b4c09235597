"""Describe an artifact for people: a table's schema, row count and first rows; a graph's size; a JSON
document; a folder's files. One describer per file suffix, looked up in a registry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgpipe.config import Pipeline
from kgpipe.errors import ArtifactError


@dataclass
class ArtifactDescription:
    path: Path
    kind: str
    facts: dict[str, Any] = field(default_factory=dict)
    schema: list[tuple[str, str]] = field(default_factory=list)
    preview: Any = None  # a pandas DataFrame for tables, text otherwise


Describer = Callable[[Path, int], ArtifactDescription]
_DESCRIBERS: dict[str, Describer] = {}


def describer(*suffixes: str) -> Callable[[Describer], Describer]:
    def register(func: Describer) -> Describer:
        for suffix in suffixes:
            _DESCRIBERS[suffix] = func
        return func
    return register


@describer(".parquet")
def _parquet(path: Path, rows: int) -> ArtifactDescription:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path)
    preview = meta.read_row_group(0).slice(0, rows).to_pandas() if meta.num_row_groups else None
    return ArtifactDescription(
        path, "table", {"rows": meta.metadata.num_rows, "columns": meta.metadata.num_columns},
        schema=[(f.name, str(f.type)) for f in meta.schema_arrow], preview=preview)


@describer(".json")
def _json(path: Path, rows: int) -> ArtifactDescription:
    data = json.loads(path.read_text(encoding="utf-8"))
    text = json.dumps(data, indent=2, ensure_ascii=False)
    lines = text.splitlines()
    shown = "\n".join(lines[: rows * 8]) + ("\n..." if len(lines) > rows * 8 else "")
    facts = {"keys": len(data)} if isinstance(data, dict) else {"items": len(data)}
    return ArtifactDescription(path, "json", facts, preview=shown)


@describer(".graphml")
def _graphml(path: Path, rows: int) -> ArtifactDescription:
    import networkx as nx

    graph = nx.read_graphml(path)
    return ArtifactDescription(path, "graph", {"nodes": graph.number_of_nodes(),
                                              "edges": graph.number_of_edges()})


@describer(".ttl", ".nt", ".rdf", ".owl", ".jsonld", ".n3")
def _rdf(path: Path, rows: int) -> ArtifactDescription:
    import rdflib
    from rdflib.util import guess_format

    graph = rdflib.Graph()
    graph.parse(path, format=guess_format(str(path)) or "turtle")
    nodes = set(graph.subjects()) | {o for o in graph.objects() if not isinstance(o, rdflib.Literal)}
    return ArtifactDescription(path, "rdf graph", {"triples": len(graph), "nodes": len(nodes)})


def _folder(path: Path, rows: int) -> ArtifactDescription:
    from kgpipe.export.safe_text import terminal_safe
    from kgpipe.hashing import iter_files

    files = [p for p in iter_files(path) if p.is_file()]  # kgpipe's own marker and temporary files left out
    # names escaped here: a newline in a file name must not pass for the next line of the listing
    listing = "\n".join(f"{terminal_safe(str(p.relative_to(path)))}  ({p.stat().st_size} bytes)"
                         for p in files[: rows * 4])
    return ArtifactDescription(path, "folder", {"files": len(files),
                                               "bytes": sum(p.stat().st_size for p in files)}, preview=listing)


def resolve_artifact(name: str, pipeline: Pipeline | None) -> Path:
    """A path, or 'stage.out' / 'stage/out' naming an out of the pipeline."""
    direct = Path(name)
    if direct.exists():
        return direct
    if pipeline is not None:
        for sep in (".", "/", ":"):
            stage, _, out = name.partition(sep)
            if stage in pipeline.stages and out in pipeline.stages[stage].outs:
                path = pipeline.stages[stage].outs[out]
                if not path.exists():
                    raise ArtifactError(f"{pipeline.rel(path)} ({name}) does not exist yet",
                                        hint=f"run the pipeline first: kgpipe run {pipeline.path}")
                return path
        known = [f"{s.name}.{o}" for s in pipeline.stages.values() for o in s.outs]
        raise ArtifactError(f"no artifact '{name}'", hint="a path, or one of: " + ", ".join(known))
    raise ArtifactError(f"no artifact '{name}'", hint="pass an existing path")


def preview_text(preview: Any) -> str:
    """A description's preview as text for a terminal: a table's cells, index and column names with control
    characters escaped (kgpipe.export.safe_text.terminal_safe), so data cannot move the cursor or recolour
    the terminal and one cell stays on one line; other previews as they are (the caller escapes them)."""
    import pandas as pd

    from kgpipe.export.safe_text import terminal_safe

    if not isinstance(preview, pd.DataFrame):
        return str(preview)

    def cell(value: Any) -> Any:
        if isinstance(value, str):
            return terminal_safe(value)
        if isinstance(value, bytes):
            return repr(value)
        if hasattr(value, "tolist") and not isinstance(value, int | float):   # list columns: numpy arrays
            value = value.tolist()
        if isinstance(value, list | tuple):
            return terminal_safe(repr(value))
        return value

    frame = preview.map(cell) if hasattr(preview, "map") else preview.applymap(cell)
    frame.columns = [terminal_safe(str(c)) for c in frame.columns]
    with pd.option_context("display.max_columns", 20, "display.width", 160, "display.max_colwidth", 60):
        return frame.to_string()


def describe_artifact(path: Path, rows: int = 5) -> ArtifactDescription:
    if path.is_dir():
        return _folder(path, rows)
    func = _DESCRIBERS.get(path.suffix.lower())
    if func is None:
        return ArtifactDescription(path, "file", {"bytes": path.stat().st_size})
    try:
        return func(path, rows)
    except Exception as exc:  # a describer must never hide the file: report what failed
        raise ArtifactError(f"{path}: cannot read as {path.suffix} ({type(exc).__name__}: {exc})") from exc
