"""The embed stage's warm start and stable split: a triple's hash split does not move when triples are added,
entities and relations of the carved splits stay in training, persisting vectors are copied into a freshly
initialised model (new rows as the initialiser drew them), a model that does not fit trains from scratch and
says why, and the previous model's hash is an input recorded in the lock entry.

Tiny graphs, a few epochs, pinned batch sizes; measurements are in benchmarks/embed_warm_start.py.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from kgpipe.config import load_pipeline
from kgpipe.embed.config import ConfigError
from kgpipe.embed.data import build_graph
from kgpipe.embed.defaults import training_config
from kgpipe.embed.model_io import build_model, save_model
from kgpipe.embed.split import hash_position, hash_split
from kgpipe.embed.train import train_and_evaluate
from kgpipe.embed.warm_start import copy_vectors, plan_warm_start
from kgpipe.errors import PipelineError
from kgpipe.hashing import path_hash
from kgpipe.lockfile import LockFile
from kgpipe.runner import Workspace, run
from tests.test_embed import FAST, toy_graph, write_graph, write_pipeline

pytestmark = pytest.mark.filterwarnings("ignore:Training instances are always shuffled:DeprecationWarning")

Triple = tuple[str, str, str]
WARM = {**FAST, "warm_start": True, "warm_epochs": 2}


def random_triples(n: int, *, entities: int = 60, relations: int = 5, seed: int = 0) -> list[Triple]:
    rng = random.Random(seed)
    found: dict[Triple, None] = {}
    while len(found) < n:
        found[(f"e{rng.randrange(entities)}", f"r{rng.randrange(relations)}", f"e{rng.randrange(entities)}")] = None
    return list(found)


def assignment(split: Any) -> dict[Triple, str]:
    return {**{t: "training" for t in split.training},
            **{t: name for name, part in split.carved.items() for t in part}}


FRACTIONS = [("validation", 0.1), ("testing", 0.1)]


# --- the hash split ------------------------------------------------------------------------------------


def test_hash_split_keeps_test_triples_when_triples_are_added() -> None:
    base = random_triples(400)
    grown = base + [t for t in random_triples(460, entities=70, seed=1) if t not in set(base)][:40]
    before, after = assignment(hash_split(base, FRACTIONS, seed=3)), assignment(hash_split(grown, FRACTIONS, seed=3))
    moved_before = hash_split(base, FRACTIONS, seed=3).moved_to_training

    old_test = {t for t, s in before.items() if s == "testing"}
    assert old_test and all(after[t] == "testing" for t in old_test)
    assert all(after[t] == "validation" for t, s in before.items() if s == "validation")
    # an old training triple can only leave training if the coverage rule had moved it there
    left = [t for t, s in before.items() if s == "training" and after[t] != "training"]
    assert len(left) <= moved_before
    # with the previous model's training triples kept in training, none of them is ever evaluated on
    kept = hash_split(grown, FRACTIONS, seed=3, keep={t for t, s in before.items() if s == "training"})
    assert not any(t in kept.carved["testing"] or t in kept.carved["validation"]
                   for t, s in before.items() if s == "training")


def test_hash_split_keeps_every_carved_entity_and_relation_in_training_and_counts_the_moves() -> None:
    # a star: every leaf occurs in one triple only, so each carved triple must move to training
    triples = [("hub", "r", f"leaf{i}") for i in range(200)] + random_triples(200, entities=10)
    found = hash_split(triples, FRACTIONS, seed=0)
    entities = {e for h, _, t in found.training for e in (h, t)}
    relations = {r for _, r, _ in found.training}
    carved = [t for part in found.carved.values() for t in part]
    assert carved and all(h in entities and t in entities and r in relations for h, r, t in carved)
    assert not any(t[2].startswith("leaf") for t in carved)
    leaves_hashed_out = sum(1 for t in triples if t[2].startswith("leaf") and hash_position(t, 0) < 0.2)
    assert leaves_hashed_out > 0 and found.moved_to_training >= leaves_hashed_out
    assert len(found.training) + len(carved) == len(triples)
    # the order of the input does not change which split a triple is in
    shuffled = list(triples)
    random.Random(5).shuffle(shuffled)
    assert assignment(hash_split(shuffled, FRACTIONS, seed=0)) == assignment(found)


def test_build_graph_with_the_hash_split_reports_it_and_the_default_split_stays_pykeens() -> None:
    triples, _ = toy_graph()
    hashed = build_graph({"training": triples}, origin={"training": "t"}, split="hash", seed=1)
    assert hashed.stats()["hash_split"].keys() == {"moved_to_training", "kept_in_training"}
    assert "triple hash" in hashed.origin["testing"]
    assert hashed.training.num_triples + hashed.validation.num_triples + hashed.testing.num_triples == len(triples)
    default = build_graph({"training": triples}, origin={"training": "t"}, seed=1)
    assert "hash_split" not in default.stats()


# --- copying vectors -----------------------------------------------------------------------------------


def saved_previous(folder: Path, triples: list[Triple], config: Any) -> Any:
    """A model for `triples` with seed-99 weights (training is not needed to test the copy), as the stage saves
    it; returns the graph it belongs to."""
    graph = build_graph({"training": triples}, origin={"training": "t"}, split="hash", seed=1,
                        inverse_triples=config.inverse_triples)
    model = build_model(config.as_dict(), graph.training, random_seed=99)
    ids, rels = graph.entity_ids, graph.relation_ids
    save_model(folder, model, training_triples=graph.training.mapped_triples, config=config.as_dict(),
               entity_ids=ids, entity_labels=ids, relation_ids=rels, relation_labels=rels)
    return graph, model


def grown_graph(triples: list[Triple], config: Any) -> Any:
    """The graph plus one new entity with two triples, one of them of a new relation."""
    new_triples = [*triples, ("http://ex.org/newcomer", "http://ex.org/rel/knows", triples[0][0]),
                   ("http://ex.org/newcomer", "http://ex.org/rel/admires", triples[1][0])]
    return build_graph({"training": new_triples}, origin={"training": "t"}, split="hash", seed=1,
                       inverse_triples=config.inverse_triples)


def assert_rows(warm: Any, old_model: Any, fresh: Any, graph: Any, old_graph: Any) -> None:
    """Persisting entities and relations have the old model's rows, new ones the fresh model's."""
    for kind, new_ids, old_ids in (("entity", graph.entity_ids, old_graph.entity_ids),
                                   ("relation", graph.relation_ids, old_graph.relation_ids)):
        new_rows = getattr(warm, f"{kind}_representations")[0]._embeddings.weight.detach().cpu()
        old_rows = getattr(old_model, f"{kind}_representations")[0]._embeddings.weight.detach().cpu()
        fresh_rows = getattr(fresh, f"{kind}_representations")[0]._embeddings.weight.detach().cpu()
        per_id = new_rows.shape[0] // len(new_ids)
        for row, name in enumerate(new_ids):
            block = slice(row * per_id, (row + 1) * per_id)
            if name in old_ids:
                old = old_ids.index(name)
                assert torch.equal(new_rows[block], old_rows[old * per_id:(old + 1) * per_id])
                assert not torch.equal(new_rows[block], fresh_rows[block])
            else:  # as the model's own initialiser drew it for a from-scratch run at this seed
                assert torch.equal(new_rows[block], fresh_rows[block])


@pytest.mark.parametrize("model", ["TransE", "ComplEx"])  # ComplEx: complex dtype, reciprocal relation rows
def test_warm_start_copies_persisting_rows_and_new_rows_are_freshly_initialised(tmp_path: Path, model: str) -> None:
    config, _ = training_config(model, {"embedding_dim": 8, "seed": 7})
    triples, _ = toy_graph()
    old_graph, old_model = saved_previous(tmp_path / "model", triples, config)
    graph = grown_graph(triples, config)
    plan = plan_warm_start(tmp_path / "model", config)
    assert plan.previous is not None and plan.reason is None
    assert plan.previous.sha256 == path_hash(tmp_path / "model")

    fresh = build_model(config.as_dict(), graph.training, random_seed=config.seed)
    warm = build_model(config.as_dict(), graph.training, random_seed=config.seed)
    counts = copy_vectors(warm, plan.previous, graph)

    assert counts.entities_new == 1 and counts.relations_new == 1
    assert counts.entities_copied == len(old_graph.entity_ids)
    assert counts.relations_copied == len(old_graph.relation_ids)
    assert_rows(warm, old_model, fresh, graph, old_graph)


def test_training_starts_from_the_copied_rows(tmp_path: Path) -> None:
    """PyKEEN's training loop resets every weight when training starts: with a learning rate of 0 the trained
    model holds the rows training started from, which must be the previous model's (persisting ids) and a
    from-scratch run's (new ids)."""
    config, _ = training_config("TransE", {"embedding_dim": 8, "seed": 3, "optimizer": "sgd",
                                           "optimizer_kwargs": {"lr": 0.0}, "epochs": 1, "batch_size": 64,
                                           "early_stopping": False, "device": "cpu"})
    triples, _ = toy_graph()
    old_graph, old_model = saved_previous(tmp_path / "model", triples, config)
    graph = grown_graph(triples, config)
    plan = plan_warm_start(tmp_path / "model", config)
    assert plan.previous is not None
    warm = train_and_evaluate(graph, config, workdir=tmp_path / "warm", warm_start=plan.previous)
    scratch = train_and_evaluate(graph, config, workdir=tmp_path / "scratch")
    assert warm.outcome.warm_start == {"entities_copied": len(old_graph.entity_ids), "entities_new": 1,
                                       "relations_copied": len(old_graph.relation_ids), "relations_new": 1}
    assert_rows(warm.model, old_model, scratch.model, graph, old_graph)


