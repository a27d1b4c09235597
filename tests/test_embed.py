"""The embed stage through the runner on a small synthetic graph: outputs and id maps, reproducibility,
resume after an interruption, early stopping, error cases, the complex-valued layout, link prediction.

Every run trains a tiny model for a few epochs (seconds); heavier measurements live in benchmarks/.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from safetensors.numpy import load_file

from kgpipe.artifacts import ENTITIES, write_table
from kgpipe.config import load_pipeline
from kgpipe.embed import LinkPredictor
from kgpipe.embed.export import complex_from_real, read_embeddings
from kgpipe.embed.model_io import load_model
from kgpipe.errors import InputError, KgpipeError, PipelineError
from kgpipe.runner import RunResult, Workspace, run

# PyKEEN's own sLCWA data loader passes a deprecated argument to itself; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Training instances are always shuffled:DeprecationWarning")

EX = "http://ex.org/"
REL = "http://ex.org/rel/"
# small and fast: a few epochs of a 16-dimensional model, a checkpoint after every epoch
FAST = {"model": "TransE", "embedding_dim": 16, "inverse_triples": False, "epochs": 6, "batch_size": 64,
        "learning_rate": 0.01,
        "negative_sampler_kwargs": {"num_negs_per_pos": 4}, "checkpoint_minutes": 0,
        "early_stopping": {"frequency": 2, "patience": 2}}


def toy_graph(seed: int = 0) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """People living in cities of countries, knowing each other; ids are IRIs, labels human-readable."""
    rng = random.Random(seed)
    countries = [f"country{i}" for i in range(3)]
    cities = [f"city{i}" for i in range(9)]
    people = [f"person{i}" for i in range(30)]
    triples = []
    for i, city in enumerate(cities):
        triples.append((city, "located_in", countries[i % 3]))
    for i, person in enumerate(people):
        city = cities[i % 9]
        triples.append((person, "lives_in", city))
        triples.append((person, "citizen_of", countries[(i % 9) % 3]))
        for friend in rng.sample(people, 2):
            if friend != person:
                triples.append((person, "knows", friend))
    triples = [(EX + h, REL + r, EX + t) for h, r, t in triples]
    labels = {EX + name: name.replace("person", "Person ").replace("city", "City ").replace("country", "Country ")
              for name in countries + cities + people}
    return triples, labels


def write_graph(root: Path, triples: list[tuple[str, str, str]], labels: dict[str, str] | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "triples.tsv").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in triples), encoding="utf-8")
    if labels is not None:
        write_table([{"id": e, "label": lab, "type": None, "aliases": [], "seed_iri": None, "mention_count": 1,
                      "sources": ["test"]} for e, lab in labels.items()], root / "entities.parquet", ENTITIES)


def write_pipeline(root: Path, deps: dict[str, str] | None = None, **params: Any) -> Path:
    if deps is None:
        deps = {"triples": "triples.tsv"}
        if (root / "entities.parquet").exists():
            deps["entities"] = "entities.parquet"
    stage = {"type": "embed", "params": params}
    if deps:
        stage["deps"] = deps
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"root": ".", "stages": {"embed": stage}}, sort_keys=False), encoding="utf-8")
    return path


def run_embed(root: Path, deps: dict[str, str] | None = None, *, force: bool = False, **params: Any) -> RunResult:
    return run(write_pipeline(root, deps, **params), force=force)


def outputs(result: RunResult) -> dict[str, Path]:
    return result.outputs["embed"]


def metrics(result: RunResult) -> dict[str, Any]:
    return json.loads(outputs(result)["metrics"].read_text(encoding="utf-8"))


@pytest.fixture
def graph_root(tmp_path: Path) -> Path:
    triples, labels = toy_graph()
    write_graph(tmp_path, triples, labels)
    return tmp_path


# --- outputs and id maps ------------------------------------------------------------------------------


def test_every_vector_row_maps_back_to_its_entity_and_label(graph_root: Path) -> None:
    result = run_embed(graph_root, **FAST)
    out = outputs(result)
    _, labels = toy_graph()

    table = pq.read_table(out["entity_embeddings"]).to_pandas()
    model, info, _ = load_model(out["model"])
    with torch.no_grad():
        matrix = model.entity_representations[0](indices=None).numpy()
    assert sorted(table["id"]) == sorted(labels)
    for row in table.itertuples():
        assert row.label == labels[row.id]
        np.testing.assert_array_equal(np.asarray(row.vector, dtype=np.float32), matrix[info.entity_to_id[row.id]])

    tensors = load_file(str(out["embeddings"]))
    vectors, ids, names, layout = read_embeddings(out["embeddings"])
    assert ids == list(table["id"]) and names == list(table["label"])
    np.testing.assert_array_equal(vectors, np.stack(table["vector"].to_numpy()))
    np.testing.assert_array_equal(tensors["entity_embeddings"], vectors)
    assert layout == {"kind": "real", "shape": [16], "dim": 16}

    relations = pq.read_table(out["relation_embeddings"]).to_pandas()
    assert list(relations["id"]) == [REL + r for r in ("citizen_of", "knows", "lives_in", "located_in")]
    assert list(relations["label"]) == ["citizen of", "knows", "lives in", "located in"]
    assert not relations["inverse"].any()
    report = metrics(result)
    assert report["data"]["entities"] == len(labels) and report["data"]["relations"] == 4
    assert report["test"]["rank_type"] == "realistic" and report["test"]["filtered"] is True
    assert 0 < report["test"]["mrr"] <= 1 and report["test"]["hits_at_1"] <= report["test"]["hits_at_10"]
    assert {"mrr", "hits_at_1", "hits_at_3", "hits_at_10"} <= set(report["test"]["head"])
    assert report["seed"] == 42 and report["versions"]["pykeen"]
    summary = result.summaries["embed"]  # what varies run to run is in the lock entry, not in metrics.json
    timings = summary["timings"]
    assert timings["training_seconds"] > 0 and timings["evaluation_seconds"] > 0 and summary["device"] == "cpu"
    assert "seconds" not in report["training"] and "evaluation_seconds" not in report and "device" not in report
    assert result.summaries["embed"]["epochs"] == len(report["training"]["losses"])
    assert out["loss_plot"].read_bytes().startswith(b"\x89PNG")


def test_inverse_triples_export_the_reciprocal_relations_after_the_relations(graph_root: Path) -> None:
    result = run_embed(graph_root, **{**FAST, "inverse_triples": True, "epochs": 2})
    relations = pq.read_table(outputs(result)["relation_embeddings"]).to_pandas()
    model, info, _ = load_model(outputs(result)["model"])
    with torch.no_grad():
        matrix = model.relation_representations[0](indices=None).numpy()

    assert list(relations["inverse"]) == [False] * 4 + [True] * 4
    assert list(relations["id"][:4]) == list(relations["id"][4:]) == list(info.relation_ids)
    assert relations["label"][4] == "inverse of citizen of"
    for i in range(4):  # PyKEEN keeps relation i in row 2i and its inverse in row 2i + 1
        np.testing.assert_array_equal(relations["vector"][i], matrix[2 * i])
        np.testing.assert_array_equal(relations["vector"][4 + i], matrix[2 * i + 1])

    # head prediction goes through the inverse relation, as in PyKEEN's own evaluation
    predictor = LinkPredictor.load(outputs(result)["model"])
    heads = predictor.predict_heads("lives in", "City 2", k=4)
    rt = torch.tensor([[info.relation_to_id[REL + "lives_in"], info.entity_to_id[EX + "city2"]]])
    with torch.no_grad():
        scores = predictor.model.predict_h(rt)[0]
    assert list(heads["id"]) == [info.entity_ids[i] for i in torch.argsort(scores, descending=True)[:4].tolist()]


def test_complex_models_export_real_then_imaginary_parts(graph_root: Path) -> None:
    result = run_embed(graph_root, **{**FAST, "model": "ComplEx", "embedding_dim": 8, "epochs": 2,
                                      "training_loop": "sLCWA", "early_stopping": False})
    out = outputs(result)
    model, info, _ = load_model(out["model"])
    with torch.no_grad():
        complex_matrix = model.entity_representations[0](indices=None).numpy()
    assert np.iscomplexobj(complex_matrix) and complex_matrix.shape[1] == 8

    vectors, ids, _, layout = read_embeddings(out["embeddings"])
    assert vectors.shape == (len(ids), 16) and vectors.dtype == np.float32
    assert layout["kind"] == "complex" and layout["real"] == [0, 8] and layout["imaginary"] == [8, 16]
    rows = [info.entity_to_id[i] for i in ids]
    np.testing.assert_array_equal(vectors[:, :8], complex_matrix[rows].real)
    np.testing.assert_array_equal(vectors[:, 8:], complex_matrix[rows].imag)
    np.testing.assert_array_equal(complex_from_real(vectors, layout), complex_matrix[rows])
    parquet_meta = pq.read_schema(out["entity_embeddings"]).metadata
    assert json.loads(parquet_meta[b"layout"]) == layout
    assert metrics(result)["embeddings"]["entity_layout"] == layout


# --- reproducibility and resuming ---------------------------------------------------------------------


def _tensors(result: RunResult) -> dict[str, np.ndarray]:
    return load_file(str(outputs(result)["embeddings"]))


def test_same_seed_gives_identical_embeddings_and_another_seed_does_not(tmp_path: Path) -> None:
    triples, labels = toy_graph()
    results = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        write_graph(tmp_path / name, triples, labels)
        results[name] = run_embed(tmp_path / name, **{**FAST, "seed": seed, "epochs": 3})

    a, b, c = (_tensors(results[n]) for n in "abc")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert metrics(results["a"])["test"] == metrics(results["b"])["test"]
    assert not np.array_equal(a["entity_embeddings"], c["entity_embeddings"])


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    import struct

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,), kind = struct.unpack(">I", data[at:at + 4]), data[at + 4:at + 8]
        chunks.append((kind, data[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks


def test_equal_inputs_and_seeds_give_byte_identical_artifacts(tmp_path: Path) -> None:
    """Every file of every out, in two fresh workspaces (other paths, other times): the same bytes. What
    differs run to run (timings, device) is in the lock entry's summary."""
    triples, labels = toy_graph()
    files, summaries = [], []
    for name in ("one", "two"):
        write_graph(tmp_path / name, triples, labels)
        result = run_embed(tmp_path / name, **{**FAST, "epochs": 3})
        folder = tmp_path / name / "artifacts/embed"
        files.append({p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
                      if p.is_file()})
        summaries.append(result.summaries["embed"])

    assert set(files[0]) == {"entity_embeddings.parquet", "relation_embeddings.parquet", "embeddings.safetensors",
                             "metrics.json", "training_loss.png", "model/model.safetensors",
                             "model/training_triples.safetensors", "model/model.json",
                             "model/.kgpipe-out.json"}  # the marker: a folder out kgpipe wrote
    for name, data in files[0].items():
        assert files[1][name] == data, f"{name} differs between two runs on the same inputs"
    kinds = [kind for kind, _ in _png_chunks(files[0]["training_loss.png"])]
    assert b"tIME" not in kinds and b"tEXt" not in kinds and b"iTXt" not in kinds  # no time, no software
    assert all(s["timings"]["training_seconds"] > 0 and s["device"] == "cpu" for s in summaries)
    text = files[0]["metrics.json"].decode()
    assert str(tmp_path) not in text and "seconds" not in text


