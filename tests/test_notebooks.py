"""The notebooks in notebooks/ run top to bottom without error (nbclient), against the sample pipeline run
once for the session; they are committed without outputs and match their generator."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# pictures each notebook must draw: 01 degrees, overlap, ego network; 02 PCA, training curve
IMAGES = {"01_inspect_graph.ipynb": 3, "02_embeddings.ipynb": 2}
# a line each notebook prints only when its analysis found something
EXPECTED_TEXT = {"01_inspect_graph.ipynb": ("text", "doc_"), "02_embeddings.ipynb": ("in_training", "mrr")}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, sample_pipeline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGPIPE_PIPELINE", str(sample_pipeline))   # the kernel inherits the environment
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type in ("execute_result", "display_data", "stream") for o in outputs)
    text = "\n".join(o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
                     for o in outputs)
    assert str(sample_pipeline) in text, "the notebook must run the pipeline it was pointed at"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= IMAGES.get(path.name, 0)
    for expected in EXPECTED_TEXT.get(path.name, ()):
        assert expected in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_generated_notebooks_match_their_generator(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("build_notebooks", REPO / "notebooks/build_notebooks.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    for written in builder.build(tmp_path):
        assert written.read_text() == (REPO / "notebooks" / written.name).read_text(), (
            f"{written.name} differs from notebooks/build_notebooks.py: run python notebooks/build_notebooks.py")