def test_a_previous_model_that_does_not_fit_is_not_used_and_says_why(tmp_path: Path) -> None:
    config, _ = training_config("TransE", {"embedding_dim": 8})
    triples, _ = toy_graph()
    saved_previous(tmp_path / "model", triples, config)
    wider, _ = training_config("TransE", {"embedding_dim": 16})
    assert "embedding_dim: 8 -> 16" in str(plan_warm_start(tmp_path / "model", wider).reason)
    other, _ = training_config("DistMult", {"embedding_dim": 8})
    reason = str(plan_warm_start(tmp_path / "model", other).reason)
    assert "previous model is transe, this run trains distmult" in reason
    assert "no previous model" in str(plan_warm_start(tmp_path / "missing", config).reason)
    (tmp_path / "model" / "model.safetensors").write_bytes(b"damaged")
    assert "cannot be read" in str(plan_warm_start(tmp_path / "model", config).reason)


def test_a_model_whose_representations_cannot_be_copied_is_refused_by_name(tmp_path: Path) -> None:
    config, _ = training_config("CompGCN", {"embedding_dim": 8, "inverse_triples": True})
    triples, _ = toy_graph()
    graph, _ = saved_previous(tmp_path / "model", triples, config)
    plan = plan_warm_start(tmp_path / "model", config)
    assert plan.previous is not None
    model = build_model(config.as_dict(), graph.training, random_seed=0)
    with pytest.raises(ConfigError, match=r"CompGCN.*warm start copies only plain Embedding") as raised:
        copy_vectors(model, plan.previous, graph)
    assert "warm_start: false" in str(raised.value.hint)


