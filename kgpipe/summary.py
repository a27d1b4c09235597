"""What a stage type says about its results, in a form no renderer owns: headline counts, metrics, titled tables,
images (artifact files), curves (data to plot), pair explanations (match-weight waterfalls), notes and warnings.
StageType.summarise() returns one; the static report (kgpipe.report) renders it to HTML and the web app to JSON
(StageSummary.as_json)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgpipe.kg.iri import local_name

if TYPE_CHECKING:
    from kgpipe.config import Stage
    from kgpipe.kg.explain import PairExplanation
    from kgpipe.lockfile import LockEntry

Cell = str | int | float | None


@dataclass(frozen=True)
class SummaryTable:
    """A titled table (the title may be empty); `digits`: how many decimals to show of its floats (None: all)."""

    title: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[Cell, ...]]
    digits: int | None = None


@dataclass(frozen=True)
class Series:
    """One line of a curve; `secondary` lines share the x axis and get their own y axis on the right."""

    name: str
    x: list[float]
    y: list[float]
    secondary: bool = False


@dataclass(frozen=True)
class Curve:
    """A line plot, drawn by whoever renders the summary (the report with matplotlib)."""

    title: str
    x_label: str
    series: list[Series]


@dataclass(frozen=True)
class SummaryImage:
    """An image the stage wrote (a PNG artifact), shown as it is."""

    alt: str
    path: Path


@dataclass(frozen=True)
class PairChart:
    """Why two names scored as they did (kgpipe.kg.explain's terms), drawn as a waterfall by whoever renders
    the summary (kgpipe.explain_chart). head and tail: the names as `kgpipe explain` takes them; `note`: what
    the run did with the pair."""

    title: str
    head: str
    tail: str
    explanation: PairExplanation
    note: str = ""


@dataclass
class StageSummary:
    """A stage's results for a reader. `anchor` names the summary (the report's element id); `counts` are
    headline numbers ("mentions": 120), `metrics` named measurements or settings (floats shown to 4 decimals)."""

    title: str
    anchor: str
    counts: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float | str] = field(default_factory=dict)
    tables: list[SummaryTable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    images: list[SummaryImage] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    explanations: list[PairChart] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: tables as {title, columns, rows}, images by path (the web app serves the file)."""
        return {
            "title": self.title, "anchor": self.anchor, "counts": dict(self.counts), "metrics": dict(self.metrics),
            "tables": [{"title": t.title, "columns": list(t.columns), "rows": [list(r) for r in t.rows],
                        "digits": t.digits}
                       for t in self.tables],
            "notes": list(self.notes), "warnings": list(self.warnings),
            "images": [{"alt": i.alt, "path": str(i.path)} for i in self.images],
            "curves": [{"title": c.title, "x_label": c.x_label,
                        "series": [{"name": s.name, "x": s.x, "y": s.y, "secondary": s.secondary}
                                   for s in c.series]} for c in self.curves],
            "explanations": [{"title": p.title, "head": p.head, "tail": p.tail, "note": p.note,
                              "explanation": p.explanation.to_dict()} for p in self.explanations],
        }


def counts_table(values: Any, title: str, column: str) -> SummaryTable:
    """A pandas Series' value counts as a table (IRIs by their local name)."""
    return SummaryTable(title, (column, "count"), [(short(k), int(v)) for k, v in values.value_counts().items()])


def short(value: Any) -> str:
    """IRIs by their local name, for chart labels and counts."""
    text = str(value)
    return local_name(text) if "://" in text else text


def scalar(value: Any) -> float | str:
    """A JSON value as a metric: numbers as they are, anything else (booleans, None) as text."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def json_output(outs: dict[str, Path], name: str) -> dict[str, Any] | None:
    """A stage's JSON output, parsed, or None when the stage has no such output or it is not written."""
    import json

    path = outs.get(name)
    return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.exists() else None


def try_summarise(stage: Stage, entry: LockEntry | None) -> StageSummary | str | None:
    """The stage type's summary (None: it gives none), or the error that stopped it as text: a half-written or
    older artifact must not cost a whole report or page."""
    try:
        return stage.type.summarise(stage, entry)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
