"""`kgpipe explore` in a real browser: Playwright drives Debian's Chromium over the app serving the sample run.

Search -> entity page with highlighted evidence -> a click on a neighbour in the graph's canvas (at the node's
position on screen) -> the neighbour's page; a SPARQL query's rows; the embedding map's points; every page free of
console errors. Screenshots go to the test's tmp_path/screenshots (recorded as the `screenshots` property).
Skipped, saying why, where Chromium is absent or does not start.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from PIL import Image

playwright = pytest.importorskip("playwright.sync_api", reason="needs Playwright: pip install -c constraints.txt "
                                                                "-e '.[dev]'")
uvicorn = pytest.importorskip("uvicorn", reason="needs the web extra: pip install -c constraints.txt -e '.[web]'")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 900}

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium: apt-get install -y chromium")


@contextlib.contextmanager
def serve(pipeline: Path) -> Iterator[str]:
    """The explorer over a pipeline's last run, served by uvicorn in a background thread on a free loopback
    port; its base URL."""
    from kgpipe.web.app import create_app

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))  # bound here, so that the app knows its port (its write guard checks it)
    port = listening.getsockname()[1]
    app = create_app(pipeline, host="127.0.0.1", port=port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def base_url(sample_pipeline: Path) -> Iterator[str]:
    """The explorer over the sample run."""
    with serve(sample_pipeline) as url:
        yield url


@pytest.fixture(scope="module")
def learned_url(learned_fuse: Path) -> Iterator[str]:
    """The explorer over a fuse run with learned weights (tests.learned_run)."""
    with serve(learned_fuse / "pipeline.yaml") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as driver:
        try:
            chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except playwright.Error as error:
            version = importlib.metadata.version("playwright")
            pytest.skip(f"{CHROMIUM} did not start under Playwright {version} (pinned in constraints.txt for "
                        f"Debian's Chromium): {error.message.splitlines()[0]}")
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A page with what went wrong on it: console errors, uncaught exceptions, failed requests."""

    page: Any
    shots: Path
    problems: list[str] = field(default_factory=list)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=self.shots / f"{name}.png", full_page=True)

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def open_tab(browser: Any, base_url: str, tmp_path: Path, record_property: Any) -> tuple[Any, Tab]:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    record_property("screenshots", str(shots))
    context = browser.new_context(viewport=VIEWPORT, base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(20_000)
    watched = Tab(page, shots)
    page.on("console", lambda m: m.type == "error" and watched.problems.append(f"console: {m.text} ({page.url})"))
    page.on("pageerror", lambda e: watched.problems.append(f"uncaught: {e} ({page.url})"))
    page.on("response", lambda r: r.status >= 400 and watched.problems.append(f"HTTP {r.status}: {r.url}"))
    return context, watched


@pytest.fixture
def tab(browser: Any, base_url: str, tmp_path: Path, record_property: Any) -> Iterator[Tab]:
    context, watched = open_tab(browser, base_url, tmp_path, record_property)
    yield watched
    context.close()


@pytest.fixture
def learned_tab(browser: Any, learned_url: str, tmp_path: Path, record_property: Any) -> Iterator[Tab]:
    """A tab on the explorer over the run with learned weights."""
    context, watched = open_tab(browser, learned_url, tmp_path, record_property)
    yield watched
    context.close()


def screen_position(page: Any, node_id: str) -> tuple[float, float]:
    """Where a graph node is drawn in the viewport: its position in the canvas plus the canvas's place."""
    x, y = page.evaluate("""id => {
        const rendered = window.kgGraph.getElementById(id).renderedPosition();
        const box = window.kgGraph.container().getBoundingClientRect();
        return [box.left + rendered.x, box.top + rendered.y];
    }""", node_id)
    return x, y


def test_search_leads_to_an_entity_its_evidence_and_a_neighbour_clicked_in_the_graph(tab: Tab) -> None:
    page = tab.page
    page.goto("/")
    page.fill("#search-form input[name=q]", "einstein")
    page.press("#search-form input[name=q]", "Enter")
    page.wait_for_url("**/search?q=einstein*")
    first = page.locator("#search-results a").first
    assert "Einstein" in first.inner_text()
    tab.shot("1-search")
    first.click()
    page.wait_for_url("**/entity/**")
    assert "Einstein" in page.inner_text("#entity-label")

    # evidence: sentences of outgoing triples with both mentions highlighted, Einstein's among the heads
    sentences = page.locator("#triples-out li.evidence q:has(mark.head):has(mark.tail)")
    assert sentences.count() >= 1 and sentences.first.is_visible()
    sentence = sentences.first.inner_text()
    for mark in ("head", "tail"):
        text = sentences.first.locator(f"mark.{mark}").inner_text()
        assert text.strip() and text in sentence
    assert any("Einstein" in text for text in sentences.locator("mark.head").all_inner_texts())

    page.wait_for_selector("#kg-graph[data-state=ready]")
    centre = page.get_attribute("#kg-graph", "data-entity-id")
    neighbours = page.evaluate("""centre => window.kgGraph.nodes().filter(n => n.id() !== centre)
        .map(n => [n.id(), n.data('label')])""", centre)
    assert len(neighbours) >= 2, "Einstein has several neighbours in the sample graph"
    page.locator(".kg-graph-canvas").scroll_into_view_if_needed()
    tab.shot("2-entity")
    node_id, label = neighbours[0]
    x, y = screen_position(page, node_id)
    assert 0 < x < VIEWPORT["width"] and 0 < y < VIEWPORT["height"], "the node must be on screen to be clicked"
    page.mouse.click(x, y)
    page.wait_for_url(f"**/entity/{quote(node_id, safe='')}")
    assert page.inner_text("#entity-label") == label
    page.wait_for_selector("#kg-graph[data-state=ready]")
    tab.shot("3-neighbour")
    tab.assert_clean()


def test_shift_click_or_right_click_expands_a_node_in_place(tab: Tab, base_url: str) -> None:
    page = tab.page
    page.goto("/search?q=einstein")
    page.locator("#search-results a").first.click()
    page.wait_for_selector("#kg-graph[data-state=ready]")
    centre = page.get_attribute("#kg-graph", "data-entity-id")
    drawn = set(page.evaluate("window.kgGraph.nodes().map(n => n.id())"))
    # two neighbours whose own neighbourhoods (as the API gives them) hold nodes not drawn yet
    growing = []
    for node_id in sorted(drawn - {centre}):
        graph = page.request.get(f"{base_url}/api/graph/{quote(node_id, safe='')}").json()
        if {n["id"] for n in graph["nodes"]} - drawn:
            growing.append((node_id, {n["id"] for n in graph["nodes"]}))
    assert len(growing) >= 2
    page.locator(".kg-graph-canvas").scroll_into_view_if_needed()
    url = page.url

    (first, first_nodes), (second, second_nodes) = growing[:2]
    page.keyboard.down("Shift")
    page.mouse.click(*screen_position(page, first))
    page.keyboard.up("Shift")
    page.wait_for_function("id => window.kgGraph.getElementById(id).data('expanded') === true", arg=first)
    page.wait_for_selector("#kg-graph[data-state=ready]")
    assert set(page.evaluate("window.kgGraph.nodes().map(n => n.id())")) == drawn | first_nodes

    page.mouse.click(*screen_position(page, second), button="right")
    page.wait_for_function("id => window.kgGraph.getElementById(id).data('expanded') === true", arg=second)
    page.wait_for_selector("#kg-graph[data-state=ready]")
    assert set(page.evaluate("window.kgGraph.nodes().map(n => n.id())")) == drawn | first_nodes | second_nodes
    assert page.url == url, "expanding does not navigate"
    legend = page.locator("#kg-graph .kg-legend li").all_inner_texts()
    assert "Person" in legend
    tab.shot("expanded")
    tab.assert_clean()


def test_a_sparql_query_fills_a_table_that_links_entities(tab: Tab) -> None:
    page = tab.page
    page.goto("/query")
    page.fill("#sparql-form textarea[name=query]", "SELECT ?s ?p ?o WHERE { ?s ?p ?o } LIMIT 7")
    page.locator("#sparql-form button[type=submit], #sparql-form input[type=submit]").first.click()
    page.wait_for_selector("#sparql-results[data-state=ready]")
    assert page.get_attribute("#sparql-results", "data-rows") == "7"
    assert page.locator("#sparql-results tbody tr").count() == 7
    assert page.locator("#sparql-results thead th").all_inner_texts() == ["s", "p", "o"]
    link = page.locator("#sparql-results tbody a[href^='/entity/']").first
    target = link.get_attribute("href")
    tab.shot("query")
    link.click()
    page.wait_for_url(f"**{target}")
    assert page.inner_text("#entity-label")
    tab.assert_clean()


def test_the_embedding_map_draws_its_points_and_a_click_opens_one(tab: Tab) -> None:
    page = tab.page
    page.goto("/map")
    page.wait_for_selector("#kg-map[data-state=ready]")
    points = int(page.get_attribute("#kg-map", "data-points") or 0)
    assert points >= 20
    drawn = page.evaluate("document.getElementById('kg-map')._fullData.reduce((n, t) => n + t.x.length, 0)")
    assert drawn == points
    shot = tab.shots / "map.png"
    page.locator("#kg-map").screenshot(path=shot)
    # markers are the only saturated colours on the map (grid, axes and text are grey or black)
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 24) or []
    coloured = sum(n for n, (r, g, b) in colours if max(r, g, b) - min(r, g, b) > 80)
    assert coloured > 10 * min(points, 200), "the points must be drawn, not only listed"

    # hover the first point of the first trace at its place on screen, then click it
    x, y = page.evaluate("""() => {
        const map = document.getElementById('kg-map'), size = map._fullLayout._size, box = map.getBoundingClientRect();
        const trace = map._fullData[0], xa = map._fullLayout.xaxis, ya = map._fullLayout.yaxis;
        return [box.left + size.l + xa.l2p(trace.x[0]), box.top + size.t + ya.l2p(trace.y[0])];
    }""")
    page.mouse.move(x, y)
    page.wait_for_selector("#kg-map .hoverlayer .hovertext")
    page.mouse.click(x, y)
    page.wait_for_url("**/entity/**")
    assert page.inner_text("#entity-label")
    tab.assert_clean()


