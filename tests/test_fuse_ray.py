"""Fuse on the Ray engine (issue 16, item 3): each resolution driver runs the same step functions through an
executor, so every step, `resolve` and the fuse stage give the same output on a two-node Ray cluster as in
process. Small chunk sizes make every map step run as many tasks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from kgpipe.engine import ExecutorConfig, LocalExecutor
from kgpipe.kg import chunking
from kgpipe.kg.blocking import block_names
from kgpipe.kg.cluster import cluster_nodes, components
from kgpipe.kg.features import NameFeatures, featurize_names
from kgpipe.kg.nodes import RecordColumns, build_nodes, name_keys, node_pairs
from kgpipe.kg.pair_scoring import KnownScores, node_table, score_pairs
from kgpipe.kg.resolve import Record, Resolution, _score_in_chunks, resolve
from kgpipe.kg.similarity import ResolutionConfig
from tests.benchmark_modules import import_benchmark
from tests.test_fuse_steps import NAMES, MatrixScorer, _giant_component

RUN_DEPENDENT = ("seconds", "cpu_seconds", "peak_mb_after")


@pytest.fixture(scope="module")
def engines(ray_cluster):
    """(local, ray) executors; the Ray one on the session's two-node cluster."""
    import ray

    from kgpipe.engine.ray import RayExecutor

    if not ray.is_initialized():
        ray.init(address=ray_cluster.address, include_dashboard=False, log_to_driver=False)
    return LocalExecutor(ExecutorConfig(), "fuse"), RayExecutor(ExecutorConfig(engine="ray"), "fuse")


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk sizes that cut these small inputs into several tasks per step."""
    monkeypatch.setattr(chunking, "NAMES", 17)
    monkeypatch.setattr(chunking, "PAIRS", 150)
    monkeypatch.setattr(chunking, "GUARD_PAIRS", 40)
    monkeypatch.setattr(chunking, "MENTIONS", 25)


def chain_names(length: int = 14) -> list[str]:
    """Names along a chain: each shares three of its four words with the next, so neighbours score high and
    the ends share nothing (a giant component the guard must cut)."""
    words = ["Velor", "Quandt", "Miraso", "Tebbick", "Orlanze", "Pashund", "Crevitt", "Dolmare", "Hestrum",
             "Junnavo", "Kelbrith", "Lostrane", "Narvesh", "Pembrile", "Sorquent", "Tavindel", "Wexmoor"]
    return [" ".join(words[i:i + 4]) + " Institute" for i in range(length)]


@pytest.fixture(scope="module")
def synthetic():
    """Nodes, features and candidate pairs of the test names plus a chain of names, each said a few times."""
    config = ResolutionConfig()
    names = NAMES + chain_names()
    texts = [name for i, name in enumerate(names) for _ in range(1 + i % 3)]
    records = [Record(str(i), text, type="ORG" if i % 5 else None) for i, text in enumerate(texts)]
    nodes = build_nodes(RecordColumns.of(records), name_keys(texts, config.normalize.options()), config)
    return config, records, nodes


def same_features(a: NameFeatures, b: NameFeatures) -> None:
    for field in dataclasses.fields(NameFeatures):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, dict):
            assert x.keys() == y.keys(), field.name
            for key in x:
                assert x[key].shape == y[key].shape and (x[key] != y[key]).nnz == 0, (field.name, key)
        elif hasattr(x, "tocsr"):  # sparse
            assert x.shape == y.shape and (x != y).nnz == 0, field.name
            assert np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices), field.name
        elif isinstance(x, np.ndarray):
            assert np.array_equal(x, y), field.name
        else:
            assert x == y, field.name


def test_each_resolution_step_is_the_same_on_ray(engines, synthetic, small_chunks) -> None:
    local, ray = engines
    config, _, nodes = synthetic
    raw, keys = list(nodes.spellings), list(nodes.names)
    assert len(keys) > 3 * chunking.NAMES  # several name chunks
    # features: name reading and word assembly mapped over name chunks
    features = featurize_names(raw, config, keys=keys, executor=local)
    same_features(featurize_names(raw, config, keys=keys, executor=ray), features)
    same_features(featurize_names(raw, config, keys=keys, executor=local), features)
    # blocking: signatures per name chunk, one task per band
    blocked = block_names(features, config.blocking, config.ngram, executor=local)
    on_ray = block_names(features, config.blocking, config.ngram, executor=ray)
    assert np.array_equal(on_ray.pairs, blocked.pairs) and on_ray.stats == blocked.stats
    assert len(blocked.pairs) > 20
    # scoring: pair chunks with the table sent once; equal to scoring every pair in one call
    table = node_table(nodes, features, config)
    left, right = node_pairs(blocked.pairs, nodes.name_of_node, len(nodes.names))
    assert len(left) > 2 * chunking.PAIRS
    scores = _score_in_chunks(table, left, right, None, local)
    assert np.array_equal(_score_in_chunks(table, left, right, None, ray), scores)
    assert np.array_equal(scores, score_pairs(table, left, right))
    # clustering: components per engine, the guard per group of components
    scorer = KnownScores(table, left, right, scores, len(nodes))
    args = (len(nodes), left, right, scores, config.threshold)
    kwargs = {"anchors": nodes.anchor_ids(), "scorer": scorer, "group_threshold": config.cluster_threshold}
    labels, stats = cluster_nodes(*args, **kwargs, executor=local)
    ray_labels, ray_stats = cluster_nodes(*args, **kwargs, executor=ray)
    assert np.array_equal(ray_labels, labels) and ray_stats == stats
    # the chain was one component that the guard cut
    chain_keys = set(name_keys(chain_names(), config.normalize.options()))
    chain_nodes = [i for i, key in enumerate(nodes.keys) if key in chain_keys]
    first = components(len(nodes), left[scores >= config.threshold], right[scores >= config.threshold])
    assert len(chain_keys) == 14 and len(set(first[chain_nodes].tolist())) == 1
    assert len(set(labels[chain_nodes].tolist())) > 1 and stats.components_split >= 1


def test_clustering_a_giant_component_is_the_same_on_ray(engines, small_chunks) -> None:
    local, ray = engines
    k, sim, left, right, score, anchors = _giant_component()
    n = k + 3  # and three nodes in no pair, each its own cluster
    anchors = np.r_[anchors, [-1, -1, -1]]
    # max_exact 5: the giant component is cut into pieces first, clustered, and the pieces joined again
    kwargs = {"anchors": anchors, "scorer": MatrixScorer(sim), "max_exact": 5, "batch_pairs": 10}
    labels, stats = cluster_nodes(n, left, right, score, 0.5, **kwargs, executor=local)
    ray_labels, ray_stats = cluster_nodes(n, left, right, score, 0.5, **kwargs, executor=ray)
    assert np.array_equal(ray_labels, labels) and ray_stats == stats
    assert (labels <= np.arange(n)).all() and np.array_equal(labels[labels], labels)  # smallest member
    assert np.array_equal(labels[k:], np.arange(k, n))
    assert stats.components_split >= 1 and stats.large_components_cut == 1
    assert ray.components_stats.rounds >= 1  # the distributed algorithm ran, not scipy


def same_resolution(a: Resolution, b: Resolution) -> None:
    assert a.record_ids == b.record_ids and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.node_of, b.node_of) and a.node_names == b.node_names
    for x, y in zip(a.accepted, b.accepted, strict=True):
        assert np.array_equal(x, y)
    assert a.candidate_names is not None and np.array_equal(a.candidate_names, b.candidate_names)
    strip = lambda stats: {k: v for k, v in stats.items() if k not in RUN_DEPENDENT}  # noqa: E731
    assert strip(a.stats) == strip(b.stats)


def test_resolve_is_the_same_on_ray_for_synthetic_records(engines, monkeypatch: pytest.MonkeyPatch) -> None:
    generate = import_benchmark("er_scale").generate
    local, ray = engines
    monkeypatch.setattr(chunking, "NAMES", 400)
    monkeypatch.setattr(chunking, "PAIRS", 2000)
    monkeypatch.setattr(chunking, "GUARD_PAIRS", 500)
    mentions, _ = generate(3000)
    records = [Record(str(i), m) for i, m in enumerate(mentions)]
    expected = resolve(records, executor=local, keep_candidates=True)
    assert expected.stats["names"] > 2 * chunking.NAMES and expected.stats["scored_pairs"] > 2 * chunking.PAIRS
    assert expected.stats["components_split"] >= 1  # chained pairs the guard cut
    same_resolution(resolve(records, executor=ray, keep_candidates=True), expected)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample pipeline run locally up to fuse; its pipeline file."""
    import kgpipe
    from tests.sample_pipeline import write_sample_pipeline

    pipeline = write_sample_pipeline(tmp_path_factory.mktemp("fuse_ray"))
    kgpipe.run(pipeline, until="fuse", engine="local")
    return pipeline


