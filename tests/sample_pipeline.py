"""The default pipeline on sample_kg/, end to end, in a temporary folder: one run per test session, shared by
the notebook, report and API tests (a shorter embed training than the default keeps it to about a minute).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Few epochs and a small dimension: the tests check plumbing and pictures, not embedding quality.
TEST_EMBED_PARAMS = {"embedding_dim": 16, "epochs": 6, "early_stopping": {"frequency": 3, "patience": 5}}


def write_sample_pipeline(folder: Path, embed_params: dict[str, Any] | None = None) -> Path:
    """pipelines/default.yaml with artifacts and workspace in `folder`, deps on other stages' outputs following
    them; embed_params override the embed stage's params. Returns the new pipeline file."""
    cfg = yaml.safe_load((REPO / "pipelines/default.yaml").read_text(encoding="utf-8"))
    cfg.update(root=str(REPO), artifacts=str(folder / "artifacts"), workspace=str(folder / "ws"),
               allow_outside=[str(folder)])  # the outputs go to the test's own folder, outside the repository
    for stage in cfg["stages"].values():
        for name, value in stage.get("deps", {}).items():
            moved = [str(folder / v) if v.startswith("artifacts/") else v
                     for v in (value if isinstance(value, list) else [value])]
            stage["deps"][name] = moved if isinstance(value, list) else moved[0]
    if embed_params:
        cfg["stages"]["embed"].setdefault("params", {}).update(embed_params)
    pipeline = folder / "default.yaml"
    pipeline.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return pipeline


@pytest.fixture(scope="session")
def sample_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample pipeline, run once through every stage; its pipeline file."""
    import kgpipe

    pipeline = write_sample_pipeline(tmp_path_factory.mktemp("sample_run"), TEST_EMBED_PARAMS)
    kgpipe.run(pipeline)
    return pipeline