def test_interrupted_training_resumes_from_its_checkpoint_with_the_same_result(tmp_path: Path, monkeypatch) -> None:
    from pykeen.training.training_loop import TrainingLoop

    triples, labels = toy_graph()
    params = {**FAST, "epochs": 6}
    write_graph(tmp_path / "straight", triples, labels)
    straight = run_embed(tmp_path / "straight", **params)

    write_graph(tmp_path / "resumed", triples, labels)
    train_epoch = TrainingLoop._train_epoch
    trained: list[int] = []

    def interrupted_in_epoch_5(self, *args, epoch: int, **kwargs):
        trained.append(epoch)
        if epoch == 5:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during epoch 5
        return train_epoch(self, *args, epoch=epoch, **kwargs)

    monkeypatch.setattr(TrainingLoop, "_train_epoch", interrupted_in_epoch_5)
    with pytest.raises(KeyboardInterrupt):
        run_embed(tmp_path / "resumed", **params)
    assert trained == [1, 2, 3, 4, 5]
    pipeline = load_pipeline(tmp_path / "resumed/pipeline.yaml")
    [scratch] = Workspace(pipeline).scratch_folders("embed")
    state = json.loads((scratch / "checkpoints/checkpoint.json").read_text(encoding="utf-8"))
    assert state["epoch"] == 4 and (scratch / "checkpoints" / state["tensors"]).exists()
    assert sorted(p.name for p in (scratch / "checkpoints").iterdir()) == ["checkpoint-000004.safetensors",
                                                                           "checkpoint.json"]
    assert not outputs_exist(tmp_path / "resumed")

    trained.clear()
    monkeypatch.setattr(TrainingLoop, "_train_epoch", lambda self, *a, epoch, **k: (
        trained.append(epoch), train_epoch(self, *a, epoch=epoch, **k))[1])
    resumed = run_embed(tmp_path / "resumed", **params)

    assert trained == [5, 6]  # only the epochs after the checkpoint train again
    assert resumed.summaries["embed"]["resumed_from_epoch"] == 4
    assert not scratch.exists()  # removed once the stage succeeded
    for key, values in _tensors(straight).items():
        np.testing.assert_array_equal(_tensors(resumed)[key], values)
    before, after = metrics(straight), metrics(resumed)
    assert after == before  # metrics.json says nothing about the interruption: byte-identical artifacts
    assert after["training"]["losses"] == before["training"]["losses"]


