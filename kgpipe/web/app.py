"""The explorer's FastAPI app: the JSON API (typed by kgpipe.web.models), the server-rendered pages, /static.

FastAPI over Flask: pydantic is already kgpipe's validation library, so the response models double as the
API's schema, and its TestClient drives the app in tests without a server. Read-only but for one POST (a
relation marked wrong, see corrections.py). No API docs page: FastAPI's would load its scripts from a CDN.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from kgpipe.config import Pipeline
from kgpipe.errors import ArtifactError, InputError, KgpipeError
from kgpipe.html import esc
from kgpipe.web import explain as explaining
from kgpipe.web import models as m
from kgpipe.web import pages, queries
from kgpipe.web.corrections import WriteGuard, append_correction, labelled_row, marked_wrong, wrong_by_pattern
from kgpipe.web.data import SnapshotChanged, SnapshotStore, corrections_path
from kgpipe.web.documents import document, list_documents, patterns
from kgpipe.web.embedmap import embedding_map
from kgpipe.web.queries import NotFound
from kgpipe.web.run import report_sections, run_overview
from kgpipe.web.sparql import QueryRefused, run_query

STATIC = Path(__file__).resolve().parent / "static"
def _vendor_missing() -> str | None:
    """The page message when vendored JavaScript is absent (plotly's copy may come from the installed package)."""
    from kgpipe.web.vendor import missing, missing_message

    names = [name for name in missing() if not (name == "plotly.min.js" and _plotly_js() is not None)]
    return missing_message(names) if names else None


def _plotly_js() -> Path | None:
    """plotly.min.js from the installed plotly package (the fallback when the build step did not copy it)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def _warm(store: SnapshotStore) -> None:
    """Build the search index and the triple groups in the background when the server starts, so that the
    first search and entity page do not pay for them (errors surface on the requests that need them)."""
    with contextlib.suppress(Exception):
        snap = store.current()
        _ = snap.search
        _ = snap.triple_rows("out"), snap.triple_rows("in")


def _status_of(exc: Exception) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, SnapshotChanged):
        return 503
    if isinstance(exc, InputError):
        return 400
    return 500


def create_app(pipeline: str | Path | Pipeline, *, host: str = "127.0.0.1", port: int | None = 8765) -> FastAPI:
    """The explorer over a pipeline's last run, bound (for the write guard) to host:port."""
    store = SnapshotStore(pipeline)
    guard = WriteGuard(host, port)
    corrections = corrections_path(store.pipe)
    vendor_missing = _vendor_missing()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=_warm, args=(store,), name="kgpipe-explore-warm", daemon=True).start()
        yield

    app = FastAPI(title="kgpipe explore", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.store, app.state.guard = store, guard

    @app.middleware("http")
    async def loopback_hosts_only(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                                  ) -> Response:
        if guard.foreign_host(request.headers):
            return PlainTextResponse("refused: this app answers requests to 127.0.0.1 or localhost only",
                                     status_code=400)
        return await call_next(request)

    def ctx() -> pages.PageContext:
        return pages.PageContext(guard.token, store.current().id, store.stale_stages(), guard.enabled,
                                 vendor_missing)

    @app.exception_handler(KgpipeError)
    async def kgpipe_error(request: Request, exc: KgpipeError) -> Response:
        status = _status_of(exc)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return HTMLResponse(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>kgpipe explore</title>"
                            f"<link rel='stylesheet' href='/static/app.css'></head><body><main><h1>{status}</h1>"
                            f"<p class='error'>{esc(exc)}</p><p><a href='/'>back to search</a></p></main>"
                            "</body></html>", status_code=status)

    # --- JSON API ----------------------------------------------------------------------------------------

    @app.get("/api/status")
    def api_status() -> m.Status:
        stale = store.stale_stages()
        return m.Status(snapshot=store.current().id, stale=bool(stale), stale_stages=stale)

    @app.get("/api/search")
    def api_search(q: str = "", type: str = "", limit: Annotated[int, Query(ge=1, le=200)] = 20
                   ) -> m.SearchResults:
        return queries.search(store.current(), q, type or None, limit)

    @app.get("/api/entity/{entity_id:path}/triples")
    def api_triples(entity_id: str, direction: str = "out", page: Annotated[int, Query(ge=1)] = 1) -> m.TriplePage:
        return queries.triples(store.current(), entity_id, direction, page)

    @app.get("/api/entity/{entity_id:path}/relations")
    def api_relations(entity_id: str) -> m.Relations:
        return queries.model_relations(store.current(), entity_id)

    @app.get("/api/entity/{entity_id:path}/predictions")
    def api_predictions(entity_id: str, relation: str,
                        k: Annotated[int, Query(ge=1, le=100)] = 10) -> m.Predictions:
        return queries.predictions(store.current(), entity_id, relation, k)

    @app.get("/api/entity/{entity_id:path}/neighbours")
    def api_neighbours(entity_id: str, k: Annotated[int, Query(ge=1, le=100)] = 10) -> m.Neighbours:
        return queries.neighbours(store.current(), entity_id, k)

    @app.get("/api/entity/{entity_id:path}")
    def api_entity(entity_id: str) -> m.Entity:
        return queries.entity(store.current(), entity_id)

    @app.get("/api/graph/{entity_id:path}")
    def api_graph(entity_id: str, limit: Annotated[int, Query(ge=1, le=500)] = 60) -> m.Graph:
        return queries.graph(store.current(), entity_id, limit)

    @app.get("/api/embedding-map")
    def api_embedding_map(limit: Annotated[int, Query(ge=1, le=100_000)] = 5000) -> m.EmbeddingMap:
        return embedding_map(store.current(), limit)

    @app.post("/api/sparql")
    def api_sparql(body: m.SparqlRequest) -> m.SparqlResult:
        return run_query(store.current(), body.query)

    @app.post("/api/corrections", status_code=204)
    def api_corrections(body: m.CorrectionRequest, request: Request) -> Response:
        refusal = guard.refusal(request.headers)
        if refusal is not None:
            return JSONResponse({"detail": refusal}, status_code=403)
        snap = store.current()
        index = snap.evidence
        found = index.by_relation_id(body.relation_id) if index is not None else None
        if found is None:
            raise NotFound(f"no extracted relation with id '{body.relation_id}'")
        try:
            row = labelled_row(found, verdict=body.verdict, snapshot=snap.id)
        except ValueError as exc:
            raise ArtifactError(str(exc), hint="the documents table is missing: run the pipeline") from None
        append_correction(corrections, row)
        return Response(status_code=204)

    @app.get("/api/run")
    def api_run() -> m.Run:
        return run_overview(store)

    @app.get("/api/explain", response_model=m.Explanation,
             responses={404: {"description": "a name the last fuse run does not know"},
                        409: {"description": "the last fuse run stored no learned weights"}})
    def api_explain(head: str, tail: str) -> m.Explanation | Response:
        snap = store.current()
        try:
            return explaining.as_model(snap, explaining.explain(snap, head, tail))
        except KgpipeError as exc:
            status = explaining.status_of(exc)
            if status is None:
                raise
            return JSONResponse({"detail": str(exc)}, status_code=status)

    # --- pages -------------------------------------------------------------------------------------------

    def types() -> list[str]:
        return sorted({t for t in store.current().search.types if t})

    @app.get("/", response_class=HTMLResponse)
    def home() -> str:
        snap = store.current()
        counts = {"entities": len(snap.entities), "triples": len(snap.triples)}
        if snap.has("documents"):
            counts["documents"] = len(snap.documents)
        return pages.home(ctx(), counts, types(), pages.run_table(run_overview(store)))

    @app.get("/search", response_class=HTMLResponse)
    def search_page(q: str = "", type: str = "") -> str:
        return pages.search_results(ctx(), q, type, types(), queries.search(store.current(), q, type or None))

    @app.get("/entity/{entity_id:path}", response_class=HTMLResponse)
    def entity_page(entity_id: str, out_page: Annotated[int, Query(ge=1)] = 1,
                    in_page: Annotated[int, Query(ge=1)] = 1) -> str:
        snap = store.current()
        return pages.entity(ctx(), queries.entity(snap, entity_id), queries.triples(snap, entity_id, "out", out_page),
                            queries.triples(snap, entity_id, "in", in_page), queries.model_relations(snap, entity_id),
                            queries.neighbours(snap, entity_id), explaining.merged_pair(snap, entity_id))

    @app.get("/documents", response_class=HTMLResponse)
    def documents_page(label: str = "", relation: str = "", pattern: str = "",
                       page: Annotated[int, Query(ge=1)] = 1) -> str:
        listing = list_documents(store.current(), label=label, relation=relation, pattern=pattern, page=page)
        return pages.documents(ctx(), listing, {"label": label, "relation": relation, "pattern": pattern})

    @app.get("/document/{doc_id:path}", response_class=HTMLResponse)
    def document_page(doc_id: str) -> str:
        return pages.document(ctx(), document(store.current(), doc_id), marked_wrong(corrections))

    @app.get("/patterns", response_class=HTMLResponse)
    def patterns_page() -> str:
        return pages.patterns(ctx(), patterns(store.current(), wrong_by_pattern(corrections)))

    @app.get("/map", response_class=HTMLResponse)
    def map_page() -> str:
        return pages.embedding_map(ctx())

    @app.get("/query", response_class=HTMLResponse)
    def query_page(query: str = "") -> str:
        result, error = None, None
        if query.strip():
            try:
                result = run_query(store.current(), query)
            except QueryRefused as exc:
                error = str(exc)
        return pages.query(ctx(), query or "SELECT ?s ?p ?o WHERE { ?s ?p ?o } LIMIT 20", result, error)

    @app.get("/explain", response_class=HTMLResponse)
    def explain_page(head: str = "", tail: str = "") -> Response:
        snap = store.current()
        found = explaining.refusal(snap)
        unavailable = (found.message, found.hint) if found is not None else None
        result, explanation, error, status = None, None, None, 200
        if head or tail:
            try:
                fused = explaining.explain(snap, head, tail)
                result, explanation = explaining.as_model(snap, fused), fused.explanation
            except KgpipeError as exc:
                status = explaining.status_of(exc) or 0
                if not status:
                    raise
                error, unavailable = (exc.message, exc.hint), None
        return HTMLResponse(pages.explain(ctx(), head, tail, result, explanation, error, unavailable),
                            status_code=status)

    @app.get("/run", response_class=HTMLResponse)
    def run_page() -> str:
        snap = store.current()
        dag, summaries = snap.cached("report_sections", lambda: report_sections(store))
        return pages.run(ctx(), run_overview(store), dag, summaries)

    # --- static files: plotly from its pip package when the build step did not copy it ------------------

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> Response:
        copied = STATIC / "vendor" / "plotly.min.js"
        path = copied if copied.is_file() else _plotly_js()
        if path is None:
            return JSONResponse({"detail": "plotly.min.js is not installed: pip install plotly"}, status_code=404)
        return FileResponse(path, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    return app
