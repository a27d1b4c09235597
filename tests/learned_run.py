"""A fuse run with learned match weights (resolution.learn: em) on tests/test_fuse.py's hand-written mentions: one
per test session, shared by the tests that read it (learned weights, kgpipe explain, the report's and the
explorer's waterfalls). Its users only read it: a test that runs the stage again makes its own."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def learned_fuse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's root folder (pipeline.yaml, in/, artifacts/fuse/)."""
    from tests.test_fuse import DOCS, fuse, write_inputs

    root = tmp_path_factory.mktemp("learned")
    write_inputs(root, DOCS)
    fuse(root, resolution={"learn": "em"})
    return root
