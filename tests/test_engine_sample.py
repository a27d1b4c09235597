"""The default pipeline on sample_kg/ with `engine: ray` on the two-node test cluster writes the same bytes as
the local engine: the lock file's out hashes of extract and fuse equal the session's local run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sample_pipeline import TEST_EMBED_PARAMS, write_sample_pipeline


def out_hashes(pipeline: Path, stage: str) -> dict[str, str]:
    """A stage's out hashes keyed by the out's path inside the run's folder (the runs lie in different folders)."""
    folder = pipeline.parent
    lock = json.loads((folder / "ws/lock.json").read_text())
    return {Path(path).relative_to(folder).as_posix() if Path(path).is_absolute() else path: digest
            for path, digest in lock["stages"][stage]["outs"].items()}


@pytest.mark.slow
def test_sample_pipeline_on_ray_writes_the_local_bytes(sample_pipeline: Path, ray_cluster,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    import kgpipe

    pipeline = write_sample_pipeline(tmp_path_factory.mktemp("sample_ray"), TEST_EMBED_PARAMS)
    result = kgpipe.run(pipeline, until="fuse", engine="ray", address=ray_cluster.address)
    assert result.ran == ["ingest", "extract", "fuse"]
    assert set(out_hashes(pipeline, "extract")) == {"artifacts/extract/mentions.parquet",
                                                    "artifacts/extract/relations.parquet"}
    for stage in ("ingest", "extract", "fuse"):
        assert out_hashes(pipeline, stage) == out_hashes(sample_pipeline, stage), stage