def test_a_run_interrupted_after_stopping_early_evaluates_without_training(tmp_path: Path, monkeypatch) -> None:
    """The checkpoint written when early stopping stops holds the best epoch's weights: an interruption
    during the final evaluation resumes into the evaluation, not into more epochs."""
    from pykeen.evaluation import RankBasedEvaluator
    from pykeen.training.training_loop import TrainingLoop

    triples, labels = toy_graph()
    params = {**FAST, "epochs": 40, "early_stopping": {"frequency": 1, "patience": 1, "relative_delta": 100.0}}
    write_graph(tmp_path / "straight", triples, labels)
    straight = run_embed(tmp_path / "straight", **params)
    assert metrics(straight)["training"]["stopped_early"] and metrics(straight)["training"]["best_epoch"] == 1

    write_graph(tmp_path / "resumed", triples, labels)
    evaluate = RankBasedEvaluator.evaluate
    calls: list[int] = []

    def test_evaluation_interrupted(self, model, mapped_triples, *args, **kwargs):
        calls.append(len(mapped_triples))
        if len(calls) == 3:  # two validations (epochs 1 and 2), then the test evaluation
            raise KeyboardInterrupt
        return evaluate(self, model, mapped_triples, *args, **kwargs)

    monkeypatch.setattr(RankBasedEvaluator, "evaluate", test_evaluation_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_embed(tmp_path / "resumed", **params)
    monkeypatch.setattr(RankBasedEvaluator, "evaluate", evaluate)
    trained: list[int] = []
    train_epoch = TrainingLoop._train_epoch
    monkeypatch.setattr(TrainingLoop, "_train_epoch", lambda self, *a, epoch, **k: (
        trained.append(epoch), train_epoch(self, *a, epoch=epoch, **k))[1])
    resumed = run_embed(tmp_path / "resumed", **params)

    assert trained == [] and resumed.summaries["embed"]["resumed_from_epoch"] == 2
    for key, values in _tensors(straight).items():
        np.testing.assert_array_equal(_tensors(resumed)[key], values)
    assert metrics(resumed) == metrics(straight)


def test_a_failure_after_training_does_not_train_again(tmp_path: Path, monkeypatch) -> None:
    from pykeen.training.training_loop import TrainingLoop

    import kgpipe.embed.export as export

    triples, labels = toy_graph()
    write_graph(tmp_path / "straight", triples, labels)
    straight = run_embed(tmp_path / "straight", **FAST)
    write_graph(tmp_path / "retried", triples, labels)
    exporter = export.export_embeddings

    def broken_export(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export, "export_embeddings", broken_export)
    with pytest.raises(KgpipeError, match="disk full"):
        run_embed(tmp_path / "retried", **FAST)

    monkeypatch.setattr(export, "export_embeddings", exporter)
    epochs_trained = []
    train_epoch = TrainingLoop._train_epoch
    monkeypatch.setattr(TrainingLoop, "_train_epoch", lambda self, *a, epoch, **k: (
        epochs_trained.append(epoch), train_epoch(self, *a, epoch=epoch, **k))[1])
    retried = run_embed(tmp_path / "retried", **FAST)

    assert epochs_trained == []
    for key, values in _tensors(straight).items():
        np.testing.assert_array_equal(_tensors(retried)[key], values)
    assert metrics(retried)["test"] == metrics(straight)["test"]


@pytest.mark.parametrize("overrides", [
    # stops early after epoch 3, its best at epoch 1: the run ends with epoch 1's weights
    {"epochs": 12, "early_stopping": {"frequency": 1, "patience": 2, "relative_delta": 100.0}},
    {"epochs": 3, "early_stopping": False},
], ids=["stops-early", "no-early-stopping"])
def test_training_is_pykeens_pipeline_to_the_bit(graph_root: Path, overrides: dict) -> None:
    """kgpipe drives PyKEEN's training loop itself (to own the checkpoints); the losses, the weights, the
    validation results and the test metrics are exactly what pykeen.pipeline.pipeline gives."""
    from pykeen.pipeline import pipeline

    from kgpipe.embed.config import resolver
    from kgpipe.embed.data import load_graph
    from kgpipe.embed.defaults import training_config
    from kgpipe.embed.train import summarize_metrics, train_and_evaluate

    config, _ = training_config("TransE", {**{k: v for k, v in FAST.items() if k != "checkpoint_minutes"},
                                           **overrides, "device": "cpu"})
    graph = load_graph(triples=graph_root / "triples.tsv", entities=None, validation=None, testing=None,
                       known=None, dataset=None, validation_fraction=0.1, test_fraction=0.1, seed=config.seed,
                       inverse_triples=config.inverse_triples)
    stop = config.early_stopping
    theirs = pipeline(
        training=graph.training, validation=graph.validation, testing=graph.testing, model=config.model,
        model_kwargs=dict(config.model_kwargs), loss=config.loss, loss_kwargs=dict(config.loss_kwargs),
        optimizer=config.optimizer, optimizer_kwargs=dict(config.optimizer_kwargs),
        training_loop=config.training_loop, negative_sampler=config.negative_sampler,
        training_loop_kwargs={"automatic_memory_optimization": False},  # kgpipe's choice on CPU
        negative_sampler_kwargs=dict(config.negative_sampler_kwargs), epochs=config.epochs,
        training_kwargs={"batch_size": config.batch_size, "use_tqdm": False, "pin_memory": False},
        stopper="early" if stop else None,
        stopper_kwargs={"metric": stop.metric, "frequency": stop.frequency, "patience": stop.patience,
                        "relative_delta": stop.relative_delta} if stop else None,
        evaluator="rankbased", evaluator_kwargs={"filtered": True, "batch_size": config.evaluation_batch_size},
        evaluation_kwargs={"batch_size": config.evaluation_batch_size, "use_tqdm": False},
        random_seed=config.seed, device="cpu", use_tqdm=False)
    assert resolver("loss").lookup(config.loss)  # the same loss by name in both
    ours = train_and_evaluate(graph, config, workdir=graph_root / "work", checkpoint_minutes=0)

    assert ours.outcome.losses == [float(x) for x in theirs.losses]
    mine, pykeens = ours.model.state_dict(), theirs.model.state_dict()
    assert mine.keys() == pykeens.keys() and all(torch.equal(mine[k], pykeens[k]) for k in mine)
    assert {k: v for k, v in ours.outcome.metrics.items() if k != "triples"} == summarize_metrics(
        theirs.metric_results)
    if stop:
        assert theirs.stopper.stopped and ours.outcome.stopped_early
        assert ours.outcome.best_epoch == theirs.stopper.best_epoch == 1 and ours.outcome.epochs_trained == 3
        assert [v["mrr"] for v in ours.outcome.validation] == theirs.stopper.results


def test_without_a_validation_split_early_stopping_is_off_with_a_note(graph_root: Path) -> None:
    result = run_embed(graph_root, **{**FAST, "epochs": 2, "validation_fraction": 0})
    report = metrics(result)
    assert report["data"]["validation_triples"] == 0 and report["training"]["epochs"] == 2
    assert any("early stopping is off" in w for w in report["warnings"])


def outputs_exist(root: Path) -> bool:
    folder = root / "artifacts/embed"
    return folder.exists() and any(not p.name.startswith(".") for p in folder.iterdir())


def test_early_stopping_stops_when_validation_stops_improving(graph_root: Path) -> None:
    # an improvement must be 100x the best so far to count: after the first evaluation none does
    result = run_embed(graph_root, **{**FAST, "epochs": 40, "early_stopping": {
        "frequency": 1, "patience": 1, "relative_delta": 100.0}})
    training = metrics(result)["training"]

    assert training["stopped_early"] is True
    assert training["epochs"] == 2 == len(training["losses"])
    assert training["best_epoch"] == 1
    assert [v["epoch"] for v in training["validation"]] == [1, 2]


def test_without_early_stopping_all_epochs_run(graph_root: Path) -> None:
    result = run_embed(graph_root, **{**FAST, "epochs": 3, "early_stopping": False})
    training = metrics(result)["training"]
    assert training["epochs"] == 3 and training["validation"] == [] and training["stopped_early"] is False


def test_pykeens_per_epoch_collection_sees_a_frozen_heap_which_is_thawed_after(graph_root: Path,
                                                                               monkeypatch) -> None:
    import gc

    # PyKEEN calls gc.collect() after every epoch; the objects alive before training must be out of its way
    assert gc.get_freeze_count() == 0
    frozen_at_collect: list[int] = []
    collect = gc.collect

    def counting_collect(*args: Any, **kwargs: Any) -> int:
        frozen_at_collect.append(gc.get_freeze_count())
        return collect(*args, **kwargs)

    monkeypatch.setattr(gc, "collect", counting_collect)
    run_embed(graph_root, **{**FAST, "epochs": 3, "early_stopping": False})
    assert sum(1 for frozen in frozen_at_collect if frozen > 10_000) >= 3  # one per epoch
    assert gc.get_freeze_count() == 0

    with pytest.raises(KgpipeError, match="NaN"):  # and after a failed run
        run_embed(graph_root, force=True, **{**FAST, "model": "DistMult", "loss": "softplus", "optimizer": "SGD",
                                             "learning_rate": 1e30})
    assert gc.get_freeze_count() == 0


# --- input forms --------------------------------------------------------------------------------------


def test_split_files_are_used_as_given_and_unknown_entities_dropped(tmp_path: Path) -> None:
    triples, _labels = toy_graph()
    random.Random(1).shuffle(triples)
    folder = tmp_path / "kg"
    folder.mkdir()
    test = [*triples[:8], (EX + "stranger", REL + "knows", EX + "person1")]
    for name, part in (("train.txt", triples[16:]), ("valid.txt", triples[8:16]), ("test.txt", test)):
        (folder / name).write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in part), encoding="utf-8")

    result = run_embed(tmp_path, {"triples": "kg"}, **{**FAST, "epochs": 2})
    data = metrics(result)["data"]

    assert data["splits"] == {"training": "kg/train.txt", "validation": "kg/valid.txt", "testing": "kg/test.txt"}
    kept_test = [t for t in triples[:8] if all(x in {e for tr in triples[16:] for e in (tr[0], tr[2])}
                                                for x in (t[0], t[2]))]
    assert data["testing_triples"] == len(kept_test)
    assert data["dropped_evaluation_triples"]["testing"] == 9 - len(kept_test)
    assert data["training_triples"] == len(set(triples[16:]))