def test_resolve_is_the_same_on_ray_for_the_sample_mentions(engines, sample_run: Path, small_chunks,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from kgpipe.artifacts import MENTIONS, SEED_ENTITIES, SEED_TRIPLES, read_table
    from kgpipe.kg import fusion_steps as step
    from kgpipe.kg.link import SeedIndex
    from kgpipe.vocab import DEFAULT_LABEL_MAP, DEFAULT_TYPE_PARENTS

    local, ray = engines
    artifacts = sample_run.parent / "artifacts"
    config = ResolutionConfig()
    options = config.normalize.options()
    found, _ = step.read_mentions(read_table(artifacts / "extract/mentions.parquet", MENTIONS), DEFAULT_LABEL_MAP,
                                  options)
    index = SeedIndex(read_table(artifacts / "ingest/seed_entities.parquet", SEED_ENTITIES).to_dict("records"),
                      read_table(artifacts / "ingest/seed_triples.parquet", SEED_TRIPLES).to_dict("records"),
                      options)
    compat = step.type_compat(DEFAULT_TYPE_PARENTS)
    anchors = step.anchor_mentions(found, index, {}, compat, executor=local)
    with monkeypatch.context() as whole:  # one chunk: each mention sees all of its document's mentions
        whole.setattr(chunking, "MENTIONS", len(found))
        assert step.anchor_mentions(found, index, {}, compat, executor=local) == anchors
    assert step.anchor_mentions(found, index, {}, compat, executor=ray) == anchors
    assert len(found) > 3 * chunking.MENTIONS and sum(a is not None for a in anchors.anchors) > 10
    records = step.mention_records(found, anchors.anchors, step.document_keys(found, "document"))
    expected = resolve(records, config, type_parents=DEFAULT_TYPE_PARENTS, executor=local, keep_candidates=True)
    assert expected.stats["accepted_pairs"] > 0
    same_resolution(resolve(records, config, type_parents=DEFAULT_TYPE_PARENTS, executor=ray,
                                    keep_candidates=True), expected)


def test_the_fuse_stage_on_ray_writes_the_same_outputs(ray_cluster, sample_run: Path) -> None:
    import kgpipe
    from kgpipe.config import as_pipeline
    from kgpipe.lockfile import LockFile
    from kgpipe.runner import Workspace

    lock_path = Workspace(as_pipeline(sample_run)).lock_path
    local = LockFile.read(lock_path).stages["fuse"]
    kgpipe.run(sample_run, only="fuse", force=True, engine="ray", address=ray_cluster.address)
    remote = LockFile.read(lock_path).stages["fuse"]
    assert remote.started_at != local.started_at  # it ran again
    assert remote.outs == local.outs and len(local.outs) == 7  # learned_weights.json too
    assert "components_ray" not in local.summary["timings"]
    assert remote.summary["timings"]["components_ray"]["rounds"] >= 1  # timings in the lock entry
    strip = {"timings"}
    assert {k: v for k, v in remote.summary.items() if k not in strip} == {
        k: v for k, v in local.summary.items() if k not in strip}


def test_seed_anchoring_sees_a_mentions_whole_document_in_any_chunk(engines, monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    """Two seed entities named Cambridge: the names around a mention in its document decide, also when the
    mention's chunk holds none of them."""
    from kgpipe.kg import fusion_steps as step
    from kgpipe.kg.link import SeedIndex
    from kgpipe.kg.normalize import normalize_name
    from kgpipe.vocab import DEFAULT_TYPE_PARENTS

    local, ray = engines
    seeds = [{"iri": iri, "label": label, "aliases": [], "types": [], "sources": ["s"]} for iri, label in [
        ("ex:cam_uk", "Cambridge"), ("ex:cam_us", "Cambridge"), ("ex:england", "England"),
        ("ex:mass", "Massachusetts")]]
    index = SeedIndex(seeds, [{"head": "ex:cam_uk", "tail": "ex:england"}, {"head": "ex:cam_us", "tail": "ex:mass"}],
                      ResolutionConfig().normalize.options())
    said = [("d1", "England", 0), ("d2", "Massachusetts", 0), ("d1", "Cambridge", 30), ("d2", "Cambridge", 40)]
    mentions = [step.Mention(f"m{i}", doc, text, normalize_name(text), None, start, None)
                for i, (doc, text, start) in enumerate(said)]
    compat = step.type_compat(DEFAULT_TYPE_PARENTS)
    monkeypatch.setattr(chunking, "MENTIONS", 1)  # every mention alone in its chunk
    anchors = step.anchor_mentions(mentions, index, {}, compat, executor=local)
    assert anchors.anchors == ("ex:england", "ex:mass", "ex:cam_uk", "ex:cam_us")
    assert anchors.how == {"unique": 2, "context": 2}
    assert step.anchor_mentions(mentions, index, {}, compat, executor=ray) == anchors