def test_without_webgl_the_map_is_drawn_as_svg(tab: Tab) -> None:
    page = tab.page
    page.add_init_script("""{
        const getContext = HTMLCanvasElement.prototype.getContext;
        HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
            return /webgl/i.test(kind) ? null : getContext.call(this, kind, ...rest);
        };
    }""")
    page.goto("/map")
    page.wait_for_selector("#kg-map[data-state=ready]")
    assert page.get_attribute("#kg-map", "data-renderer") == "scatter"
    assert page.locator("#kg-map .scatterlayer path.point").count() == int(page.get_attribute("#kg-map",
                                                                                            "data-points") or 0)
    tab.shot("map-svg")
    tab.assert_clean()


@pytest.mark.parametrize(("script", "view"), [("cytoscape.min.js", "#kg-graph"), ("plotly.min.js", "#kg-map")])
def test_a_missing_library_is_named_with_the_command_that_fetches_it(tab: Tab, base_url: str, script: str,
                                                                     view: str) -> None:
    page = tab.page
    page.route(f"**/static/vendor/{script}", lambda route: route.fulfill(status=404, body="not found"))
    if view == "#kg-graph":
        hit = page.request.get(f"{base_url}/api/search?q=einstein").json()["results"][0]
        page.goto(f"/entity/{quote(hit['id'], safe='')}")
    else:
        page.goto("/map")
    message = page.locator(f"{view} .kg-error")
    assert script in message.inner_text() and "python -m kgpipe.web.vendor" in message.inner_text()
    assert all("404" in problem for problem in tab.problems), tab.problems  # the library's, and nothing else