def test_known_triples_are_filtered_from_the_test_ranking_only(tmp_path: Path) -> None:
    """deps.known: true triples neither trained on nor tested (the test split while valid is tested) are
    filtered when ranking, as PyKEEN's evaluator does with them; the same model without them ranks lower."""
    from pykeen.evaluation import RankBasedEvaluator

    triples, _ = toy_graph()
    random.Random(2).shuffle(triples)
    (tmp_path / "kg").mkdir()
    parts = {"train.txt": triples[30:], "valid.txt": triples[:15], "test.txt": triples[15:30]}
    for name, part in parts.items():
        (tmp_path / "kg" / name).write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in part), encoding="utf-8")
    params = {**FAST, "epochs": 3, "early_stopping": False, "validation_fraction": 0}
    deps = {"triples": "../kg/train.txt", "testing": "../kg/valid.txt"}
    (tmp_path / "plain").mkdir()
    (tmp_path / "known").mkdir()
    plain = metrics(run_embed(tmp_path / "plain", deps, **params))
    result = run_embed(tmp_path / "known", {**deps, "known": "../kg/test.txt"}, **params)
    known = metrics(result)

    data = known["data"]
    assert data["known_triples_filtered"] + data["dropped_evaluation_triples"]["known"] == 15
    assert data["known_triples_filtered"] > 0 and plain["data"]["known_triples_filtered"] == 0
    assert known["training"]["losses"] == plain["training"]["losses"]   # the same training, the same model
    assert known["test"]["mrr"] > plain["test"]["mrr"]                  # fewer true triples crowd the ranking

    model, _, training = load_model(outputs(result)["model"])
    entities, relations = training.entity_to_id, training.relation_to_id

    def mapped(part: list[tuple[str, str, str]]) -> torch.Tensor:
        return torch.tensor([(entities[h], relations[r], entities[t]) for h, r, t in sorted(set(part))
                             if h in entities and t in entities and r in relations], dtype=torch.long)

    def mrr(*extra: torch.Tensor) -> float:
        found = RankBasedEvaluator().evaluate(model, mapped(parts["valid.txt"]), batch_size=64, use_tqdm=False,
                                              additional_filter_triples=[training.mapped_triples, *extra])
        return found.get_metric("both.realistic.inverse_harmonic_mean_rank")

    assert known["test"]["mrr"] == pytest.approx(mrr(mapped(parts["test.txt"])))
    assert plain["test"]["mrr"] == pytest.approx(mrr())


