"""The run report: one self-contained HTML file (images inlined) describing a pipeline's last run.

A table of contents; the DAG with each stage's status and duration (and a legend), input and output sizes; per
stage, the summary its type gives (StageType.summarise: extraction counts, fusion report, embedding metrics and
loss curve, injection metrics), what the run that wrote its outputs changed in them (the run history's delta,
kgpipe.delta: fuse's entities added, merged, split...), its params, and what it produced: counts of table
columns such as label and relation, JSON reports and metrics as tables (long ones collapsed), PNG outputs
inline. Durations and a stage's `timings` (seconds, peak memory) come from its lock entry, never from its
artifacts, which hold only what the same inputs always give.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kgpipe.config import Pipeline, Stage, as_pipeline
from kgpipe.dag import StageStatus, build_graph, topological_order
from kgpipe.explain_chart import chart_html
from kgpipe.hashing import iter_files
from kgpipe.history import History, delta_behind
from kgpipe.html import esc as _esc
from kgpipe.lockfile import LockEntry, LockFile
from kgpipe.runner import Workspace, status
from kgpipe.summary import Curve, StageSummary, SummaryTable, short, try_summarise

# Columns of output tables worth a bar chart of value counts, wherever they appear.
COUNTED_COLUMNS = ("label", "kg_type", "relation", "source", "type")
STATUS_COLOURS = {"up to date": "#4caf50", "stale": "#ff9800", "never run": "#9e9e9e"}
COLLAPSE_ROWS = 12  # key/value tables longer than this are folded into a <details> element

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


def _table(rows: list[list[Any]] | list[tuple[Any, ...]], header: list[str] | tuple[str, ...],
           css_class: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{css_class}"' if css_class else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv_table(rows: list[list[Any]], header: list[str], what: str = "values") -> str:
    """A key/value dump (params, metrics, a JSON file's values): folded into <details> when it is long."""
    table = _table(rows, header, "kv")
    if len(rows) <= COLLAPSE_ROWS:
        return table
    return f"<details><summary>{len(rows)} {_esc(what)} (click to show)</summary>{table}</details>"


def _bar_chart(counts: dict[str, int], title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(counts.items(), key=lambda kv: -kv[1])[:20]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(items) + 0.8))
    ax.barh([short(k) for k, _ in items][::-1], [v for _, v in items][::-1], color="#3f72af")
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    return _png_tag(_figure_png(fig), title)


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
    return _kv_table(shown, ["key", "value"], f"values of {path.name}") + more


@renders(".png")
def _render_png(path: Path) -> str:
    return _png_tag(path.read_bytes(), path.name)


# --- a stage type's summary (kgpipe.summary.StageSummary) as HTML ----------------------------------------


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _cell(value: Any, digits: int | None) -> Any:
    return f"{value:.{digits}f}" if digits is not None and isinstance(value, float) else value


def _summary_table(table: SummaryTable) -> str:
    rows = [[_cell(c, table.digits) for c in row] for row in table.rows]
    return (f"<h4>{_esc(table.title)}</h4>" if table.title else "") + _table(rows, table.columns)


def _curve_png(curve: Curve) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.set(xlabel=curve.x_label, title=curve.title)
    twin = None
    for series in curve.series:
        if series.secondary:
            twin = twin or ax.twinx()
            twin.plot(series.x, series.y, color="#ff9800", marker="o")
            twin.set_ylabel(series.name)
        else:
            ax.plot(series.x, series.y, color="#3f72af")
            ax.set_ylabel(series.name)
    return _figure_png(fig)


