"""A pair's match weight as a waterfall chart, the picture Splink users debug with: one row per step, the
prior's weight first, then each comparison's log2(m/u) as a bar from the running total before it to the total
after it (green where it adds, red where it takes away, grey where the level is missing and adds nothing), and
last the match weight as a bar from 0, with the probability.

Inline SVG, no script and no library, so the self-contained run report (kgpipe.report) and the explorer's
/explain page (kgpipe.web) draw the same picture. Every bar has a <title> (what a pointer or a screen reader
shows) and the same numbers follow as a table; every text from data goes through kgpipe.html.esc.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kgpipe.html import esc

if TYPE_CHECKING:
    from kgpipe.kg.explain import ExplanationTerm, PairExplanation
    from kgpipe.summary import PairChart

ROW = 24            # px per step
LABEL_WIDTH = 220   # the steps' names, left of the bars
BAR_WIDTH = 380
VALUE_WIDTH = 170   # each step's weight and running total, right of the bars
TOP, BOTTOM = 8, 34
COLOURS = {"prior": "#607d8b", "up": "#2e7d32", "down": "#c62828", "missing": "#9e9e9e", "total": "#3f72af"}


@dataclass(frozen=True)
class Bar:
    """One step of the waterfall: `kind` one of COLOURS; the bar runs from `start` to `end` (log2 units)."""

    kind: str
    label: str
    start: float
    end: float
    detail: str     # the bar's <title>

    @property
    def weight(self) -> float:
        return self.end - self.start


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def probability_text(p: float) -> str:
    """4 decimals, or 3 significant digits below 0.0001 (a probability of 3e-12 is not 0.0000)."""
    return f"{p:.4f}" if p >= 1e-4 or p == 0 else f"{p:.3g}"


def _term_detail(term: ExplanationTerm, running: float) -> str:
    if term.m is None or term.u is None:
        return f"{term.comparison}: missing (a value absent on one side): adds 0, running total {running:.2f}"
    tf = ", u term-frequency adjusted" if term.tf_adjusted else ""
    return (f"{term.comparison}: {term.level}: m {_number(term.m)}, u {_number(term.u)}{tf}; log2(m/u) "
            f"{term.weight:+.2f}, running total {running:.2f}")


def bars(explanation: PairExplanation) -> list[Bar]:
    """The waterfall's steps: the prior, one per comparison (in the weights' order), the match weight."""
    prior = explanation.prior_weight
    out = [Bar("prior", "prior", 0.0, prior, f"prior {_number(explanation.prior)}: log2(prior / (1 - prior)) "
                                             f"{prior:+.2f}")]
    running = prior
    for term in explanation.terms:
        start, running = running, running + term.weight
        kind = "missing" if term.m is None else "up" if term.weight >= 0 else "down"
        out.append(Bar(kind, f"{term.comparison}: {term.level}", start, running, _term_detail(term, running)))
    out.append(Bar("total", "match weight", 0.0, explanation.total,
                   f"match weight {explanation.total:.2f}: probability {probability_text(explanation.probability)}"))
    return out


def _domain(steps: Sequence[Bar]) -> tuple[float, float]:
    ends = [0.0, *(b.start for b in steps), *(b.end for b in steps)]
    low, high = min(ends), max(ends)
    if high - low < 1e-9:
        low, high = low - 1.0, high + 1.0
    pad = (high - low) * 0.03
    return low - pad, high + pad


def waterfall_svg(explanation: PairExplanation, label: str = "") -> str:
    """The waterfall as an inline <svg> (role img; `label` names it for screen readers)."""
    steps = bars(explanation)
    low, high = _domain(steps)

    def x(value: float) -> float:
        return LABEL_WIDTH + (value - low) / (high - low) * BAR_WIDTH

    width, height = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH, TOP + ROW * len(steps) + BOTTOM
    probability = probability_text(explanation.probability)
    name = label or f"match weight waterfall: {explanation.total:.2f}, probability {probability}"
    parts = [f'<svg class="waterfall-chart" xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" aria-label="{esc(name)}" '
             'font-family="system-ui, sans-serif" font-size="12">', f"<title>{esc(name)}</title>"]
    zero = x(0.0)
    parts.append(f'<line x1="{zero:.1f}" y1="{TOP - 4}" x2="{zero:.1f}" y2="{TOP + ROW * len(steps) + 2}" '
                 'stroke="#555" stroke-dasharray="3,3"/>')
    for k, bar in enumerate(steps):
        top = TOP + k * ROW
        left, right = sorted((x(bar.start), x(bar.end)))
        if right - left < 2:  # a step that adds nothing is still drawn: a tick at its place
            left, right = left - 1, left + 1
        middle = top + ROW / 2 + 4
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{middle:.1f}" text-anchor="end">{esc(bar.label)}</text>')
        parts.append(f'<rect class="bar {bar.kind}" data-weight="{bar.weight:.4f}" x="{left:.1f}" y="{top + 3}" '
                     f'width="{right - left:.1f}" height="{ROW - 6}" fill="{COLOURS[bar.kind]}">'
                     f"<title>{esc(bar.detail)}</title></rect>")
        if 0 < k < len(steps) - 1:  # a connector from this bar's end to the next bar's start
            parts.append(f'<line x1="{x(bar.end):.1f}" y1="{top + ROW - 3}" x2="{x(bar.end):.1f}" '
                         f'y2="{top + ROW + 3}" stroke="#777"/>')
        value = (f"{bar.end:.2f}, p {probability}" if bar.kind == "total"
                 else f"{bar.weight:+.2f} \u2192 {bar.end:.2f}")
        parts.append(f'<text x="{LABEL_WIDTH + BAR_WIDTH + 8}" y="{middle:.1f}">{esc(value)}</text>')
    axis = TOP + ROW * len(steps) + 16
    parts += [f'<text x="{LABEL_WIDTH}" y="{axis}" fill="#555">{low:.1f}</text>',
              f'<text x="{LABEL_WIDTH + BAR_WIDTH}" y="{axis}" fill="#555" text-anchor="end">{high:.1f}</text>']
    if LABEL_WIDTH + 40 < zero < LABEL_WIDTH + BAR_WIDTH - 40:  # 0 marked where it does not overlap an end
        parts.append(f'<text x="{zero:.1f}" y="{axis}" fill="#555" text-anchor="middle">0</text>')
    parts += [f'<text x="{LABEL_WIDTH + BAR_WIDTH / 2}" y="{axis + 14}" fill="#555" text-anchor="middle">'
              "match weight (log2 of the odds)</text>", "</svg>"]
    return "".join(parts)


def waterfall_table(explanation: PairExplanation) -> str:
    """The waterfall's numbers as an HTML table: each comparison's level, m, u, log2(m/u) and running total."""
    rows = [("prior", "", _number(explanation.prior), "", f"{explanation.prior_weight:+.2f}",
             f"{explanation.prior_weight:.2f}")]
    running = explanation.prior_weight
    for term in explanation.terms:
        running += term.weight
        u = _number(term.u) + (" (tf)" if term.tf_adjusted else "")
        rows.append((term.comparison, term.level, _number(term.m), u, f"{term.weight:+.2f}", f"{running:.2f}"))
    rows.append(("match weight", "", "", "", "", f"{explanation.total:.2f}"))
    head = "".join(f"<th>{esc(h)}</th>" for h in ("step", "level", "m (prior)", "u", "log2(m/u)", "running total"))
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<table class="waterfall-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            f"<p>probability {probability_text(explanation.probability)}</p>")


def waterfall_figure(explanation: PairExplanation, caption: str, *, open_numbers: bool = False) -> str:
    """The chart in a <figure> with its caption (escaped here) and the table below it, folded unless
    `open_numbers`."""
    fold = " open" if open_numbers else ""
    return (f'<figure class="waterfall"><figcaption>{esc(caption)}</figcaption>'
            f"{waterfall_svg(explanation, caption)}<details{fold}><summary>the numbers</summary>"
            f"{waterfall_table(explanation)}</details></figure>")


def chart_html(chart: PairChart) -> str:
    """A stage summary's pair explanation (kgpipe.summary.PairChart): its title, the two names, the note and the
    waterfall."""
    caption = f"{chart.title}: '{chart.head}' and '{chart.tail}'" + (f" ({chart.note})" if chart.note else "")
    return waterfall_figure(chart.explanation, caption)
