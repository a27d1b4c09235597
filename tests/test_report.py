"""The run report: a self-contained HTML page that a real browser renders with all its images."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from kgpipe.cli import app
from kgpipe.report import COLLAPSE_ROWS, STATUS_COLOURS, build_report
from kgpipe.runner import run
from tests.test_dag import chain, make_pipeline
from tests.toy_stages import write

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def reported(tmp_path: Path) -> Path:
    """A pipeline with an ingest stage and toy stages, run, and one stage made stale afterwards."""
    write(tmp_path / "in/a.txt", "alpha")
    write(tmp_path / "in/d.txt", "delta")
    write(tmp_path / "corpus/x.txt", "Ada Lovelace wrote the first program.")
    write(tmp_path / "corpus/y.txt", "Alan Turing was born in London.")
    write(tmp_path / "seed.tsv", "Ada_Lovelace\tbornIn\tLondon\nAlan_Turing\tbornIn\tLondon\n"
                                 "Alan_Turing\tworksFor\tNPL\n")
    stages = chain()
    stages["ingest"] = {"type": "ingest", "deps": {"corpus": "corpus", "seeds": ["seed.tsv"]}}
    pipeline = make_pipeline(tmp_path, stages)
    run(pipeline)
    write(tmp_path / "in/d.txt", "changed")
    return build_report(pipeline)


def test_report_is_one_self_contained_file_with_every_stage(reported: Path) -> None:
    page = reported.read_text()
    assert reported.name.startswith("p-") and reported.suffix == ".html"
    for stage in ("a", "b", "c", "d", "ingest"):
        assert f"<h2>{stage} <small>" in page
    assert "<td>d</td><td>toy_upper</td><td>stale</td><td>dep changed: in/d.txt</td>" in page
    assert "documents=2" in page and "seed_triples=3" in page            # stage counts
    assert "seed_triples: rows by relation" in page                       # a column with repeated values
    assert "documents: rows by source" not in page                        # all-unique values: no chart
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(?!data:|#)', page), "nothing may be loaded from outside the file"


def test_contents_link_to_every_stage_section_and_every_link_resolves(reported: Path) -> None:
    page = reported.read_text()
    contents = re.search(r'<nav id="contents">(.*?)</nav>', page, re.S)
    assert contents, "the report has no table of contents"
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids must be unique"
    links = re.findall(r'href="#([^"]+)"', page)
    assert links and set(links) <= set(ids), f"links to missing ids: {set(links) - set(ids)}"
    for stage in ("a", "b", "c", "d", "ingest"):
        assert f'<a href="#stage-{stage}">{stage}</a>' in contents[1]
        assert re.search(rf'<section id="stage-{stage}"><h2>{stage} <small>', page)


def test_legend_names_every_status_colour_and_the_arrows(reported: Path) -> None:
    legend = re.search(r'<div class="legend" id="legend">(.*?)</div>', reported.read_text(), re.S)
    assert legend, "the DAG has no legend"
    for word, colour in STATUS_COLOURS.items():
        assert f'style="background:{colour}"></span>{word}</li>' in legend[1]
    assert "solid arrow" in legend[1] and "dashed arrow" in legend[1]


def test_long_key_value_dumps_are_collapsed_and_short_ones_are_not(reported: Path) -> None:
    tables = re.findall(r'(<details><summary>[^<]*</summary>)?<table class="kv">(.*?)</table>', reported.read_text(),
                        re.S)
    rows = [(bool(folded), body.count("<tr>") - 1) for folded, body in tables]  # less the header row
    assert any(n > COLLAPSE_ROWS for _, n in rows), "the toy run has a long dump (the ingest report)"
    assert any(n <= COLLAPSE_ROWS for _, n in rows)
    for folded, n in rows:
        assert folded == (n > COLLAPSE_ROWS), f"a dump of {n} rows {'is' if folded else 'is not'} collapsed"


def test_an_arrow_that_skips_a_stage_goes_around_its_box(tmp_path: Path) -> None:
    from matplotlib.path import Path as MplPath
    from matplotlib.transforms import Bbox

    from kgpipe.config import load_pipeline
    from kgpipe.report_dag import dag_layout

    write(tmp_path / "in/a.txt", "alpha")
    write(tmp_path / "in/d.txt", "delta")
    # c reads a's output directly as well as through b: the arrow a -> c skips b's column
    pipe = load_pipeline(make_pipeline(tmp_path, chain(c={"deps": {"parts": ["artifacts/b/result.txt",
                                                                             "artifacts/a/result.txt"]}})))
    layout = dag_layout(pipe)
    boxes = {name: Bbox([[b.x0, b.y0], [b.x1, b.y1]]) for name, b in layout.boxes.items()}
    assert {(e.source, e.target) for e in layout.edges} == {("a", "b"), ("b", "c"), ("a", "c")}
    skip = next(e for e in layout.edges if (e.source, e.target) == ("a", "c"))
    assert skip.skips
    straight = MplPath([layout.boxes["a"].right, layout.boxes["c"].left])
    assert straight.intersects_bbox(boxes["b"], filled=True), "a straight a -> c would cross b: the case is real"
    for edge in layout.edges:
        path = MplPath(edge.points)
        assert edge.points[0][0] == layout.boxes[edge.source].x1 and edge.points[-1][0] == layout.boxes[edge.target].x0
        for name, box in boxes.items():
            if name not in (edge.source, edge.target):
                assert not path.intersects_bbox(box, filled=True), f"{edge.source} -> {edge.target} crosses {name}"
    run(pipe)
    assert '<img alt="pipeline DAG" src="data:image/png;base64,' in build_report(pipe).read_text()


def test_report_command_prints_the_path(tmp_path: Path) -> None:
    write(tmp_path / "in/a.txt", "alpha")
    write(tmp_path / "in/d.txt", "delta")
    pipeline = make_pipeline(tmp_path, chain())
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(pipeline), "--out", str(out)])
    assert result.exit_code == 0 and str(out) in result.output.replace("\n", "")
    assert "never run" in out.read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium: apt-get install -y chromium")
def test_report_renders_in_headless_chromium(reported: Path, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                          "--dump-dom", reported.as_uri()], capture_output=True, text=True, timeout=120).stdout
    total = re.search(r'data-images-total="(\d+)"', dom)
    rendered = re.search(r'data-images-rendered="(\d+)"', dom)
    assert total and rendered, "the page's load handler did not run"
    assert int(total[1]) >= 2 and rendered[1] == total[1], "every inlined image must decode"

    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1200,1600",
                    f"--screenshot={shot}", reported.as_uri()], capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert image.size == (1200, 1600)
    assert len(colours) > 50, "a blank page has a handful of colours"
    white = sum(n for n, rgb in colours if rgb == (255, 255, 255))
    assert white < 0.97 * image.size[0] * image.size[1]
    # the DAG picture's status colours are on the screen: green for up to date, orange for stale
    assert any(rgb == (76, 175, 80) for _, rgb in colours) and any(rgb == (255, 152, 0) for _, rgb in colours)


def test_a_summary_renders_every_field_escaped(tmp_path: Path) -> None:
    from kgpipe.report import render_summary
    from kgpipe.summary import Curve, Series, StageSummary, SummaryImage, SummaryTable

    png = tmp_path / "plot.png"
    Image.new("RGB", (4, 3), (1, 2, 3)).save(png)
    summary = StageSummary(
        "Words <b>", "word-counts", counts={"words": 12, "training_triples": 3},
        metrics={f"m{i}": i / 3 for i in range(COLLAPSE_ROWS + 1)},
        tables=[SummaryTable("by <i>label</i>", ("label", "share"), [("<script>x</script>", 0.123456)], digits=2)],
        notes=["a note & more"], warnings=["careful <now>"], images=[SummaryImage("the plot", png)],
        curves=[Curve("loss curve", "epoch", [Series("loss", [1.0, 2.0], [0.5, 0.25]),
                                               Series("mrr", [2.0], [0.1], secondary=True)])])
    html_ = render_summary(summary)
    assert html_.startswith('<div class="summary" id="word-counts"><h3>Words &lt;b&gt;</h3>')
    assert "<p>a note &amp; more</p>" in html_ and '<p class="counts">12 words, 3 training triples</p>' in html_
    assert "<h4>by &lt;i&gt;label&lt;/i&gt;</h4>" in html_
    assert "<td>&lt;script&gt;x&lt;/script&gt;</td><td>0.12</td>" in html_
    assert "<script>" not in html_ and "<p class='warning'>careful &lt;now&gt;</p>" in html_
    metrics = re.search(r'<details><summary>13 metrics[^<]*</summary><table class="kv">(.*?)</table></details>', html_)
    assert metrics and "<td>m1</td><td>0.3333</td>" in metrics[1]
    assert '<img alt="the plot" src="data:image/png;base64,' in html_ and '<img alt="loss curve"' in html_
    assert summary.as_json()["tables"][0] == {"title": "by <i>label</i>", "columns": ["label", "share"],
                                              "rows": [["<script>x</script>", 0.123456]], "digits": 2}


def test_the_fuse_section_shows_example_waterfalls_with_learned_weights_only(learned_fuse: Path,
                                                                             tmp_path: Path) -> None:
    from tests.test_fuse import DOCS, fuse, write_inputs

    page = build_report(learned_fuse / "pipeline.yaml", tmp_path / "learned.html").read_text()
    section = re.search(r'<section id="stage-fuse">(.*?)</section>', page, re.S)
    assert section, "the report has no fuse section"
    figures = re.findall(r'<figure class="waterfall"><figcaption>([^<]*)</figcaption>(<svg.*?</svg>)', section[1],
                         re.S)
    assert [caption.split(":")[0] for caption, _ in figures] == [
        "merged, the lowest probability", "kept apart, the highest probability", "the largest merge"]
    assert "the largest merge: &#x27;MIT&#x27; and &#x27;M.I.T.&#x27; (the run put them in one entity)" in section[1]
    for _, svg in figures:  # the prior, the five comparisons, the match weight
        assert re.findall(r'<rect class="bar (\w+)"', svg)[0::6] == ["prior", "total"]
        assert svg.count('<rect class="bar') == 7
    assert section[1].index("Learned match weights") < section[1].index('<figure class="waterfall">')
    assert not re.search(r'(src|href)="(?!data:|#)', page), "the charts load nothing from outside the file"

    write_inputs(tmp_path / "fixed", DOCS)
    fuse(tmp_path / "fixed")
    fixed = build_report(tmp_path / "fixed/pipeline.yaml", tmp_path / "fixed.html").read_text()
    assert '<section id="stage-fuse">' in fixed and "Fusion report" in fixed
    assert '<figure class="waterfall">' not in fixed and "<svg" not in fixed and "Learned match weights" not in fixed