def render_summary(summary: StageSummary, anchor: str | None = None) -> str:
    """A stage summary as an HTML block (the report's; the web app's run page may show the same)."""
    counts = ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in summary.counts.items())
    parts = [f'<div class="summary" id="{_esc(anchor or summary.anchor)}"><h3>{_esc(summary.title)}</h3>',
             *(f"<p>{_esc(note)}</p>" for note in summary.notes),
             f'<p class="counts">{_esc(counts)}</p>' if counts else "",
             _kv_table([[k, _fmt(v)] for k, v in summary.metrics.items()], ["metric", "value"], "metrics")
             if summary.metrics else "",
             *(_summary_table(table) for table in summary.tables),
             *(_png_tag(image.path.read_bytes(), image.alt) for image in summary.images if image.path.exists()),
             *(_png_tag(_curve_png(curve), curve.title) for curve in summary.curves),
             *(chart_html(chart) for chart in summary.explanations),
             *(f"<p class='warning'>{_esc(w)}</p>" for w in summary.warnings)]
    return "".join(parts) + "</div>"


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
            + _kv_table(rows, ["step", "value"], "timings") + "</div>")


def _params_table(stage: Stage) -> str:
    rows = _flatten(stage.params_dict())
    return f"<h3>params</h3>{_kv_table(rows, ['param', 'value'], 'params')}" if rows else ""


def _dag_png(pipeline: Pipeline, statuses: dict[str, StageStatus], lock: dict[str, LockEntry]) -> bytes:
    from kgpipe.report_dag import dag_figure, dag_layout

    colours = {n: STATUS_COLOURS[st.word] for n, st in statuses.items()}
    labels = {n: f"{n}\n{lock[n].duration_s:.2f}s" if n in lock else n for n in pipeline.stages}
    return _figure_png(dag_figure(dag_layout(pipeline), colours, labels))


def dag_image(pipeline: Pipeline, statuses: dict[str, StageStatus], lock: dict[str, LockEntry]) -> str:
    """The DAG coloured by status, with durations, as an inline <img> tag (the report's and the explorer's)."""
    return _png_tag(_dag_png(pipeline, statuses, lock), "pipeline DAG")


def _legend() -> str:
    swatches = "".join(f'<li><span class="swatch" style="background:{colour}"></span>{_esc(word)}</li>'
                       for word, colour in STATUS_COLOURS.items())
    return ('<div class="legend" id="legend"><b>Legend</b><ul>' + swatches
            + "<li>&rarr; solid arrow: the stage on the right reads an output of the stage on the left</li>"
            "<li>&#8674; dashed arrow above the boxes: the same, for a stage further right (it skips the columns "
            "between)</li><li>box: stage name and how long its last run took</li></ul></div>")


def _anchor_ids(names: list[str], taken: set[str]) -> dict[str, str]:
    """A unique, valid element id per name: 'stage-<name>' with characters outside [A-Za-z0-9_-] replaced."""
    ids = {}
    for name in names:
        base = "stage-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)
        anchor, n = base, 1
        while anchor in taken:
            n += 1
            anchor = f"{base}-{n}"
        taken.add(anchor)
        ids[name] = anchor
    return ids


def _unique(anchor: str, name: str, taken: set[str]) -> str:
    found = anchor if anchor not in taken else f"{anchor}-{re.sub(r'[^A-Za-z0-9_-]', '-', name)}"
    while found in taken:
        found += "-x"
    taken.add(found)
    return found


def _contents(order: list[str], pipe: Pipeline, ids: dict[str, str],
              summaries: dict[str, list[tuple[StageSummary, str]]]) -> str:
    items = []
    for name in order:
        sub = ""
        if summaries.get(name):
            sub = "<ul>" + "".join(f'<li><a href="#{anchor}">{_esc(summary.title)}</a></li>'
                                   for summary, anchor in summaries[name]) + "</ul>"
        items.append(f'<li><a href="#{ids[name]}">{_esc(name)}</a> <small>({_esc(pipe.stages[name].type.name)})'
                     f"</small>{sub}</li>")
    return ('<nav id="contents"><h2>Contents</h2><ul><li><a href="#overview">Pipeline overview</a> '
            '<small>(DAG, legend, status of every stage)</small></li>' + "".join(items) + "</ul></nav>")