@pytest.mark.parametrize("path", ["/", "/search?q=berlin", "/run", "/documents", "/patterns", "/query", "/map",
                                  "/explain"])
def test_pages_load_without_console_errors(tab: Tab, path: str) -> None:
    tab.page.goto(path, wait_until="networkidle")
    tab.shot(path.strip("/").replace("/", "_").replace("?", "_") or "home")
    assert tab.page.locator("main").inner_text().strip()
    tab.assert_clean()


def test_link_predictions_load_when_a_relation_is_chosen(tab: Tab) -> None:
    page = tab.page
    page.goto("/search?q=einstein")
    page.locator("#search-results a").first.click()
    assert page.get_attribute("#predictions", "data-state") is None, "nothing is predicted before a choice"
    relation = page.locator("#predict-relation option:not([value=''])").first.get_attribute("value")
    page.select_option("#predict-relation", relation)
    page.wait_for_selector("#predictions[data-state=ready]")
    items = page.locator("#predictions li")
    assert items.count() >= 1
    assert set(page.locator("#predictions li .tag").all_inner_texts()) <= {"known", "new"}
    assert items.first.locator("a").get_attribute("href").startswith("/entity/")
    tab.shot("predictions")
    tab.assert_clean()


def test_a_new_snapshot_reloads_the_page_and_the_banner_follows_the_status(tab: Tab) -> None:
    page = tab.page
    page.clock.install()  # status.js polls on a timer: the test moves the clock instead of waiting
    page.goto("/query")
    snapshot = page.get_attribute("meta[name=kg-snapshot]", "content")
    assert page.locator("#stale-banner:visible").count() == 0, "the sample run is up to date"
    answers = [{"snapshot": "a-later-run", "stale": False, "stale_stages": []}]

    def status(route: Any) -> None:
        """The next poll sees a run committed; after the reload the page is that run's, reported stale."""
        route.fulfill(json=answers.pop(0) if answers else
                      {"snapshot": snapshot, "stale": True, "stale_stages": ["embed"]})

    page.route("**/api/status", status)
    with page.expect_event("load"):
        page.clock.run_for(6000)
    page.wait_for_selector("#stale-banner:visible")
    assert "embed" in page.inner_text("#stale-banner")
    tab.shot("stale")
    tab.assert_clean()


