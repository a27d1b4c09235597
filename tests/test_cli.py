"""The CLI through typer's CliRunner: commands, output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from kgpipe.cli import app
from kgpipe.errors import LockedError, PipelineError
from tests.conftest import REPO
from tests.test_dag import chain, make_pipeline
from tests.toy_stages import write

runner = CliRunner()


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    write(tmp_path / "in/a.txt", "alpha")
    write(tmp_path / "in/d.txt", "delta")
    return make_pipeline(tmp_path, chain())


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_run_status_and_dry_run(pipeline: Path) -> None:
    dry = invoke("run", pipeline, "--dry-run")
    assert dry.exit_code == 0 and "would run a: never run" in dry.output
    assert not (pipeline.parent / "artifacts").exists()
    result = invoke("run", pipeline)
    assert result.exit_code == 0, result.output
    assert "ran 4 stage(s), 0 up to date" in result.output
    assert "artifacts/b/result.txt" in result.output
    again = invoke("run", pipeline)
    assert "ran 0 stage(s), 4 up to date" in again.output
    (pipeline.parent / "in/d.txt").write_text("changed")
    st = invoke("status", pipeline)
    assert st.exit_code == 0
    assert "up to date  a" in st.output and "stale       d: dep changed: in/d.txt" in st.output
    assert "nothing to run" not in invoke("run", pipeline, "--dry-run").output
    assert invoke("run", pipeline, "--only", "d").exit_code == 0
    assert "nothing to run" in invoke("run", pipeline, "--dry-run").output


def test_run_until_and_force(pipeline: Path) -> None:
    result = invoke("run", pipeline, "--until", "b")
    assert result.exit_code == 0 and "ran 2 stage(s)" in result.output
    assert "ran 1 stage(s)" in invoke("run", pipeline, "--until", "a", "--force").output


def test_dag_text_and_mermaid(pipeline: Path) -> None:
    text = invoke("dag", pipeline)
    assert text.exit_code == 0
    assert "b (toy_upper v1)  <- a" in text.output and "c (toy_concat v1)  <- b" in text.output
    mermaid = invoke("dag", pipeline, "--mermaid")
    assert mermaid.output.startswith("flowchart LR")
    assert "a -->|result.txt| b" in mermaid.output and "b -->|result.txt| c" in mermaid.output


def test_show_table_json_folder_and_unknown(pipeline: Path, tmp_path: Path) -> None:
    table = tmp_path / "t.parquet"
    pd.DataFrame({"id": ["x", "y", "z"], "n": [1, 2, 3]}).to_parquet(table)
    out = invoke("show", table, "--pipeline", pipeline, "--rows", "2").output
    assert "rows: 3" in out and "id: large_string" in out and "n: int64" in out and " y " in out and " z " not in out
    (tmp_path / "r.json").write_text(json.dumps({"documents": 3}))
    assert '"documents": 3' in invoke("show", tmp_path / "r.json").output
    invoke("run", pipeline)
    folder = invoke("show", "c.folder", "--pipeline", pipeline).output
    assert "files: 2" in folder and "all.txt" in folder
    assert "(file)" in invoke("show", "a.result", "--pipeline", pipeline).output
    missing = invoke("show", "a.nope", "--pipeline", pipeline)
    assert missing.exit_code != 0 and "no artifact 'a.nope'" in missing.output and "b.result" in missing.output


def test_show_preview_escapes_cells_before_aligning_them() -> None:
    from kgpipe.inspect import preview_text

    frame = pd.DataFrame({"label\x1b[1m": ["\x1b[31mred", "plain", "tab\there"], "ids": [["a\x07"], [], ["b"]]})
    lines = preview_text(frame).splitlines()
    assert "\x1b" not in "".join(lines) and "\x07" not in "".join(lines)
    assert "\\x1b[31mred" in lines[1] and "label\\x1b[1m" in lines[0] and "['a\\x07']" in lines[1]
    assert len({len(line) for line in lines}) == 1, "columns stay aligned: widths counted on the escaped text"


def test_errors_exit_non_zero_with_file_line_and_hint(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("stages:\n  x:\n    type: nope\n")
    result = invoke("run", path)
    assert result.exit_code == PipelineError.exit_code
    assert f"{path}:3: stage 'x': unknown stage type 'nope'" in result.output.replace("\n", "")
    assert "hint:" in result.output
    write(tmp_path / "in/a.txt", "alpha")
    path = make_pipeline(tmp_path, {"a": {"type": "toy_upper", "deps": {"source": "in/a.txt"},
                                          "params": {"fail": "error"}}})
    failed = invoke("run", path)
    assert failed.exit_code == 4 and "stage 'a': RuntimeError: boom" in failed.output
    assert "Traceback" not in failed.output
    verbose = invoke("-v", "run", path)
    assert verbose.exit_code == 4 and "Traceback" in verbose.output and "toy_stages.py" in verbose.output


def test_locked_workspace_exit_code(pipeline: Path) -> None:
    from kgpipe.config import load_pipeline
    from kgpipe.runner import Workspace

    held = Workspace(load_pipeline(pipeline)).acquire(wait=0)
    try:
        result = subprocess.run([sys.executable, "-c", (
            "import sys, tests.toy_stages; from kgpipe.cli import main; sys.argv=['kgpipe','run',sys.argv[1]]; main()"),
            str(pipeline)], cwd=REPO, capture_output=True, text=True, timeout=60)
    finally:
        held.release()
    assert result.returncode == LockedError.exit_code, result.stderr
    assert "another kgpipe run is using the workspace" in result.stderr


def test_stages_lists_registered_types() -> None:
    result = invoke("stages")
    assert result.exit_code == 0 and "ingest v2" in result.output and "corpus" in result.output


def test_status_does_not_import_heavy_libraries() -> None:
    """`kgpipe status` must stay fast: spaCy, torch, PyKEEN and pandas load only inside stages that run."""
    code = ("import sys, kgpipe; kgpipe.status('pipelines/default.yaml'); "
            "print(sorted(m for m in ('spacy', 'torch', 'pykeen', 'transformers', 'pandas') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
