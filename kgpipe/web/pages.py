"""The explorer's HTML pages, rendered on the server as strings. Every value that comes from data (labels,
ids, sentences, file names) goes through kgpipe.html.esc; the front-end scripts in static/ find their
elements by the ids given in each page."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from kgpipe.html import esc
from kgpipe.kg.iri import local_name
from kgpipe.web import models as m
from kgpipe.web.documents import DocumentList, DocumentView, PatternRow

if TYPE_CHECKING:
    from kgpipe.kg.explain import PairExplanation

NAV = (("/", "Search"), ("/documents", "Documents"), ("/patterns", "Patterns"), ("/map", "Embedding map"),
       ("/query", "Query"), ("/explain", "Explain"), ("/run", "Run"))


@dataclass(frozen=True)
class PageContext:
    """What every page carries: the CSRF token, the snapshot it shows, staleness, whether writes work."""

    csrf_token: str
    snapshot: str
    stale_stages: Sequence[str]
    writes_enabled: bool
    vendor_missing: str | None = None    # a message when the vendored JavaScript is not installed


def entity_href(entity_id: str) -> str:
    return "/entity/" + quote(entity_id, safe="")


def _link(entity_id: str, label: str) -> str:
    return f'<a href="{esc(entity_href(entity_id))}">{esc(label)}</a>'


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table whose cells are already HTML (escape data before passing it)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def layout(ctx: PageContext, title: str, body: str, scripts: Sequence[str] = ()) -> str:
    stale = ""
    if ctx.stale_stages:
        stale = (f'<div id="stale-banner" class="banner">The artifacts are out of date (stale: '
                 f'{esc(", ".join(ctx.stale_stages))}): this page shows the last completed run. `kgpipe run` '
                 "brings them up to date; the page reloads when it commits.</div>")
    vendor = f'<p class="warning" id="vendor-missing">{esc(ctx.vendor_missing)}</p>' if ctx.vendor_missing else ""
    nav = "".join(f'<a href="{href}">{esc(name)}</a>' for href, name in NAV)
    tags = "".join(f'<script src="{esc(src)}"></script>' for src in (*scripts, "/static/status.js"))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf-token" content="{esc(ctx.csrf_token)}"><meta name="kg-snapshot" '
        f'content="{esc(ctx.snapshot)}"><title>{esc(title)} · kgpipe explore</title>'
        '<link rel="icon" href="/static/favicon.svg"><link rel="stylesheet" href="/static/app.css"></head>'
        f'<body><header><nav><b>kgpipe explore</b> {nav}</nav>'
        '<form action="/search" method="get" role="search"><input type="search" name="q" id="search-box" '
        'placeholder="entity label or alias" aria-label="search entities"></form></header>'
        f"{stale}{vendor}<main>{body}</main>{tags}</body></html>")


# --- search and the home page -----------------------------------------------------------------------------


def search_form(q: str, type: str, types: Sequence[str]) -> str:
    options = '<option value="">any type</option>' + "".join(
        f'<option value="{esc(t)}"{" selected" if t == type else ""}>{esc(local_name(t))}</option>' for t in types)
    return ('<form id="search-form" action="/search" method="get">'
            f'<input type="search" name="q" value="{esc(q)}" autofocus placeholder="Albert Einstein, einstien, ...">'
            f'<select name="type">{options}</select><button type="submit">Search</button></form>')


def home(ctx: PageContext, counts: dict[str, int], types: Sequence[str], run_table: str) -> str:
    facts = ", ".join(f"{n:,} {esc(name)}" for name, n in counts.items())
    body = (f"<h1>Explore the graph</h1>{search_form('', '', types)}<p>{facts}</p>"
            f"<h2>Last run</h2>{run_table}")
    return layout(ctx, "Search", body)


def search_results(ctx: PageContext, q: str, type: str, types: Sequence[str], results: m.SearchResults) -> str:
    items = "".join(
        f'<li class="hit">{_link(h.id, h.label)} <span class="tag">{esc(h.match)}</span> '
        f'<small>{esc(", ".join(local_name(t) for t in h.types))} · {h.mentions} mention(s)</small></li>'
        for h in results.results)
    found = f'<ol id="search-results">{items}</ol>' if items else f"<p>No entity matches {esc(q)}.</p>"
    return layout(ctx, f"Search: {q}", f"<h1>Search</h1>{search_form(q, type, types)}{found}")


# --- the entity page -------------------------------------------------------------------------------------


def highlight(sentence: str, head: tuple[int, int] | None, tail: tuple[int, int] | None) -> str:
    """The sentence escaped, its two mentions wrapped in <mark class="head"> / <mark class="tail"> (an
    overlapping second span is left unmarked)."""
    spans = sorted([(s, "head") for s in [head] if s] + [(s, "tail") for s in [tail] if s])
    out, at = [], 0
    for (start, end), kind in spans:
        if start < at or not 0 <= start < end <= len(sentence):
            continue
        out += [esc(sentence[at:start]), f'<mark class="{kind}">{esc(sentence[start:end])}</mark>']
        at = end
    return "".join(out) + esc(sentence[at:])


def evidence_html(items: Sequence[m.Evidence]) -> str:
    parts = []
    for e in items:
        if e.method == "seed":
            parts.append(f'<li class="evidence seed">seed graph <code>{esc(e.seed_file)}</code></li>')
            continue
        where = f'<a href="/document/{esc(quote(e.doc_id or "", safe=""))}">{esc(e.doc_id)}</a>'
        confidence = f"{e.confidence:.2f}" if e.confidence is not None else "?"
        parts.append(f'<li class="evidence text"><q>{highlight(e.sentence or "", e.head_span, e.tail_span)}</q> '
                     f"<small>{where} · {esc(e.method)} <code>{esc(e.pattern)}</code> · confidence {confidence}"
                     "</small></li>")
    return f'<ul class="evidence-list">{"".join(parts)}</ul>'


def _pager(page: m.TriplePage, param: str, other: dict[str, int]) -> str:
    pages = max(1, -(-page.total // page.page_size))
    if pages == 1:
        return ""

    def href(n: int) -> str:
        return "?" + urlencode({**other, param: n})
    prev = f'<a rel="prev" href="{esc(href(page.page - 1))}">previous</a> ' if page.page > 1 else ""
    nxt = f' <a rel="next" href="{esc(href(page.page + 1))}">next</a>' if page.page < pages else ""
    return f'<p class="pager" data-param="{param}">{prev}page {page.page} of {pages}{nxt}</p>'


def _triples(page: m.TriplePage, direction: str, pager: str) -> str:
    rows = [[_link(t.head.id, t.head.label), f'<span title="{esc(t.relation)}">{esc(local_name(t.relation))}</span>',
             _link(t.tail.id, t.tail.label), evidence_html(t.evidence)] for t in page.items]
    title = "Outgoing" if direction == "out" else "Incoming"
    table = _table(["head", "relation", "tail", "evidence"], rows, "triples") if rows else "<p>none</p>"
    return (f'<section id="triples-{direction}" data-total="{page.total}"><h2>{title} triples '
            f"<small>({page.total})</small></h2>{pager}{table}</section>")


def explain_href(head: str, tail: str) -> str:
    return "/explain?" + urlencode({"head": head, "tail": tail})


def entity(ctx: PageContext, e: m.Entity, out: m.TriplePage, incoming: m.TriplePage, relations: m.Relations,
           neighbours: m.Neighbours, why_merged: tuple[str, str] | None = None) -> str:
    """why_merged: two of the entity's mention texts, for a link to /explain (None: no link)."""
    why = (f' <a id="why-merged" href="{esc(explain_href(*why_merged))}" title="how the learned weights score '
           f"'{esc(why_merged[0])}' and '{esc(why_merged[1])}'\">why merged?</a>" if why_merged else "")
    facts = _table(["", ""], [
        ["id", f"<code>{esc(e.id)}</code>"], ["aliases", esc(", ".join(e.aliases)) or "none"],
        ["types", esc(", ".join(e.types)) or "none"],
        ["seed IRI", f"<code>{esc(e.seed_iri)}</code>" if e.seed_iri else "none (from text only)"],
        ["mentions", str(e.mentions) + why], ["sources", esc(", ".join(e.sources))]], "facts")
    pages = {"out_page": out.page, "in_page": incoming.page}
    options = "".join(f'<option value="{esc(r)}">{esc(local_name(r))}</option>' for r in relations.relations)
    predict = ('<section id="link-predictions"><h2>Link predictions</h2>'
               + (f'<label>relation <select id="predict-relation"><option value="">choose a relation</option>'
                  f'{options}</select></label>' if options else "<p>No saved link-prediction model.</p>")
               + f'<div id="predictions" data-entity-id="{esc(e.id)}"></div></section>')
    near = "".join(f"<li>{_link(n.id, n.label)} <small>{n.similarity:.3f}</small></li>" for n in neighbours.items)
    body = (f'<h1 id="entity-label">{esc(e.label)}</h1>{facts}'
            f'<section><h2>Neighbourhood</h2><div id="kg-graph" data-entity-id="{esc(e.id)}"></div></section>'
            + _triples(out, "out", _pager(out, "out_page", pages))
            + _triples(incoming, "in", _pager(incoming, "in_page", pages))
            + predict + '<section id="neighbours"><h2>Nearest neighbours <small>(embedding cosine)</small></h2>'
            + (f"<ol>{near}</ol>" if near else "<p>No embedding for this entity.</p>") + "</section>")
    return layout(ctx, e.label, body,
                  ["/static/vendor/cytoscape.min.js", "/static/graph.js", "/static/predict.js"])


