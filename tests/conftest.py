"""Shared test set-up: offline model hubs, PyKEEN's data folder inside the workspace."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PYSTOW_HOME", str(REPO / ".pystow"))

# the sample pipeline run once per session, for the notebook, report and kgpipe.explore tests
from tests.sample_pipeline import sample_pipeline  # noqa: E402,F401
