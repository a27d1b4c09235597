"""The report's DAG picture: stages as boxes in columns by topological layer, an arrow from each stage to the
stages that read its outputs. An arrow between neighbouring columns is a straight line across the gap between
them; one that skips columns runs in a lane above every box of the columns it skips, so that it never crosses a
box. The layout is plain coordinates (DagLayout), so that tests can check the geometry of what is drawn.

Skipping arrows leave and enter their boxes a quarter of the box height above the middle, where the straight
arrows between neighbouring columns do not run, so that each arrow head stays visible; lanes are shared by
arrows whose spans do not overlap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kgpipe.config import Pipeline

BOX_WIDTH, BOX_HEIGHT = 1.6, 0.8
COLUMN_STEP, ROW_STEP = 2.8, 1.2   # box centre to box centre
LANE_GAP = 0.3                     # between lanes of skipping edges, and from the boxes below them
Point = tuple[float, float]


@dataclass(frozen=True)
class Box:
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def left(self) -> Point:
        return self.x0, (self.y0 + self.y1) / 2

    @property
    def right(self) -> Point:
        return self.x1, (self.y0 + self.y1) / 2


@dataclass(frozen=True)
class EdgePath:
    source: str
    target: str
    points: tuple[Point, ...]   # a polyline from the source box's right side to the target box's left side

    @property
    def skips(self) -> bool:
        return len(self.points) > 2


@dataclass(frozen=True)
class DagLayout:
    boxes: dict[str, Box]
    layers: dict[str, int]
    edges: tuple[EdgePath, ...]

    def bounds(self) -> tuple[float, float, float, float]:
        xs = [x for b in self.boxes.values() for x in (b.x0, b.x1)] + [p[0] for e in self.edges for p in e.points]
        ys = [y for b in self.boxes.values() for y in (b.y0, b.y1)] + [p[1] for e in self.edges for p in e.points]
        return min(xs), min(ys), max(xs), max(ys)


def dag_layout(pipeline: Pipeline) -> DagLayout:
    import networkx as nx

    from kgpipe.dag import build_graph

    graph = build_graph(pipeline)
    layers = {name: layer for layer, names in enumerate(nx.topological_generations(graph)) for name in names}
    columns: dict[int, list[str]] = {}
    for name in pipeline.stages:  # file order within a column
        if name in layers:
            columns.setdefault(layers[name], []).append(name)
    boxes = {}
    for layer, names in columns.items():
        for row, name in enumerate(names):
            cx, cy = layer * COLUMN_STEP, ((len(names) - 1) / 2 - row) * ROW_STEP
            boxes[name] = Box(cx - BOX_WIDTH / 2, cy - BOX_HEIGHT / 2, cx + BOX_WIDTH / 2, cy + BOX_HEIGHT / 2)
    ordered = sorted(graph.edges, key=lambda e: (layers[e[0]], layers[e[1]], e))
    skipping = [(s, t) for s, t in ordered if layers[t] - layers[s] > 1]
    edges: list[EdgePath] = []
    used: list[tuple[float, float, float]] = []   # the lanes taken so far: (y, x from, x to)
    gap = COLUMN_STEP - BOX_WIDTH
    for source, target in ordered:
        start, end = boxes[source].right, boxes[target].left
        if (source, target) not in skipping:
            edges.append(EdgePath(source, target, (start, end)))
            continue
        # leave and enter above the boxes' middle, apart from the straight arrows; the vertical legs of the
        # skipping arrows of one box spread over the gap beside it
        outs = [t for s, t in skipping if s == source]
        ins = [s for s, t in skipping if t == target]
        out_x = start[0] + gap * (outs.index(target) + 1) / (len(outs) + 1) / 2
        in_x = end[0] - gap * (ins.index(source) + 1) / (len(ins) + 1) / 2
        start, end = (start[0], start[1] + BOX_HEIGHT / 4), (end[0], end[1] + BOX_HEIGHT / 4)
        top = max(b.y1 for n, b in boxes.items() if layers[source] < layers[n] < layers[target])
        lane = top + LANE_GAP
        while any(abs(y - lane) < 1e-9 and a < in_x and out_x < b for y, a, b in used):  # a free lane
            lane += LANE_GAP
        used.append((lane, out_x, in_x))
        edges.append(EdgePath(source, target, (start, (out_x, start[1]), (out_x, lane), (in_x, lane),
                                               (in_x, end[1]), end)))
    return DagLayout(boxes, layers, tuple(edges))


def dag_figure(layout: DagLayout, colours: dict[str, str], labels: dict[str, str]) -> Any:
    """The layout drawn on a matplotlib figure: each box filled with its colour and labelled, each edge an arrow
    along its polyline (dashed where it skips columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath

    x0, y0, x1, y1 = layout.bounds()
    fig, ax = plt.subplots(figsize=(max(4.0, (x1 - x0 + 1) * 0.9), max(2.2, (y1 - y0 + 1) * 0.9)))
    for name, box in layout.boxes.items():
        ax.add_patch(FancyBboxPatch((box.x0, box.y0), box.x1 - box.x0, box.y1 - box.y0,
                                    boxstyle="round,pad=0,rounding_size=0.08", facecolor=colours[name],
                                    edgecolor="#555555", linewidth=0.8))
        ax.text((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, labels[name], ha="center", va="center", fontsize=8)
    for edge in layout.edges:
        codes = [MplPath.MOVETO] + [MplPath.LINETO] * (len(edge.points) - 1)
        ax.add_patch(FancyArrowPatch(path=MplPath(edge.points, codes), arrowstyle="-|>", mutation_scale=12,
                                     color="#3f72af" if edge.skips else "#333333", linewidth=1.0,
                                     linestyle="--" if edge.skips else "-"))
    ax.set_xlim(x0 - 0.3, x1 + 0.3)
    ax.set_ylim(y0 - 0.3, y1 + 0.3)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return fig
