"""Shared test set-up: offline model hubs, PyKEEN's data folder inside the workspace."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PYSTOW_HOME", str(REPO / ".pystow"))

# one two-node Ray cluster per session, for the Ray engine's tests; the sample pipeline run once per session,
# for the notebook, report and kgpipe.explore tests; a small fuse run with learned weights, for explain's views
from tests.learned_run import learned_fuse  # noqa: E402,F401
from tests.ray_cluster import ray_cluster  # noqa: E402,F401
from tests.sample_pipeline import sample_pipeline  # noqa: E402,F401
from tests.tiny_encoder import one_torch_thread  # noqa: E402,F401


@pytest.fixture(scope="session")
def nlp() -> Any:
    """The stock English pipeline, as load_model caches it for the whole test session."""
    from kgpipe.nlp.models import load_model

    return load_model("auto")
