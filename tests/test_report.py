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
from kgpipe.report import build_report
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
    assert not re.search(r'(src|href)="(?!data:)', page), "nothing may be loaded from outside the file"


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
