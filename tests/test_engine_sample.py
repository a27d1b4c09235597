"""The default pipeline on sample_kg/ with `engine: ray` on the two-node test cluster writes the same bytes as
the local engine: the lock file's out hashes of extract and fuse equal the session's local run, with other
document ranges than the local run's one and an extraction worker killed on the way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kgpipe.nlp import extract_worker
from tests.sample_pipeline import TEST_EMBED_PARAMS, write_sample_pipeline
from tests.test_extract_ray import extract_summary, third_range_document


def out_hashes(pipeline: Path, stage: str) -> dict[str, str]:
    """A stage's out hashes keyed by the out's path inside the run's folder (the runs lie in different folders)."""
    folder = pipeline.parent
    lock = json.loads((folder / "ws/lock.json").read_text())
    return {Path(path).relative_to(folder).as_posix() if Path(path).is_absolute() else path: digest
            for path, digest in lock["stages"][stage]["outs"].items()}


@pytest.mark.slow
def test_sample_pipeline_on_ray_writes_the_local_bytes_with_a_worker_killed(
        sample_pipeline: Path, ray_cluster, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import kgpipe

    folder = tmp_path_factory.mktemp("sample_ray")
    pipeline = write_sample_pipeline(folder, TEST_EMBED_PARAMS)
    # ranges of some 8 KB: a dozen of them over the two actors, against the local run's one; the actor that
    # reaches a document of the third range dies once, with ranges in flight on both
    monkeypatch.setattr(extract_worker, "RANGE_CHARS", 8_000)
    marker = folder / "crashed"
    monkeypatch.setenv(extract_worker.FAULT_ENV, f"{third_range_document(sample_pipeline.parent)}@{marker}")
    result = kgpipe.run(pipeline, until="fuse", engine="ray", address=ray_cluster.address)
    assert result.ran == ["ingest", "extract", "fuse"]
    assert marker.exists(), "the fault hook never fired: no worker died"
    assert result.summaries["extract"]["mentions"] > 0 and result.summaries["extract"]["relations"] > 0
    assert set(out_hashes(pipeline, "extract")) == {"artifacts/extract/mentions.parquet",
                                                    "artifacts/extract/relations.parquet"}
    for stage in ("ingest", "extract", "fuse"):
        assert out_hashes(pipeline, stage) == out_hashes(sample_pipeline, stage), stage
    assert extract_summary(pipeline) == extract_summary(sample_pipeline)