# --- the stage -----------------------------------------------------------------------------------------


def lock_entry(root: Path) -> Any:
    return LockFile.read(Workspace(load_pipeline(root / "pipeline.yaml")).lock_path).stages["embed"]


def grow(root: Path, extra: int = 6) -> None:
    triples, labels = toy_graph()
    added = [(f"http://ex.org/new{i}", "http://ex.org/rel/knows", triples[i][0]) for i in range(extra)]
    write_graph(root, triples + added, {**labels, **{h: h.rsplit("/", 1)[1] for h, _, _ in added}})


def test_the_stage_warm_starts_from_its_previous_model_and_records_its_hash(tmp_path: Path, caplog) -> None:
    triples, labels = toy_graph()
    write_graph(tmp_path, triples, labels)
    pipeline = write_pipeline(tmp_path, **WARM)
    with caplog.at_level(logging.INFO, logger="kgpipe.stages.embed"):
        first = run(pipeline)
    assert "no previous model" in first.summaries["embed"]["warm_start_skipped"]
    assert any("training from scratch" in r.getMessage() for r in caplog.records)
    model_out = "artifacts/embed/model"
    first_model = lock_entry(tmp_path).outs[model_out]

    assert run(pipeline).skipped == ["embed"]  # its own model is not a change: nothing reruns

    grow(tmp_path)
    second = run(pipeline)
    summary = second.summaries["embed"]
    assert summary["warm_started_from"] == first_model  # the hash the lock file recorded for the model out
    assert summary["warm_start"]["entities_new"] == 6 and summary["warm_start"]["entities_copied"] > 0
    assert lock_entry(tmp_path).summary["warm_started_from"] == first_model
    metrics = json.loads((tmp_path / "artifacts/embed/metrics.json").read_text(encoding="utf-8"))
    assert metrics["warm_start"]["from"] == first_model
    assert metrics["training"]["epochs"] <= 2 and metrics["config"]["epochs"] == 2
    assert run(pipeline).skipped == ["embed"]


