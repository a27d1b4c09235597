"""extract on the Ray engine: a document that kills every worker it meets is named, a worker that cannot load its
model is not blamed on a document, and spaCy's output does not depend on how documents are batched (what lets
ranges be cut anywhere). That the sample pipeline's outputs are the local bytes on Ray, with other document
ranges and a worker killed on the way, is tests/test_engine_sample.py; the helpers here serve it and the local
worker processes' tests (tests/test_engine_pool.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kgpipe.cli import app
from kgpipe.config import load_pipeline
from kgpipe.errors import StageError
from kgpipe.lockfile import LockFile
from kgpipe.nlp import extract_worker
from kgpipe.runner import Workspace, run
from tests.conftest import REPO
from tests.test_extract import write_inputs

OUTS = ("mentions.parquet", "relations.parquet")


def extract_outs(pipeline: Path) -> dict[str, str]:
    return LockFile.read(Workspace(load_pipeline(pipeline)).lock_path).stages["extract"].outs


def extract_summary(pipeline: Path) -> dict[str, object]:
    summary = LockFile.read(Workspace(load_pipeline(pipeline)).lock_path).stages["extract"].summary
    return {k: v for k, v in summary.items() if k != "timings"}


def forget_cached(pipeline: Path, where: str = "1", *args: object) -> int:
    """Drop the extract cache's entries `where` (an SQL condition on doc_id, ...; all by default), so that their
    documents go to the engine again; how many were dropped."""
    import sqlite3
    from contextlib import closing

    from kgpipe.stages.extract_cache import cache_path

    with closing(sqlite3.connect(cache_path(load_pipeline(pipeline).workspace))) as db, db:
        return int(db.execute(f"DELETE FROM entries WHERE {where}", args).rowcount)


def out_bytes(folder: Path) -> dict[str, bytes]:
    return {name: (folder / "artifacts" / "extract" / name).read_bytes() for name in OUTS}


def on_ray(pipeline: Path, address: str, **executor: object) -> None:
    """Give the pipeline file an executor block for the test cluster."""
    cfg = yaml.safe_load(pipeline.read_text(encoding="utf-8"))
    cfg["executor"] = {"engine": "ray", "address": address, "workers": 2, **executor}
    pipeline.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


def third_range_document(folder: Path) -> str:
    """A document of the third 8 KB range: the fault strikes with ranges in flight on both actors."""
    import pyarrow.parquet as pq

    table = pq.read_table(folder / "artifacts" / "ingest" / "documents.parquet", columns=["doc_id", "text"])
    ranges = list(extract_worker.document_ranges(zip(table["doc_id"].to_pylist(), table["text"].to_pylist(),
                                                     strict=True)))
    assert len(ranges) >= 6
    return ranges[2].doc_ids[-1]


BAD_DOCS = [("a", "Alan Turing was born in London."), ("b", "Max Born lived in Breslau."),
            ("killer", "Alan Turing worked for the University of Cambridge."), ("d", "Max Born was born in Breslau.")]


def test_a_document_that_kills_every_worker_is_named_and_nothing_is_committed(
        tmp_path: Path, ray_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_the_killer_is_named(write_inputs(tmp_path, BAD_DOCS), monkeypatch, "on each of 2 tries (max_task_retries 1)",
                               lambda p: on_ray(p, ray_cluster.address, max_restarts=1, max_task_retries=1))


def assert_the_killer_is_named(pipeline: Path, monkeypatch: pytest.MonkeyPatch, tries: str,
                               configure: Callable[[Path], None] = lambda p: None) -> None:
    """Run `pipeline` (BAD_DOCS) locally, then again, `configure`d, with document 'killer' killing every worker
    process: the run fails with exit 4 naming it and saying how it was tried, and leaves the first run's outputs
    and lock file as they were."""
    run(pipeline)
    root = pipeline.parent
    outputs = root / "artifacts" / "extract"
    before = {p.name: p.read_bytes() for p in sorted(outputs.iterdir())}
    lock = Workspace(load_pipeline(pipeline)).lock_path.read_bytes()
    forget_cached(pipeline)  # every document goes to the engine again
    monkeypatch.setenv(extract_worker.FAULT_ENV, "killer")
    configure(pipeline)
    result = CliRunner().invoke(app, ["run", str(pipeline), "--force"])
    assert result.exit_code == 4, result.output
    # without the lines Ray's log monitor prints from the workers meanwhile ("(raylet) Task ... failed", ...)
    own = [line for line in result.output.splitlines() if "(raylet)" not in line and " pid=" not in line]
    message = " ".join(" ".join(own).split())
    assert f"document 'killer' (documents.parquet row 3) killed its worker process, {tries}, and once more alone" \
        in message
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in sorted(outputs.iterdir())} == before
    assert Workspace(load_pipeline(pipeline)).lock_path.read_bytes() == lock


def test_a_python_error_in_one_document_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kgpipe.nlp.extractor import Extractor

    extract_doc = Extractor.extract_doc

    def failing(self, doc, doc_id, *args, **kwargs):  # type: ignore[no-untyped-def]
        if doc_id == "killer":
            raise ValueError("a bug met on this text")
        return extract_doc(self, doc, doc_id, *args, **kwargs)

    monkeypatch.setattr(Extractor, "extract_doc", failing)
    with pytest.raises(StageError) as info:
        run(write_inputs(tmp_path, BAD_DOCS))
    assert "document 'killer' (documents.parquet row 3): extraction failed: ValueError: a bug met on this text" \
        in str(info.value)
    assert not list((tmp_path / "artifacts").rglob("*.parquet"))  # nothing committed, no half-written file


# --- batching -------------------------------------------------------------------------------------------


def sample_sentences(limit: int) -> list[tuple[str, str]]:
    """The sample corpus's sentences, each a document, plus some generated ones mixing its names."""
    sentences = [s for p in sorted((REPO / "sample_kg" / "corpus").glob("*.txt"))
                 for s in re.split(r"(?<=[.!?])\s+", " ".join(p.read_text(encoding="utf-8").split())) if s]
    names = ["Max Born", "Alan Turing", "Lise Meitner", "the University of Cambridge", "Breslau", "London"]
    made = [f"{names[i % 6]} met {names[(i * 5 + 1) % 6]} in {names[(i * 7 + 4) % 6]} in {1900 + i}."
            for i in range(40)]
    docs = [*sentences[:limit - len(made)], *made]
    return [(f"s{i}", text) for i, text in enumerate(docs)]


