"""Equal inputs and seeds give byte-identical artifacts: the sample pipeline's outputs of every stage, run again
into a fresh workspace, are the same bytes, file by file; what changes from run to run (seconds, peak memory,
the device) is in the lock entry instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import kgpipe
from kgpipe.config import load_pipeline
from tests.sample_pipeline import TEST_EMBED_PARAMS, write_sample_pipeline

COMPARED = ("ingest", "extract", "fuse", "embed", "vectors", "inject", "export")


def _digests(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {p.relative_to(path.parent).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _outputs(pipeline: Path) -> dict[str, dict[str, str]]:
    pipe = load_pipeline(pipeline)
    result: dict[str, dict[str, str]] = {}
    for name in COMPARED:
        for out, path in pipe.stages[name].outs.items():
            result[f"{name}.{out}"] = _digests(path)
    return result


@pytest.fixture(scope="module")
def second_run(sample_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("second_run")
    pipeline = write_sample_pipeline(folder, TEST_EMBED_PARAMS)
    kgpipe.run(pipeline)
    return pipeline


def test_every_artifact_is_the_same_bytes_in_a_fresh_workspace(sample_pipeline: Path, second_run: Path) -> None:
    first, second = _outputs(sample_pipeline), _outputs(second_run)
    assert first.keys() == second.keys()
    differ = {out: sorted(f for f in first[out].keys() | second[out].keys()
                          if first[out].get(f) != second[out].get(f))
              for out in first if first[out] != second[out]}
    assert not differ, f"artifacts that differ between two equal runs: {differ}"
    assert sum(len(files) for files in first.values()) > 30   # the export folder's files are compared one by one


def test_timings_are_in_the_lock_entry_not_in_the_fusion_report(sample_pipeline: Path) -> None:
    report = kgpipe.load_artifact(sample_pipeline, "fuse.report")
    text = json.dumps(report)
    assert "seconds" not in text and "peak_mb" not in text
    assert report["resolution"]["records"] > 0    # the counts stay
    timings = kgpipe.stage_timings(sample_pipeline).set_index("stage")
    assert set(COMPARED) <= set(timings.index) and (timings["duration_s"] > 0).all()
    steps = [c for c in timings.columns if c.startswith("resolution_seconds.")]
    assert {"resolution_seconds.blocking", "resolution_seconds.clustering"} <= set(steps)
    assert timings.loc["fuse", "resolution_peak_mb_after.clustering"] > 0
    inject_metrics = json.dumps(kgpipe.load_artifact(sample_pipeline, "inject.metrics"))
    assert "second" not in inject_metrics and "time" not in inject_metrics


def test_the_model_config_names_its_embeddings_without_a_workspace_path(sample_pipeline: Path) -> None:
    model = kgpipe.artifact_path(sample_pipeline, "inject.model")
    config = json.loads((model / "kgpipe_encoder.json").read_text(encoding="utf-8"))
    where = config["embedding_artifact"]
    assert not Path(where).is_absolute() and (model / where).resolve() == kgpipe.artifact_path(
        sample_pipeline, "vectors.entity_vectors").resolve()