def test_a_changed_model_trains_from_scratch_and_logs_why(tmp_path: Path, caplog) -> None:
    triples, labels = toy_graph()
    write_graph(tmp_path, triples, labels)
    run(write_pipeline(tmp_path, **WARM))
    grow(tmp_path)
    with caplog.at_level(logging.INFO, logger="kgpipe.stages.embed"):
        result = run(write_pipeline(tmp_path, **{**WARM, "embedding_dim": 8}))
    reason = result.summaries["embed"]["warm_start_skipped"]
    assert "embedding_dim: 16 -> 8" in reason and "warm_started_from" not in result.summaries["embed"]
    assert any(reason in r.getMessage() for r in caplog.records)
    metrics = json.loads((tmp_path / "artifacts/embed/metrics.json").read_text(encoding="utf-8"))
    assert metrics["config"]["epochs"] == FAST["epochs"]  # from scratch: all the epochs


def test_same_inputs_previous_model_and_seed_give_byte_identical_outputs(tmp_path: Path) -> None:
    first = tmp_path / "a"
    triples, labels = toy_graph()
    write_graph(first, triples, labels)
    run(write_pipeline(first, **WARM))
    second = tmp_path / "b"
    shutil.copytree(first, second)
    outputs = []
    for root in (first, second):
        grow(root)
        result = run(write_pipeline(root, **WARM))
        assert "warm_started_from" in result.summaries["embed"]
        outputs.append({name: path_hash(path) for name, path in result.outputs["embed"].items()})
    assert outputs[0] == outputs[1]


def test_warm_start_settings_are_checked_when_the_pipeline_loads(tmp_path: Path) -> None:
    triples, labels = toy_graph()
    write_graph(tmp_path, triples, labels)
    with pytest.raises(PipelineError, match="split: hash"):
        run(write_pipeline(tmp_path, **WARM, split="pykeen"))
    with pytest.raises(PipelineError, match="warm_epochs applies only with warm_start"):
        run(write_pipeline(tmp_path, **FAST, warm_epochs=2))


def test_a_warm_run_evaluates_often_enough_for_early_stopping_to_act_within_its_epochs() -> None:
    from dataclasses import replace

    from kgpipe.embed.config import EarlyStopping
    from kgpipe.embed.warm_start import warm_config

    base = replace(training_config("ComplEx", {})[0], epochs=60, early_stopping=EarlyStopping(frequency=5, patience=3))
    warm = warm_config(base, None)
    assert warm.epochs == 15 and warm.early_stopping is not None
    # 15 epochs, patience 3: evaluations every 3 epochs (5 of them) let patience run out; every 5 (3) could not
    assert warm.early_stopping.frequency == 3 and warm.early_stopping.patience == 3
    assert warm.epochs // warm.early_stopping.frequency > warm.early_stopping.patience
    assert warm_config(base, 4).early_stopping.frequency == 1          # never less than every epoch
    rare = replace(base, early_stopping=EarlyStopping(frequency=2, patience=1))
    assert warm_config(rare, 30).early_stopping.frequency == 2         # never less often than configured
    assert warm_config(replace(base, early_stopping=None), None).early_stopping is None