# --- documents and patterns ------------------------------------------------------------------------------


def documents(ctx: PageContext, listing: DocumentList, filters: dict[str, str]) -> str:
    inputs = "".join(f'<label>{name} <input name="{name}" value="{esc(value)}"></label>'
                     for name, value in filters.items())
    rows = [[f'<a href="/document/{esc(quote(r.doc_id, safe=""))}">{esc(r.doc_id)}</a>', esc(r.source),
             str(r.mentions), str(r.relations)] for r in listing.rows]
    pages = max(1, -(-listing.total // 50))
    nav = " ".join(f'<a href="{esc("?" + urlencode({**filters, "page": n}))}">{n}</a>'
                   for n in range(1, pages + 1)) if pages > 1 else ""
    body = (f'<h1>Documents <small>({listing.total})</small></h1><form id="document-filters">{inputs}'
            f'<button type="submit">Filter</button></form><p class="pager">{nav}</p>'
            + _table(["document", "source", "mentions", "relations"], rows, "documents"))
    return layout(ctx, "Documents", body)


def document(ctx: PageContext, view: DocumentView, wrong: frozenset[str]) -> str:
    def button(relation_id: str) -> str:
        if relation_id in wrong:
            return '<span class="tag wrong">marked wrong</span>'
        disabled = "" if ctx.writes_enabled else ' disabled title="corrections are disabled on this address"'
        return (f'<button type="button" class="mark-wrong" data-relation-id="{esc(relation_id)}"{disabled}>'
                "wrong</button>")
    rows = [[highlight(r.sentence or "", r.subject_span, r.object_span), esc(r.subject), esc(r.relation),
             esc(r.object), f"<code>{esc(r.pattern_id)}</code>", f"{r.confidence:.2f}", button(r.relation_id)]
            for r in view.relations]
    body = (f'<h1>{esc(view.doc_id)} <small>{esc(view.source)}</small></h1><div id="document-text">{view.html}</div>'
            f'<h2>Relations <small>({len(view.relations)})</small></h2><form class="review" id="review-form">'
            + _table(["sentence", "subject", "relation", "object", "pattern", "confidence", "review"], rows,
                     "relations") + "</form>")
    return layout(ctx, view.doc_id, body, ["/static/review.js"])


def patterns(ctx: PageContext, rows: Sequence[PatternRow]) -> str:
    cells = [[f'<a href="{esc("/documents?" + urlencode({"pattern": r.pattern_id}))}"><code>{esc(r.pattern_id)}'
              "</code></a>", esc(r.relation), str(r.count), str(r.wrong),
              f"{(r.count - r.wrong) / r.count:.2f}" if r.count else "", f"{r.mean_confidence:.2f}"]
             for r in rows]
    body = ("<h1>Patterns</h1><p>Relations per pattern, and how many were marked wrong in review (the corrections "
            "file feeds <code>kgpipe patterns learn --negatives</code> and <code>kgpipe rel train --negatives"
            "</code>).</p>"
            + _table(["pattern", "relation", "relations", "marked wrong", "reviewed precision bound",
                      "mean confidence"], cells, "patterns"))
    return layout(ctx, "Patterns", body)


# --- map, query, run -------------------------------------------------------------------------------------


def embedding_map(ctx: PageContext) -> str:
    return layout(ctx, "Embedding map", '<h1>Embedding map</h1><div id="kg-map"></div>',
                  ["/static/vendor/plotly.min.js", "/static/map.js"])


def query(ctx: PageContext, text: str, result: m.SparqlResult | None, error: str | None) -> str:
    shown = ""
    if error is not None:
        shown = f'<p class="error">{esc(error)}</p>'
    elif result is not None:
        def cell(c: m.SparqlCell) -> str:
            return _link(c.entity_id, c.value) if c.entity_id else esc(c.value)
        shown = _table(result.columns, [[cell(c) for c in row] for row in result.rows], "sparql-table")
    body = ('<h1>SPARQL</h1><p>SELECT and ASK over the fused graph (graph.ttl); no SERVICE, no FROM, no updates.'
            '</p><form id="sparql-form" action="/query" method="get"><textarea name="query" rows="8" cols="90">'
            f'{esc(text)}</textarea><button type="submit">Run</button></form>'
            f'<div id="sparql-results">{shown}</div>')
    return layout(ctx, "Query", body, ["/static/query.js"])


def explain(ctx: PageContext, head: str, tail: str, result: m.Explanation | None,
            explanation: PairExplanation | None, error: tuple[str, str | None] | None,
            unavailable: tuple[str, str | None] | None) -> str:
    """The /explain page: the form, then the pair's sides and waterfall (result and explanation), or the error
    (message, hint); `unavailable`: why this run cannot be explained at all (shown above the form)."""
    from kgpipe.explain_chart import probability_text, waterfall_figure

    def problem(found: tuple[str, str | None], element: str, cls: str) -> str:
        hint = f'<p class="hint">{esc(found[1])}</p>' if found[1] else ""
        return f'<div id="{element}"><p class="{cls}">{esc(found[0])}</p>{hint}</div>'

    form = ('<form id="explain-form" action="/explain" method="get">'
            f'<label>head <input type="text" name="head" value="{esc(head)}" placeholder="MIT" required></label> '
            f'<label>tail <input type="text" name="tail" value="{esc(tail)}" placeholder="M.I.T." required></label> '
            '<button type="submit">Explain</button></form>')
    shown = ""
    if error is not None:
        shown = problem(error, "explain-error", "error")
    elif result is not None and explanation is not None:
        def links(side: m.ExplainSide) -> str:
            return ", ".join(_link(e.id, e.label) for e in side.entities) or "none"
        rows = [[what, esc(side.asked), esc(side.text), esc(local_name(side.type or "")) or "none",
                 str(side.mentions), links(side)] for what, side in (("head", result.head), ("tail", result.tail))]
        verdict = "the run put them in one entity" if result.together else "the run kept them apart"
        mismatch = (f'<p class="note">The types are incompatible: the probability is the weight\'s times '
                    f"type_mismatch ({result.type_factor:g}).</p>" if result.type_factor != 1.0 else "")
        caption = (f"'{result.head.text}' and '{result.tail.text}': match weight {result.total:.2f}, probability "
                   f"{probability_text(result.probability)}")
        shown = (f'<section id="explanation" data-together="{str(result.together).lower()}" '
                 f'data-probability="{result.probability!r}"><p class="verdict"><b>{esc(verdict)}</b> '
                 f"(stage {esc(result.stage)})</p>"
                 + _table(["", "asked", "read as", "type", "mentions", "entities"], rows, "explain-sides")
                 + waterfall_figure(explanation, caption, open_numbers=True) + mismatch + "</section>")
    body = ("<h1>Why these two names?</h1><p>How the last fuse run scores two names under the match weights it "
            "learned (<code>resolution.learn: em</code>), as <code>kgpipe explain HEAD TAIL</code> prints it: the "
            "prior, each comparison's level and log2(m/u), the match weight and its probability. A name is a "
            "mention text or an entity label.</p>"
            + (problem(unavailable, "explain-unavailable", "warning") if unavailable else "") + form + shown)
    return layout(ctx, "Explain", body)


def run_table(run: m.Run) -> str:
    rows = [[esc(s.name), esc(s.type), f'<span class="status {esc(s.status.replace(" ", "-"))}">{esc(s.status)}'
             "</span>", f"{s.duration_s:.2f}s" if s.duration_s is not None else "",
             esc(", ".join(f"{k}={v}" for k, v in s.counts.items()))] for s in run.stages]
    return _table(["stage", "type", "status", "duration", "counts"], rows, "run")


def run(ctx: PageContext, run: m.Run, dag_png: str, summaries: dict[str, str]) -> str:
    """dag_png: an <img> tag (the report's DAG picture); summaries: stage name -> the report's HTML summary."""
    edges = ", ".join(f"{esc(a)} → {esc(b)}" for a, b in run.edges)
    metrics = "".join(
        f"<h3>{esc(s.name)}</h3>" + _table(["measure", "value"], [[esc(k), esc(v)] for k, v in s.metrics.items()])
        for s in run.stages if s.metrics)
    sections = "".join(f'<section class="stage-summary"><h2>{esc(name)}</h2>{html}</section>'
                       for name, html in summaries.items() if html)
    body = (f'<h1>Last run</h1><div id="run-dag">{dag_png}</div><p>{edges}</p>{run_table(run)}'
            f"<h2>Timings</h2>{metrics or '<p>none recorded</p>'}{sections}")
    return layout(ctx, "Run", body)
