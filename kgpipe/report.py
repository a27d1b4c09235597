"""The run report: one self-contained HTML file (images inlined) describing a pipeline's last run.

The DAG with each stage's status and duration, input and output sizes, a summary per stage type (extraction
counts, fusion report, embedding metrics and loss curve, injection metrics), and what each stage produced: counts
of table columns such as label and relation, JSON reports and metrics as tables, PNG outputs inline. Durations and
a stage's `timings` (seconds, peak memory) come from its lock entry, never from its artifacts, which hold only
what the same inputs always give.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kgpipe.config import Pipeline, Stage, as_pipeline
from kgpipe.dag import StageStatus, build_graph, topological_order
from kgpipe.hashing import iter_files
from kgpipe.html import esc as _esc
from kgpipe.lockfile import LockEntry, LockFile
from kgpipe.runner import Workspace, status

# Columns of output tables worth a bar chart of value counts, wherever they appear.
COUNTED_COLUMNS = ("label", "kg_type", "relation", "source", "type")
STATUS_COLOURS = {"up to date": "#4caf50", "stale": "#ff9800", "never run": "#9e9e9e"}

Renderer = Callable[[Path], str]
_RENDERERS: dict[str, Renderer] = {}


def renders(*suffixes: str) -> Callable[[Renderer], Renderer]:
    """Register an HTML renderer for outputs with these suffixes."""
    def register(func: Renderer) -> Renderer:
        for suffix in suffixes:
            _RENDERERS[suffix] = func
        return func
    return register


def _png_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _figure_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in iter_files(path))
    return path.stat().st_size if path.exists() else 0


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bar_chart(counts: dict[str, int], title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(counts.items(), key=lambda kv: -kv[1])[:20]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(items) + 0.8))
    ax.barh([_short(k) for k, _ in items][::-1], [v for _, v in items][::-1], color="#3f72af")
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    return _png_tag(_figure_png(fig), title)


def _short(value: Any) -> str:
    """IRIs by their local name, for chart labels."""
    text = str(value)
    return text.rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1] if "://" in text else text


# --- renderers per output kind --------------------------------------------------------------------------


@renders(".parquet")
def _render_parquet(path: Path) -> str:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    parts = [f"<p>{table.num_rows} rows; columns: {_esc(', '.join(table.column_names))}</p>"]
    for column in COUNTED_COLUMNS:
        if column in table.column_names and table.num_rows:
            values = table.column(column).to_pylist()
            flat = [v for x in values for v in (x if isinstance(x, list) else [x]) if v is not None]
            counts: dict[str, int] = {}
            for v in flat:
                counts[v] = counts.get(v, 0) + 1
            if 1 < len(counts) <= 500 and max(counts.values()) > 1:  # all-unique columns say nothing
                parts.append(_bar_chart(counts, f"{path.stem}: rows by {column}"))
    return "".join(parts)


def _flatten(data: Any, prefix: str = "") -> list[list[Any]]:
    """Scalars of a JSON document as (key path, value) rows; long lists are summarised."""
    rows: list[list[Any]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            rows += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        if all(not isinstance(x, dict | list) for x in data) and len(data) <= 10:
            rows.append([prefix, ", ".join(map(str, data))])
        else:
            for i, item in enumerate(data[:5]):
                rows += _flatten(item, f"{prefix}[{i}]")
            if len(data) > 5:
                rows.append([prefix, f"... {len(data)} items in all"])
    else:
        rows.append([prefix, data])
    return rows


@renders(".json")
def _render_json(path: Path) -> str:
    rows = _flatten(json.loads(path.read_text(encoding="utf-8")))
    shown = rows[:60]
    more = f"<p>... {len(rows) - 60} more values in {_esc(path.name)}</p>" if len(rows) > 60 else ""
    return _table(shown, ["key", "value"]) + more


@renders(".png")
def _render_png(path: Path) -> str:
    return _png_tag(path.read_bytes(), path.name)


# --- summaries per stage type: what a reader looks for first in each stage's results ----------------------

Summary = Callable[[Stage, "LockEntry | None"], str]
_SUMMARIES: dict[str, Summary] = {}


def summarises(stage_type: str) -> Callable[[Summary], Summary]:
    """Register the summary section shown first for stages of a type (called with the stage and its lock entry,
    whose summary holds what varies run to run)."""
    def register(func: Summary) -> Summary:
        _SUMMARIES[stage_type] = func
        return func
    return register


def _counts_table(values: Any, title: str, column: str) -> str:
    """Value counts as a table (the outputs' bar charts below show the same counts)."""
    rows = [[_short(k), int(v)] for k, v in values.value_counts().items()]
    return f"<h4>{_esc(title)}</h4>" + _table(rows, [column, "count"])


def _json_out(stage: Stage, name: str) -> dict[str, Any] | None:
    path = stage.outs.get(name)
    return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.exists() else None


@summarises("extract")
def _extraction_summary(stage: Stage, entry: LockEntry | None) -> str:
    from kgpipe.artifacts import read_table

    parts = ['<div class="summary" id="extraction-counts"><h3>Extraction counts</h3>']
    mentions, relations = stage.outs.get("mentions"), stage.outs.get("relations")
    if mentions is not None and mentions.exists():
        table = read_table(mentions)
        parts.append(f"<p>{len(table)} mentions in {table['doc_id'].nunique()} documents</p>")
        parts.append(_counts_table(table["label"], "mentions by label", "label"))
        if "source" in table:
            parts.append(_counts_table(table["source"], "mentions by how they were found", "found by"))
    if relations is not None and relations.exists():
        table = read_table(relations)
        parts.append(f"<p>{len(table)} relations</p>")
        parts.append(_counts_table(table["relation"], "relations by relation", "relation"))
    return "".join(parts) + "</div>"


@summarises("fuse")
def _fusion_summary(stage: Stage, entry: LockEntry | None) -> str:
    from kgpipe.explore import fusion_summary

    report = _json_out(stage, "report")
    if report is None:
        return ""
    summary = fusion_summary(report)
    entities = report.get("entities", {})
    overlap = summary.overlap
    overlap_rows = [[r.graph_a, r.graph_b, r.nodes_shared, r.nodes_jaccard, r.nodes_overlap_coefficient,
                     r.edges_shared, r.edges_jaccard, r.edges_overlap_coefficient] for r in overlap.itertuples()]
    merge_rows = summary.largest_merges[["label", "mentions", "names", "surface forms"]].values.tolist()
    parts = ['<div class="summary" id="fusion-report"><h3>Fusion report</h3>',
             _table([[k, v] for k, v in entities.items()], ["entities", "count"]),
             "<h4>Overlap similarity between source graphs</h4>",
             _table(overlap_rows, ["graph", "graph", "shared nodes", "node Jaccard", "node overlap coefficient",
                                   "shared edges", "edge Jaccard", "edge overlap coefficient"]),
             "<h4>Largest merges</h4>",
             _table(merge_rows, ["entity", "mentions", "names", "surface forms (mentions)"])]
    if len(summary.conflicts):
        parts += ["<h4>Conflicting values of functional relations</h4>",
                  _table(summary.conflicts.values.tolist(), ["entity", "relation", "values"])]
    return "".join(parts) + "</div>"


def _metric_rows(metrics: dict[str, Any]) -> list[list[Any]]:
    names = [k for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    sides = [side for side in ("head", "tail") if isinstance(metrics.get(side), dict)]
    return [[name, _fmt(metrics[name]), *(_fmt(metrics[side].get(name)) for side in sides)] for name in names]


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@summarises("embed")
def _embedding_summary(stage: Stage, entry: LockEntry | None) -> str:
    from kgpipe.explore import training_history

    metrics = _json_out(stage, "metrics")
    if metrics is None:
        return ""
    test = metrics.get("test", {})
    sides = [side for side in ("head", "tail") if isinstance(test.get(side), dict)]
    training = metrics.get("training", {})
    # timings vary run to run, so they are in the lock entry's summary, not in metrics.json
    seconds = _timings(entry).get("training_seconds", "?")
    config = metrics.get("config", {})
    parts = ['<div class="summary" id="embedding-metrics"><h3>Embedding metrics</h3>',
             f"<p>{_esc(config.get('model', ''))}, {_esc(config.get('model_kwargs', {}).get('embedding_dim', ''))} "
             f"dimensions; {_esc(metrics.get('data', {}).get('entities', '?'))} entities, "
             f"{_esc(metrics.get('data', {}).get('training_triples', '?'))} training triples; "
             f"{_esc(training.get('epochs', '?'))} epochs in {_esc(_fmt(seconds))} s"
             f"{' (stopped early)' if training.get('stopped_early') else ''}</p>",
             _table(_metric_rows(test), ["test metric", "both sides", *sides])]
    history = training_history(metrics)
    plot = stage.outs.get("loss_plot")
    if plot is not None and plot.exists():   # the stage's own plot of the same curve
        parts.append(_png_tag(plot.read_bytes(), "embedding loss curve"))
    elif len(history):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 2.8))
        ax.plot(history["epoch"], history["loss"], color="#3f72af")
        ax.set(xlabel="epoch", ylabel="training loss", title="loss curve")
        metric = history.columns[-1]
        validated = history.dropna(subset=[metric])
        if len(validated):
            twin = ax.twinx()
            twin.plot(validated["epoch"], validated[metric], color="#ff9800", marker="o")
            twin.set_ylabel(metric.replace("_", " "))
        parts.append(_png_tag(_figure_png(fig), "embedding loss curve"))
    parts += [f"<p class='warning'>{_esc(w)}</p>" for w in metrics.get("warnings", [])]
    return "".join(parts) + "</div>"