def test_batching_and_ranges_do_not_change_the_rows(nlp) -> None:
    from kgpipe.kg.seed import SeedOptions, merge_seeds, read_seed
    from kgpipe.nlp.extractor import ExtractOptions, build_extractor, extract_documents
    from kgpipe.nlp.patterns import load_patterns

    docs = sample_sentences(300)
    assert len(docs) == 300
    library = load_patterns([REPO / "pipelines" / "patterns"])
    seeds, _, _ = merge_seeds(read_seed(REPO / "sample_kg" / name, name, "auto",
                                        SeedOptions(tsv_namespace="http://kgpipe.org/sample/"))
                              for name in ("seed_kg.ttl", "extra_seed.tsv"))

    def rows(ranges: int, **options: int) -> list[tuple[list, list, int]]:
        extractor, _ = build_extractor(nlp, options=ExtractOptions(**options), seed_entities=seeds,
                                       patterns=library)
        step = -(-len(docs) // ranges)
        return [(r.mentions, r.relations, r.sentences) for i in range(0, len(docs), step)
                for r in extract_documents(extractor, docs[i:i + step])]

    reference = rows(1)  # batches of 64 documents, as locally by default
    assert sum(len(m) for m, _, _ in reference) > 300 and sum(len(r) for _, r, _ in reference) > 20
    for ranges, options in ((7, {"batch_size": 5}), (1, {"batch_size": 1}),
                            (3, {"max_batch_chars": 700}), (2, {"batch_size": 64, "n_process": 2})):
        assert rows(ranges, **options) == reference, (ranges, options)


def test_a_worker_that_cannot_load_its_model_is_not_blamed_on_a_document(ray_cluster, tmp_path: Path) -> None:
    """A node without the spaCy model fails with the model's error (exit 7), not as a document killing workers."""
    import ray

    from kgpipe.engine import ExecutorConfig
    from kgpipe.engine.ray import RayExecutor
    from kgpipe.errors import DependencyMissingError
    from kgpipe.nlp.extractor import ExtractOptions, GazetteerOptions

    connected = not ray.is_initialized()
    if connected:
        ray.init(address=ray_cluster.address, include_dashboard=False, log_to_driver=False)
    spec = extract_worker.WorkerSpec(model=str(tmp_path / "no_model"), options=ExtractOptions(),
                                     gazetteer=GazetteerOptions())
    executor = RayExecutor(ExecutorConfig(engine="ray", workers=1, max_restarts=1, max_task_retries=1), "extract")
    try:
        with pytest.raises(DependencyMissingError, match="no_model"):
            list(executor.map_ordered(extract_worker.ExtractWorker, (spec,),
                                      [extract_worker.DocumentRange(1, ("a",), ("Alan Turing.",))], what="extract"))
    finally:
        if connected:  # as the other tests expect to find it: the runs connect and disconnect themselves
            ray.shutdown()