def test_a_document_page_marks_a_relation_wrong(tab: Tab, sample_pipeline: Path) -> None:
    from kgpipe.config import as_pipeline
    from kgpipe.web.data import corrections_path

    corrections = corrections_path(as_pipeline(sample_pipeline))
    before = corrections.read_bytes() if corrections.exists() else None
    page = tab.page
    try:
        page.goto("/documents")
        page.locator("main a[href^='/document/']").first.click()
        page.wait_for_url("**/document/**")
        button = page.locator("button.mark-wrong:not([disabled])").first
        relation_id = button.get_attribute("data-relation-id")
        button.click()
        page.wait_for_selector("button.mark-wrong.done")
        assert "saved" in page.locator(".review-message").first.inner_text()
        rows = [json.loads(line) for line in corrections.read_text(encoding="utf-8").splitlines()]
        assert rows[-1]["relation_id"] == relation_id and rows[-1]["verdict"] == "wrong"
        tab.shot("document")
        tab.assert_clean()
    finally:  # the sample run is shared by the session's tests: leave its workspace as it was
        if before is None:
            corrections.unlink(missing_ok=True)
        else:
            corrections.write_bytes(before)


def test_the_explain_form_draws_the_waterfall_and_an_entity_links_to_why_it_merged(learned_tab: Tab) -> None:
    page = learned_tab.page
    page.goto("/explain")
    page.fill("#explain-form input[name=head]", "MIT")
    page.fill("#explain-form input[name=tail]", "M.I.T.")
    page.locator("#explain-form button[type=submit]").click()
    page.wait_for_url("**/explain?head=MIT&tail=M.I.T.")
    assert "the run put them in one entity" in page.inner_text("#explanation .verdict")
    chart = page.locator("#explanation svg.waterfall-chart")
    assert chart.is_visible()
    kinds = [page.get_attribute(f"#explanation rect.bar >> nth={k}", "class") for k in range(7)]
    assert kinds[0] == "bar prior" and kinds[-1] == "bar total" and page.locator("#explanation rect.bar").count() == 7
    boxes = [page.locator("#explanation rect.bar").nth(k).bounding_box() for k in range(7)]
    assert all(box is not None and box["width"] >= 1 and box["height"] > 5 for box in boxes), "every bar is drawn"
    assert [box["y"] for box in boxes if box] == sorted(box["y"] for box in boxes if box)
    name = page.locator("#explanation rect.bar").nth(1)
    assert name.locator("title").text_content().startswith("name: exact")
    assert page.locator("#explanation table.waterfall-table tbody tr").count() == 7
    learned_tab.shot("explain")

    page.goto(f"/entity/{quote('http://ex.org/MIT', safe='')}")
    page.locator("#why-merged").click()
    page.wait_for_url("**/explain?head=MIT&tail=M.I.T.")
    assert page.locator("#explanation rect.bar").count() == 7
    learned_tab.assert_clean()