@summarises("inject")
def _injection_summary(stage: Stage, entry: LockEntry | None) -> str:
    metrics = _json_out(stage, "metrics")
    if metrics is None:
        return ""
    rows = [[k, _fmt(v)] for k, v in metrics.items() if not isinstance(v, dict | list)]
    return ('<div class="summary" id="injection-metrics"><h3>Injection metrics</h3>'
            + _table(rows, ["metric", "value"]) + "</div>")


# --- the page --------------------------------------------------------------------------------------------


def _timings(entry: LockEntry | None) -> dict[str, Any]:
    """A stage's run-dependent measurements (seconds, peak memory) from its lock entry's summary."""
    timings = entry.summary.get("timings") if entry is not None else None
    return timings if isinstance(timings, dict) else {}


def _timings_table(entry: LockEntry | None) -> str:
    rows = [[key, _fmt(value)] for key, value in _flatten(_timings(entry))]
    if not rows:
        return ""
    return ('<div class="timings"><h4>Timings of this run (from the lock file)</h4>'
            + _table(rows, ["step", "value"]) + "</div>")


def _status_word(st: StageStatus) -> str:
    if not st.stale:
        return "up to date"
    return "never run" if st.reasons == ["never run"] else "stale"


def _dag_png(pipeline: Pipeline, statuses: dict[str, StageStatus], lock: dict[str, LockEntry]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    graph = build_graph(pipeline)
    for layer, names in enumerate(nx.topological_generations(graph)):
        for name in names:
            graph.nodes[name]["layer"] = layer
    pos = nx.multipartite_layout(graph, subset_key="layer") if graph.number_of_nodes() > 1 else {
        n: (0.0, 0.0) for n in graph}
    fig, ax = plt.subplots(figsize=(max(4, 2.2 * (1 + max(graph.nodes[n]["layer"] for n in graph))), 3))
    colours = [STATUS_COLOURS[_status_word(statuses[n])] for n in graph]
    labels = {n: f"{n}\n{lock[n].duration_s:.2f}s" if n in lock else n for n in graph}
    nx.draw_networkx(graph, pos, ax=ax, node_color=colours, labels=labels, node_size=2600, font_size=8,
                     arrowsize=15, node_shape="s")
    ax.set_axis_off()
    ax.margins(0.25)
    return _figure_png(fig)


def _stage_section(pipeline: Pipeline, stage: Stage, entry: LockEntry | None = None) -> str:
    parts = [f'<section><h2>{_esc(stage.name)} <small>({_esc(stage.type.name)} '
             f'v{stage.type.version})</small></h2>']
    summary = _SUMMARIES.get(stage.type.name)
    shown = ""
    if summary is not None:
        try:
            shown = summary(stage, entry)
        except Exception as exc:  # a half-written or older artifact must not cost the whole report
            shown = (f"<p class='warning'>no summary for {_esc(stage.name)}: {_esc(type(exc).__name__)}: "
                     f"{_esc(exc)}</p>")
        parts.append(shown)
    parts.append(_timings_table(entry))
    for name, path in stage.outs.items():
        if not path.exists():
            parts.append(f"<p><b>{_esc(name)}</b>: not produced yet</p>")
            continue
        renderer = _RENDERERS.get(path.suffix.lower())
        body = renderer(path) if renderer else f"<p>{_human(_size(path))}</p>"
        if path.suffix.lower() == ".png" and body.split('src="', 1)[-1].split('"', 1)[0] in shown:
            body = "<p>shown in the summary above</p>"
        if path.is_dir():
            body += "".join(f"<h4>{_esc(f.name)}</h4>{_RENDERERS[f.suffix.lower()](f)}"
                            for f in sorted(path.iterdir()) if f.suffix.lower() in (".png", ".json"))
        parts.append(f"<h3>{_esc(name)} <small>{_esc(pipeline.rel(path))}</small></h3>{body}")
    return "".join(parts) + "</section>"


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;background:#fff}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#eef}h2{border-bottom:2px solid #3f72af;margin-top:2em}
small{color:#666;font-weight:normal}img{max-width:100%;display:block;margin:.5em 0}
.status{display:inline-block;padding:1px 6px;border-radius:3px;color:#fff}
.summary{background:#f7f9fc;border-left:4px solid #3f72af;padding:.2em 1em;margin:1em 0}.warning{color:#b35900}
"""

# Lets a browser test (and a reader) see at a glance that every inlined image decoded.
CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  document.body.setAttribute('data-images-total', images.length);
  document.body.setAttribute('data-images-rendered',
    images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length);
});
"""


def build_report(pipeline: str | Path | Pipeline, out: Path | None = None) -> Path:
    """Write the report of the pipeline's last run; returns the HTML file's path."""
    pipe = as_pipeline(pipeline)
    statuses = {st.name: st for st in status(pipe)}
    lock = LockFile.read(Workspace(pipe).lock_path).stages
    order = topological_order(build_graph(pipe))
    last = max((lock[n].started_at for n in order if n in lock), default=None)
    stamp = (datetime.fromisoformat(last) if last else datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    out = out or pipe.artifacts / "reports" / f"{pipe.name}-{stamp}.html"

    rows = []
    for name in order:
        stage, st, entry = pipe.stages[name], statuses[name], lock.get(name)
        word = _status_word(st)
        rows.append([name, stage.type.name, word, "; ".join(st.reasons), entry.started_at if entry else "",
                     f"{entry.duration_s:.2f}s" if entry else "",
                     _human(sum(_size(p) for p in stage.dep_paths())),
                     _human(sum(_size(p) for p in stage.out_paths())),
                     ", ".join(f"{k}={v}" for k, v in (entry.summary if entry else {}).items()
                               if not isinstance(v, dict | list))])
    body = [
        f"<h1>kgpipe run report: {_esc(pipe.name)}</h1>",
        f"<p>pipeline <code>{_esc(pipe.path)}</code>; last run {_esc(last or 'never')}; report written "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}</p>",
        _png_tag(_dag_png(pipe, statuses, lock), "pipeline DAG"),
        _table(rows, ["stage", "type", "status", "why", "started", "duration", "inputs", "outputs", "counts"]),
        *(_stage_section(pipe, pipe.stages[name], lock.get(name)) for name in order),
    ]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>kgpipe report {_esc(pipe.name)}</title>"
            f"<style>{CSS}</style><script>{CHECK_SCRIPT}</script></head><body>{''.join(body)}</body></html>")
    from kgpipe.atomic import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    return out
