"""The explorer's static files: vendored JavaScript checked against its manifest, and a wheel that carries it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kgpipe.errors import DependencyMissingError
from kgpipe.web import vendor
from tests.conftest import REPO

OWN_ASSETS = ["app.css", "favicon.svg", "graph.js", "map.js", "predict.js", "query.js", "review.js", "status.js"]


@pytest.fixture(scope="module")
def vendored() -> Path:
    absent = vendor.missing()
    assert not absent, vendor.missing_message(absent)  # `make setup` vendors before the tests run
    return vendor.VENDOR


def test_own_scripts_never_parse_html() -> None:
    """Labels come from untrusted text: the scripts build elements and set textContent, never HTML strings."""
    for asset in OWN_ASSETS:
        if asset.endswith(".js"):
            code = (vendor.STATIC / asset).read_text(encoding="utf-8")
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
                assert sink not in code, f"{asset} uses {sink}"


def test_vendored_files_are_the_ones_the_manifest_records(vendored: Path) -> None:
    for item in vendor.MANIFEST:
        assert hashlib.sha256((vendored / item.name).read_bytes()).hexdigest() == item.sha256, item.name
    assert not any(".." in item.name or "/" in item.name for item in vendor.MANIFEST)


def test_missing_files_are_named_with_the_command_that_fetches_them(tmp_path: Path) -> None:
    assert vendor.missing(tmp_path) == ["cytoscape.min.js", "plotly.min.js"]
    (tmp_path / "plotly.min.js").write_text("x")
    assert vendor.missing(tmp_path) == ["cytoscape.min.js"]
    message = vendor.missing_message(vendor.missing(tmp_path))
    assert "cytoscape.min.js" in message and vendor.FETCH_COMMAND in message


def test_a_changed_source_fails_the_check(tmp_path: Path) -> None:
    source = tmp_path / "plotly.min.js"
    source.write_text("/* not plotly */")
    with pytest.raises(DependencyMissingError, match=r"sha256 .* plotly 7\.1\.0"):
        vendor._checked(vendor.MANIFEST[1], source)


def test_vendoring_again_rewrites_nothing_that_is_already_right(vendored: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in vendored.glob("*.js")}
    written = vendor.vendor(vendored)
    assert [p.name for p in written] == [item.name for item in vendor.MANIFEST]
    assert {p.name: p.stat().st_mtime_ns for p in vendored.glob("*.js")} == before


def test_a_wheel_carries_the_static_and_vendored_files(vendored: Path, tmp_path: Path) -> None:
    # built from a copy without the vendored files (so the build step must vendor them; the npm packages are
    # copied along, so that no registry is asked) and so that the checkout gets no build/ folder
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "setup.py"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "kgpipe", source / "kgpipe",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "vendor"))
    shutil.copytree(REPO / "web", source / "web")
    assert not (source / "kgpipe/web/static/vendor").exists()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("kgpipe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in OWN_ASSETS:
        assert f"kgpipe/web/static/{asset}" in names
    for item in vendor.MANIFEST:
        assert f"kgpipe/web/static/vendor/{item.name}" in names
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read("kgpipe/web/static/vendor/cytoscape.min.js")
    assert hashlib.sha256(data).hexdigest() == vendor.MANIFEST[0].sha256