def _stage_section(pipeline: Pipeline, stage: Stage, entry: LockEntry | None, anchor: str,
                   summary: StageSummary | str | None, summary_anchor: str | None,
                   changes: tuple[StageSummary, str] | None) -> str:
    parts = [f'<section id="{anchor}"><h2>{_esc(stage.name)} <small>({_esc(stage.type.name)} '
             f'v{stage.type.version})</small></h2>']
    shown: set[Path] = set()
    if isinstance(summary, str):
        parts.append(f"<p class='warning'>no summary for {_esc(stage.name)}: {_esc(summary)}</p>")
    elif summary is not None:
        parts.append(render_summary(summary, summary_anchor))
        shown = {image.path for image in summary.images}
    if changes is not None:
        parts.append(render_summary(*changes))
    parts.append(_timings_table(entry))
    parts.append(_params_table(stage))
    for name, path in stage.outs.items():
        if not path.exists():
            parts.append(f"<p><b>{_esc(name)}</b>: not produced yet</p>")
            continue
        renderer = _RENDERERS.get(path.suffix.lower())
        body = "<p>shown in the summary above</p>" if path in shown else (
            renderer(path) if renderer else f"<p>{_human(_size(path))}</p>")
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
nav#contents ul{margin:.2em 0}nav#contents li{margin:.1em 0}details summary{cursor:pointer;color:#3f72af}
.legend{font-size:13px}.legend ul{list-style:none;padding-left:0;margin:.2em 0}
.legend li{display:inline-block;margin-right:1.5em}.swatch{display:inline-block;width:1em;height:1em;margin-right:.4em;
vertical-align:middle;border:1px solid #555}
figure.waterfall{margin:1em 0}figure.waterfall figcaption{font-weight:bold;margin-bottom:.3em}
figure.waterfall svg{max-width:100%;height:auto}
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
        word = st.word
        rows.append([name, stage.type.name, word, "; ".join(st.reasons), entry.started_at if entry else "",
                     f"{entry.duration_s:.2f}s" if entry else "",
                     _human(sum(_size(p) for p in stage.dep_paths())),
                     _human(sum(_size(p) for p in stage.out_paths())),
                     ", ".join(f"{k}={v}" for k, v in (entry.summary if entry else {}).items()
                               if not isinstance(v, dict | list))])
    taken = {"overview", "contents", "legend"}
    ids = _anchor_ids(order, taken)
    summaries = {name: try_summarise(pipe.stages[name], lock.get(name)) for name in order}
    anchored = {name: (summary, _unique(summary.anchor, name, taken)) for name, summary in summaries.items()
                if isinstance(summary, StageSummary)}
    records = History.of(pipe).records()
    changes = {}
    for name in order:
        behind = delta_behind(records, name, lock.get(name))
        if behind is not None:
            delta_summary = behind[1].summary(behind[0])
            changes[name] = (delta_summary, _unique(delta_summary.anchor, name, taken))
    listed = {name: [found for found in (anchored.get(name), changes.get(name)) if found is not None]
              for name in order}
    body = [
        f"<h1>kgpipe run report: {_esc(pipe.name)}</h1>",
        f"<p>pipeline <code>{_esc(pipe.path)}</code>; last run {_esc(last or 'never')}; report written "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}</p>",
        _contents(order, pipe, ids, listed),
        '<div id="overview"><h2>Pipeline overview</h2>',
        _png_tag(_dag_png(pipe, statuses, lock), "pipeline DAG"), _legend(),
        _table(rows, ["stage", "type", "status", "why", "started", "duration", "inputs", "outputs", "counts"]),
        "</div>",
        *(_stage_section(pipe, pipe.stages[name], lock.get(name), ids[name], summaries[name],
                         anchored[name][1] if name in anchored else None, changes.get(name)) for name in order),
    ]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>kgpipe report {_esc(pipe.name)}</title>"
            f"<style>{CSS}</style><script>{CHECK_SCRIPT}</script></head><body>{''.join(body)}</body></html>")
    from kgpipe.atomic import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    return out