def test_a_pykeen_dataset_by_name_keeps_its_own_splits(tmp_path: Path) -> None:
    from pykeen.datasets import Nations

    result = run_embed(tmp_path, {}, **{**FAST, "dataset": "Nations", "epochs": 1, "early_stopping": False})
    data = metrics(result)["data"]
    nations = Nations()
    assert (data["training_triples"], data["validation_triples"], data["testing_triples"]) == (
        nations.training.num_triples, nations.validation.num_triples, nations.testing.num_triples)
    assert data["splits"]["testing"] == "pykeen:Nations"


# --- errors -------------------------------------------------------------------------------------------


def test_known_triples_with_a_pykeen_dataset_are_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "test.txt").write_text(f"{EX}a\t{REL}r\t{EX}b\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"deps\.known goes with deps\.triples"):
        run_embed(tmp_path, {"known": "test.txt"}, **{**FAST, "dataset": "Nations", "epochs": 1})


def test_an_empty_graph_is_an_input_error(tmp_path: Path) -> None:
    write_graph(tmp_path, [])
    with pytest.raises(InputError, match="no triples") as info:
        run_embed(tmp_path, **FAST)
    assert info.value.file == "triples.tsv"


def test_a_graph_too_small_to_split_is_an_input_error(tmp_path: Path) -> None:
    write_graph(tmp_path, toy_graph()[0][:5])
    with pytest.raises(InputError, match="needs at least 10") as info:
        run_embed(tmp_path, **FAST)
    assert "validation_fraction" in str(info.value) or "fractions" in str(info.value)


def test_a_malformed_tsv_line_names_file_and_line(tmp_path: Path) -> None:
    write_graph(tmp_path, toy_graph()[0][:20])
    with (tmp_path / "triples.tsv").open("a", encoding="utf-8") as handle:
        handle.write("only\ttwo\n")
    with pytest.raises(InputError) as info:
        run_embed(tmp_path, **FAST)
    assert (info.value.file, info.value.line) == ("triples.tsv", 21)


def test_nan_loss_stops_with_the_epoch_and_a_lower_learning_rate(graph_root: Path) -> None:
    with pytest.raises(KgpipeError, match=r"NaN or infinite in epoch 1 \(learning rate 1e\+30\)") as info:
        run_embed(graph_root, **{**FAST, "model": "DistMult", "loss": "softplus", "optimizer": "SGD",
                                 "learning_rate": 1e30})
    assert "learning_rate: 1e+29" in info.value.hint
    assert info.value.exit_code == 4 and info.value.stage == "embed"
    assert not outputs_exist(graph_root)


def test_out_of_memory_suggests_a_smaller_batch_size(graph_root: Path, monkeypatch) -> None:
    from pykeen.training.training_loop import TrainingLoop

    def out_of_memory(self, *args, **kwargs):  # what torch raises when a CUDA allocation fails
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(TrainingLoop, "_forward_pass", out_of_memory)
    with pytest.raises(KgpipeError, match=r"out of memory .* training epoch 1 with batch_size 64") as info:
        run_embed(graph_root, **FAST)
    assert "batch_size: 32" in info.value.hint


def test_a_relation_with_a_single_triple_is_a_warning_and_stays_in_training(tmp_path: Path, caplog) -> None:
    triples, labels = toy_graph()
    lonely = (EX + "person3", REL + "mentored", EX + "person4")
    write_graph(tmp_path, [*triples, lonely], labels)

    result = run_embed(tmp_path, **{**FAST, "epochs": 2})

    warnings = metrics(result)["warnings"]
    assert any("single triple" in w and REL + "mentored" in w for w in warnings)
    assert any("single triple" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    _, info, factory = load_model(outputs(result)["model"])
    training = {tuple(t) for t in factory.mapped_triples.tolist()}
    ids = info.entity_to_id
    assert (ids[lonely[0]], info.relation_to_id[lonely[1]], ids[lonely[2]]) in training


def test_unknown_component_names_fail_listing_pykeen_choices(graph_root: Path) -> None:
    from pykeen.losses import loss_resolver
    from pykeen.models import model_resolver

    with pytest.raises(PipelineError, match="unknown PyKEEN model 'TransQ'") as info:
        run_embed(graph_root, **{**FAST, "model": "TransQ"})
    assert all(name in info.value.hint for name in model_resolver.lookup_dict)

    with pytest.raises(PipelineError, match="unknown PyKEEN loss 'hinge-ish'") as info:
        run_embed(graph_root, **{**FAST, "loss": "hinge-ish"})
    assert all(name in info.value.hint for name in loss_resolver.lookup_dict)


def test_unknown_kwargs_fail_naming_what_is_accepted(graph_root: Path) -> None:
    with pytest.raises(PipelineError, match=r"TransE takes no argument\(s\) embeding_dim") as info:
        run_embed(graph_root, **{**FAST, "model_kwargs": {"embeding_dim": 8}})
    assert "embedding_dim" in info.value.hint


# --- link prediction by label -------------------------------------------------------------------------


def test_link_prediction_by_label_ranks_like_the_model(graph_root: Path) -> None:
    result = run_embed(graph_root, **FAST)
    predictor = LinkPredictor.load(outputs(result)["model"])

    tails = predictor.predict_tails("Person 4", "lives in", k=5)
    assert list(tails.columns) == ["id", "label", "score", "in_training"]
    assert len(tails) == 5 and tails["score"].is_monotonic_decreasing
    _, labels = toy_graph()
    assert [labels[i] for i in tails["id"]] == list(tails["label"])

    info = predictor.info
    head, relation = info.entity_to_id[EX + "person4"], info.relation_to_id[REL + "lives_in"]
    with torch.no_grad():
        scores = predictor.model.score_t(torch.tensor([[head, relation]]))[0]
    expected = [info.entity_ids[i] for i in torch.argsort(scores, descending=True)[:5].tolist()]
    assert list(tails["id"]) == expected

    heads = predictor.predict_heads(REL + "lives_in", "City 4", k=3, exclude_known=True)
    assert not heads["in_training"].any() and len(heads) == 3
    known = predictor.predict_tails(EX + "person4", "lives in", k=len(info.entity_ids))  # ids work as well
    assert known.loc[known["id"] == EX + "city4", "in_training"].item()


def test_link_prediction_names_unknown_and_ambiguous_labels(tmp_path: Path) -> None:
    triples, labels = toy_graph()
    labels[EX + "person5"] = "Person 4"  # two entities share a label
    write_graph(tmp_path, triples, labels)
    predictor = LinkPredictor.load(outputs(run_embed(tmp_path, **{**FAST, "epochs": 1}))["model"])

    with pytest.raises(InputError, match="shared by 2") as info:
        predictor.predict_tails("Person 4", "knows")
    assert EX + "person4" in info.value.hint and EX + "person5" in info.value.hint
    with pytest.raises(InputError, match="no entity with id or label 'Persn 7'") as info:
        predictor.predict_tails("Persn 7", "knows")
    assert "Person 7" in info.value.hint
    with pytest.raises(InputError, match="no relation"):
        predictor.predict_heads("lives at", "City 1")


def test_a_work_folder_of_another_config_is_not_reused(graph_root: Path, caplog) -> None:
    from kgpipe.embed.data import load_graph
    from kgpipe.embed.defaults import training_config
    from kgpipe.embed.train import train_and_evaluate

    def graph_and_config(epochs: int) -> tuple[Any, Any]:
        config, _ = training_config("TransE", {"embedding_dim": 8, "epochs": epochs, "early_stopping": False,
                                               "device": "cpu"})
        return load_graph(triples=graph_root / "triples.tsv", seed=config.seed,
                          inverse_triples=config.inverse_triples), config

    work = graph_root / "work"
    first = train_and_evaluate(*graph_and_config(2), workdir=work, checkpoint_minutes=0)
    second = train_and_evaluate(*graph_and_config(3), workdir=work, checkpoint_minutes=0)
    assert first.outcome.epochs_trained == 2 and second.outcome.epochs_trained == 3
    assert second.outcome.checkpoint_discarded and "another training run" in second.outcome.checkpoint_discarded
    assert any("not this run's" in r.getMessage() for r in caplog.records)
