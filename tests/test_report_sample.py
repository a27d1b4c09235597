"""The run report of the whole sample pipeline: every item the report promises is on the page with the values
of the run's artifacts (DAG with status and duration, sizes, extraction counts, fusion report with overlap
similarity and largest merges, embedding metrics and loss curve, injection metrics), and Chromium renders it."""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest

import kgpipe
from kgpipe.config import load_pipeline
from kgpipe.lockfile import LockFile
from kgpipe.report import build_report
from kgpipe.runner import Workspace
from tests.test_report import CHROMIUM, CHROMIUM_FLAGS


@pytest.fixture(scope="module")
def page(sample_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_report(sample_pipeline, out=tmp_path_factory.mktemp("report") / "sample.html").read_text()


def section(page: str, name: str) -> str:
    found = re.search(rf'<div class="summary" id="{name}">(.*?)</div>', page, re.S)
    assert found, f"the report has no {name} section"
    return found[1]


def cells(*values: object) -> str:
    return "".join(f"<td>{html.escape(str(v))}</td>" for v in values)


def test_dag_status_duration_and_sizes(sample_pipeline: Path, page: str) -> None:
    pipe = load_pipeline(sample_pipeline)
    lock = LockFile.read(Workspace(pipe).lock_path).stages
    assert '<img alt="pipeline DAG" src="data:image/png;base64,' in page
    for name in ("ingest", "extract", "fuse", "embed", "vectors", "inject", "export"):
        entry = lock[name]
        # up to date, or stale if a stage's defaults change while the tests run (the words: test_report.py)
        row = re.search(rf"<tr><td>{name}</td><td>{name}</td><td>(?:up to date|stale)</td><td>[^<]*</td>"
                        rf"<td>{re.escape(entry.started_at)}</td><td>{entry.duration_s:.2f}s</td>"
                        r"<td>([^<]+)</td><td>([^<]+)</td>", page)
        assert row, f"no DAG table row for {name}"
        assert row[2] != "0 B" and re.fullmatch(r"\d+(\.\d)? (B|KB|MB|GB)", row[1])


def test_extraction_counts_by_label_and_relation(sample_pipeline: Path, page: str) -> None:
    body = section(page, "extraction-counts")
    mentions = kgpipe.load_artifact(sample_pipeline, "extract.mentions")
    relations = kgpipe.load_artifact(sample_pipeline, "extract.relations")
    assert f"{len(mentions)} mentions, {mentions['doc_id'].nunique()} documents, {len(relations)} relations" in body
    for label, count in mentions["label"].value_counts().items():
        assert cells(label, count) in body
    for relation, count in relations["relation"].value_counts().items():
        assert cells(relation, count) in body


def test_fusion_report_with_overlap_similarity_and_largest_merges(sample_pipeline: Path, page: str) -> None:
    body = section(page, "fusion-report")
    report = json.loads(kgpipe.artifact_path(sample_pipeline, "fuse.report").read_text())
    assert "Overlap similarity between source graphs" in body and "Largest merges" in body
    for pair in report["overlap"]:
        assert cells(*pair["graphs"], pair["nodes"]["shared"], pair["nodes"]["jaccard"],
                     pair["nodes"]["overlap_coefficient"], pair["edges"]["shared"], pair["edges"]["jaccard"],
                     pair["edges"]["overlap_coefficient"]) in body
    for merge in report["merges"]["largest"]:
        assert cells(merge["label"], merge["mentions"], len(merge["names"])) in body
    assert cells("total", report["entities"]["total"]) in body


def test_fusion_timings_come_from_the_lock_entry(sample_pipeline: Path, page: str) -> None:
    pipe = load_pipeline(sample_pipeline)
    timings = LockFile.read(Workspace(pipe).lock_path).stages["fuse"].summary["timings"]
    fuse = page.split('<section id="stage-fuse"><h2>fuse ', 1)[1].split("</section>", 1)[0]
    table = re.search(r'<div class="timings"><h4>Timings of this run \(from the lock file\)</h4>(.*?)</div>', fuse,
                      re.S)
    assert table, "the fuse section shows no timings"
    for step, seconds in timings["resolution_seconds"].items():
        value = f"{seconds:.4f}" if isinstance(seconds, float) else str(seconds)
        assert cells(f"resolution_seconds.{step}", value) in table[1]
    assert "resolution_peak_mb_after.clustering" in table[1]


def test_embedding_metrics_and_loss_curve(sample_pipeline: Path, page: str) -> None:
    body = section(page, "embedding-metrics")
    metrics = kgpipe.load_artifact(sample_pipeline, "embed.metrics")
    test = metrics["test"]
    # the training time is in the lock entry's summary (metrics.json has the same bytes every run)
    seconds = LockFile.read(Workspace(load_pipeline(sample_pipeline)).lock_path).stages["embed"].summary[
        "timings"]["training_seconds"]
    assert f"{metrics['training']['epochs']} epochs" in body and seconds > 0
    assert cells("training_seconds", f"{seconds:.4f}") in body and cells("model", metrics["config"]["model"]) in body
    for name in ("mrr", "hits_at_1", "hits_at_10"):
        assert cells(name, f"{test[name]:.4f}", f"{test['head'][name]:.4f}", f"{test['tail'][name]:.4f}") in body
    assert '<img alt="embedding loss curve" src="data:image/png;base64,' in body
    import base64

    plot = base64.b64encode(kgpipe.artifact_path(sample_pipeline, "embed.loss_plot").read_bytes()).decode()
    assert plot in body and page.count(plot) == 1, "the stage's loss plot, once"


def test_injection_metrics(sample_pipeline: Path, page: str) -> None:
    body = section(page, "injection-metrics")
    metrics = kgpipe.load_artifact(sample_pipeline, "inject.metrics")
    for name in ("mode", "entities_with_vectors", "map_train_r2", "map_heldout_cosine"):
        value = metrics[name]
        assert cells(name, f"{value:.4f}" if isinstance(value, float) else value) in body


def test_contents_link_to_each_stage_and_its_summary(page: str) -> None:
    contents = re.search(r'<nav id="contents">(.*?)</nav>', page, re.S)
    assert contents
    ids = set(re.findall(r' id="([^"]+)"', page))
    links = re.findall(r'href="#([^"]+)"', contents[1])
    assert set(links) <= ids
    for anchor in ("stage-extract", "extraction-counts", "stage-fuse", "fusion-report", "embedding-metrics",
                   "injection-metrics", "stage-export"):
        assert anchor in links, f"the contents do not link to {anchor}"
    params = re.search(r'<section id="stage-embed">.*?<h3>params</h3>(<details><summary>\d+ params[^<]*</summary>'
                       r'<table class="kv">.*?</table></details>)', page, re.S)
    assert params and "<td>model</td>" in params[1], "embed's long params dump is collapsed"


def test_summaries_are_typed_values_that_serialise_to_json(sample_pipeline: Path) -> None:
    from kgpipe.summary import StageSummary

    pipe = load_pipeline(sample_pipeline)
    lock = LockFile.read(Workspace(pipe).lock_path).stages
    summaries = {name: stage.type.summarise(stage, lock.get(name)) for name, stage in pipe.stages.items()}
    assert {name for name, s in summaries.items() if s is not None} == {"extract", "fuse", "embed", "inject"}
    extract = summaries["extract"]
    assert isinstance(extract, StageSummary)
    mentions = kgpipe.load_artifact(sample_pipeline, "extract.mentions")
    assert extract.counts["mentions"] == len(mentions)
    assert [t.title for t in extract.tables] == ["mentions by label", "mentions by how they were found",
                                                "relations by relation"]
    embed = summaries["embed"]
    assert embed is not None and embed.images[0].path == kgpipe.artifact_path(sample_pipeline, "embed.loss_plot")
    for summary in summaries.values():
        if summary is not None:
            assert json.loads(json.dumps(summary.as_json()))["anchor"] == summary.anchor


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium: apt-get install -y chromium")
def test_sample_report_renders_every_image(sample_pipeline: Path, tmp_path: Path) -> None:
    report = build_report(sample_pipeline, out=tmp_path / "sample.html")
    dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=5000", "--dump-dom", report.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    total = re.search(r'data-images-total="(\d+)"', dom)
    rendered = re.search(r'data-images-rendered="(\d+)"', dom)
    assert total and rendered and int(total[1]) >= 10 and rendered[1] == total[1]
