"""Hostile files where the embed stage keeps or once kept training state: planted pickles that would run code
if loaded, and kgpipe checkpoints that are truncated, empty, of the wrong shape or of the wrong JSON shape.

Each run is compared byte for byte with a clean run on the same inputs (the embed artifacts are
byte-identical for equal inputs and seeds), so "the model is a clean run's" is checked on every file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from kgpipe.config import load_pipeline
from kgpipe.runner import Workspace, status
from tests.hostile.cases import Case, hostile, parametrize
from tests.test_embed import FAST, run_embed, toy_graph, write_graph, write_pipeline

pytestmark = pytest.mark.filterwarnings("ignore:Training instances are always shuffled:DeprecationWarning")

# checkpoints after epoch 2 of 4, validation every 2 epochs: the checkpoint holds early-stopping state and
# best weights as well as the model and the optimizer
PARAMS = {**FAST, "epochs": 4, "early_stopping": {"frequency": 2, "patience": 2}}


class Plant:
    """Unpickling this creates `marker`: what a planted checkpoint could do instead (run any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def plant(path: Path, marker: Path) -> None:
    """A torch checkpoint, as PyKEEN writes them, that creates marker when loaded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 2, "loss": [1.0, 0.5], "stopper_dict": {}, "payload": Plant(marker)}, path)


def artifacts(root: Path) -> dict[str, bytes]:
    folder = root / "artifacts/embed"
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every embed artifact of an undisturbed run."""
    root = tmp_path_factory.mktemp("clean")
    write_graph(root, *toy_graph())
    run_embed(root, **PARAMS)
    return artifacts(root)


def scratch_of(root: Path) -> Path:
    """Where the stage keeps its checkpoints for this pipeline, params and inputs (known before it runs)."""
    pipeline = load_pipeline(root / "pipeline.yaml")
    [embed] = [s for s in status(pipeline) if s.name == "embed"]
    return Workspace(pipeline).scratch_for("embed", embed.fingerprint)


def trained_epochs(monkeypatch: pytest.MonkeyPatch, stop_in: int | None = None) -> list[int]:
    """Record the epochs PyKEEN trains; with stop_in, interrupt training during that epoch."""
    from pykeen.training.training_loop import TrainingLoop

    seen: list[int] = []
    train_epoch = TrainingLoop.__dict__["_train_epoch"]
    train_epoch = getattr(train_epoch, "original", train_epoch)  # not an earlier recorder

    def recorded(self: Any, *args: Any, epoch: int, **kwargs: Any) -> float:
        seen.append(epoch)
        if epoch == stop_in:
            raise KeyboardInterrupt
        return train_epoch(self, *args, epoch=epoch, **kwargs)

    recorded.original = train_epoch  # type: ignore[attr-defined]
    monkeypatch.setattr(TrainingLoop, "_train_epoch", recorded)
    return seen


@hostile("embed-planted-pickle-checkpoints", area="embed", outcome="handled",
         what="pickled training.pt / best-model.pt (code runs on load) in the stage's scratch checkpoints and "
              "PyKEEN's PYSTOW_HOME checkpoints folder, before a run and beside a real checkpoint")
def test_planted_pickles_are_never_loaded(tmp_path: Path, clean: dict[str, bytes], monkeypatch) -> None:
    from pykeen.constants import PYKEEN_CHECKPOINTS

    write_graph(tmp_path, *toy_graph())
    write_pipeline(tmp_path, **PARAMS)  # to know the scratch folder before the first run
    marker = tmp_path / "code-ran"
    armed = tmp_path / "armed"
    plant(tmp_path / "probe.pt", armed)
    torch.load(tmp_path / "probe.pt", weights_only=False)  # the plant works: a full load runs its code
    assert armed.exists()

    scratch = scratch_of(tmp_path)
    planted = [scratch / "checkpoints/training.pt", scratch / "checkpoints/best-model.pt",
               PYKEEN_CHECKPOINTS / "training.pt", PYKEEN_CHECKPOINTS / "best-model.pt",
               PYKEEN_CHECKPOINTS / "PyKEEN_just_saved_my_day.pt"]
    try:
        for path in planted:
            plant(path, marker)
        epochs = trained_epochs(monkeypatch, stop_in=3)
        with pytest.raises(KeyboardInterrupt):  # a real kgpipe checkpoint after epoch 2, beside the plants
            run_embed(tmp_path, **PARAMS)
        assert (scratch / "checkpoints/checkpoint.json").exists()
        for path in planted:
            plant(path, marker)
        epochs.clear()
        epochs = trained_epochs(monkeypatch)
        result = run_embed(tmp_path, **PARAMS)
    finally:
        for path in planted[2:]:
            path.unlink(missing_ok=True)

    assert not marker.exists()
    assert epochs == [3, 4] and result.summaries["embed"]["resumed_from_epoch"] == 2
    assert artifacts(tmp_path) == clean


def _tensors_rewritten(change: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    """Damage that rewrites the checkpoint's tensors and records the new file's sha256 (so that only the
    check under test can catch it)."""
    def damage(folder: Path) -> None:
        from safetensors.torch import load, save

        state = json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))
        tensors = dict(load((folder / state["tensors"]).read_bytes()))
        change(tensors)
        data = save(tensors)
        (folder / state["tensors"]).write_bytes(data)
        state["tensors_sha256"] = hashlib.sha256(data).hexdigest()
        (folder / "checkpoint.json").write_text(json.dumps(state), encoding="utf-8")
    return damage


def _json_changed(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        state = json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))
        state = change(state) or state
        (folder / "checkpoint.json").write_text(json.dumps(state), encoding="utf-8")
    return damage


def _tensor_file(folder: Path) -> Path:
    return folder / json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))["tensors"]


def _first_model_tensor(tensors: dict[str, torch.Tensor]) -> None:
    name = sorted(k for k in tensors if k.startswith("model/"))[0]
    tensors[name] = torch.zeros(tensors[name].shape[0] + 1, *tensors[name].shape[1:])


def _drop_best(tensors: dict[str, torch.Tensor]) -> None:
    for name in [k for k in tensors if k.startswith("best/")]:
        del tensors[name]


DAMAGE: dict[str, Callable[[Path], None]] = {
    "embed-checkpoint-truncated-safetensors": lambda f: _tensor_file(f).write_bytes(_tensor_file(f).read_bytes()[:100]),
    "embed-checkpoint-empty-safetensors": lambda f: _tensor_file(f).write_bytes(b""),
    "embed-checkpoint-missing-safetensors": lambda f: _tensor_file(f).unlink(),
    "embed-checkpoint-wrong-shape-tensor": _tensors_rewritten(_first_model_tensor),
    "embed-checkpoint-missing-best-weights": _tensors_rewritten(_drop_best),
    "embed-checkpoint-optimizer-state-wrong-shape": _tensors_rewritten(
        lambda t: t.update({k: torch.zeros(3) for k in t if k.startswith("optimizer/") and t[k].dim() > 0})),
    "embed-checkpoint-empty-json": lambda f: (f / "checkpoint.json").write_bytes(b""),
    "embed-checkpoint-json-not-an-object": _json_changed(lambda s: [s]),
    "embed-checkpoint-json-epoch-not-a-number": _json_changed(lambda s: s.update(epoch="two")),
    "embed-checkpoint-json-losses-short": _json_changed(lambda s: s.update(losses=s["losses"][:1])),
    "embed-checkpoint-json-rng-wrong-length": _json_changed(
        lambda s: s["rng"].update(torch=s["rng"]["torch"][:40])),
    "embed-checkpoint-json-stopper-fields": _json_changed(lambda s: s["stopper"].pop("remaining_patience")),
    "embed-checkpoint-json-tensor-path-escapes": _json_changed(lambda s: s.update(tensors="../../x.safetensors")),
    "embed-checkpoint-json-best-weights-disowned": _json_changed(lambda s: s.update(has_best=False)),
    "embed-checkpoint-json-validation-results-missing": _json_changed(lambda s: s["stopper"].update(results=[])),
    "embed-checkpoint-of-another-config": _json_changed(
        lambda s: s["identity"]["config"].update(batch_size=999)),
}
WHAT = {
    "embed-checkpoint-truncated-safetensors": "the checkpoint's safetensors file cut to 100 bytes",
    "embed-checkpoint-empty-safetensors": "the checkpoint's safetensors file empty (0 bytes)",
    "embed-checkpoint-missing-safetensors": "checkpoint.json names a safetensors file that is gone",
    "embed-checkpoint-wrong-shape-tensor": "a model tensor of the wrong shape (sha256 in the JSON updated to match)",
    "embed-checkpoint-missing-best-weights": "the best epoch's weights missing while the JSON says they are there",
    "embed-checkpoint-optimizer-state-wrong-shape": "optimizer state tensors of the wrong shape",
    "embed-checkpoint-empty-json": "checkpoint.json empty (0 bytes)",
    "embed-checkpoint-json-not-an-object": "checkpoint.json a JSON list instead of an object",
    "embed-checkpoint-json-epoch-not-a-number": "checkpoint.json's epoch a string",
    "embed-checkpoint-json-losses-short": "checkpoint.json with fewer losses than epochs",
    "embed-checkpoint-json-rng-wrong-length": "checkpoint.json's torch RNG state truncated",
    "embed-checkpoint-json-stopper-fields": "checkpoint.json's early-stopping state missing a field",
    "embed-checkpoint-json-tensor-path-escapes": "checkpoint.json naming a tensor file outside the folder",
    "embed-checkpoint-json-best-weights-disowned": "checkpoint.json saying there are no best weights while its "
    "early-stopping state has a best epoch (the weights are in the tensor file)",
    "embed-checkpoint-json-validation-results-missing": "checkpoint.json's early-stopping state without its "
    "validation results",
    "embed-checkpoint-of-another-config": "a checkpoint of another config (batch size) in the scratch folder",
}


@parametrize(*(Case(name, "embed", WHAT[name], "recovered") for name in DAMAGE))
def test_a_damaged_checkpoint_is_discarded_and_training_restarts(case: Case, tmp_path: Path,
                                                                  clean: dict[str, bytes], monkeypatch,
                                                                  caplog) -> None:
    write_graph(tmp_path, *toy_graph())
    trained_epochs(monkeypatch, stop_in=3)
    with pytest.raises(KeyboardInterrupt):
        run_embed(tmp_path, **PARAMS)
    folder = scratch_of(tmp_path) / "checkpoints"
    assert json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))["epoch"] == 2
    DAMAGE[case.id](folder)

    epochs = trained_epochs(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="kgpipe.embed.train"):
        result = run_embed(tmp_path, **PARAMS)

    assert epochs == [1, 2, 3, 4]  # training started over
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "kgpipe.embed.train"]
    assert len(warnings) == 1 and "checkpoint" in warnings[0] and "discarded" in warnings[0]
    assert "starts over" in result.summaries["embed"]["checkpoint_discarded"]
    assert "resumed_from_epoch" not in result.summaries["embed"]
    assert artifacts(tmp_path) == clean  # the same model and files as a clean run


@hostile("embed-trained-model-damaged", area="embed", outcome="recovered",
         what="the scratch copy of the trained model (kept when a later step failed) with a truncated "
              "model.safetensors")
def test_a_damaged_trained_model_in_scratch_is_rebuilt(tmp_path: Path, clean: dict[str, bytes], monkeypatch,
                                                        caplog) -> None:
    import kgpipe.embed.export as export

    write_graph(tmp_path, *toy_graph())

    def broken_export(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    exporter = export.export_embeddings
    monkeypatch.setattr(export, "export_embeddings", broken_export)
    with pytest.raises(Exception, match="disk full"):
        run_embed(tmp_path, **PARAMS)
    monkeypatch.setattr(export, "export_embeddings", exporter)
    weights = scratch_of(tmp_path) / "trained/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])

    epochs = trained_epochs(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="kgpipe.embed.train"):
        run_embed(tmp_path, **PARAMS)
    assert any("damaged" in r.getMessage() for r in caplog.records)
    assert epochs == []  # the final checkpoint holds the trained model: evaluated again, not trained again
    assert artifacts(tmp_path) == clean


@parametrize(
    Case("embed-unknown-model-name", "embed", "model: NoSuchModel in the default pipeline's embed stage "
         "(downstream of ingest, extract and fuse)", "error", exit_code=2),
    Case("embed-missing-cuda-device", "embed", "device: cuda:9 on a machine without that GPU", "error",
         exit_code=7),
)
def test_a_bad_embed_setting_stops_the_run_before_ingest(case: Case, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kgpipe.cli import app
    from tests.hostile.cases import assert_clear_error, snapshot
    from tests.test_embed_config import _default_pipeline_with, _line_of

    params, key = ({"model": "NoSuchModel"}, "model:") if case.exit_code == 2 else ({"device": "cuda:9"}, "device:")
    pipeline = _default_pipeline_with(tmp_path, **params)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(app, ["run", str(pipeline)])
    assert_clear_error(result, case.exit_code, f"default.yaml:{_line_of(pipeline, key)}: stage 'embed': "
                       f"params.{key.rstrip(':')}", "hint:")
    assert snapshot(tmp_path) == before  # nothing ran, nothing was written


@hostile("embed-planted-pickle-dataset-cache", area="embed", outcome="handled",
         what="a pickled PyKEEN dataset cache for Nations (code runs on load) where PyKEEN's get_dataset reads it, "
              "with params.dataset: Nations")
def test_a_planted_dataset_cache_is_never_loaded(tmp_path: Path) -> None:
    from pykeen.constants import PYKEEN_DATASETS
    from pykeen.datasets import get_dataset
    from pykeen.datasets.utils import _digest_kwargs

    cache = PYKEEN_DATASETS / "nations" / "cache" / _digest_kwargs({})
    aside = tmp_path / "real-cache"
    if cache.exists():  # a real cache PyKEEN wrote earlier (pipeline(dataset=...) does): put back afterwards
        shutil.move(cache, aside)
    marker, armed = tmp_path / "code-ran", tmp_path / "armed"
    params = {**FAST, "dataset": "Nations", "epochs": 1, "early_stopping": False}
    try:
        for name in ("training", "testing", "validation"):
            plant(cache / name / "base.pth", armed)
        plant(cache / "metadata.pth", armed)
        with pytest.raises(Exception):  # noqa: B017 (what PyKEEN does with it after running its code)
            get_dataset(dataset="nations")
        assert armed.exists()  # the plant is live where PyKEEN looks
        for name in ("training", "testing", "validation"):
            plant(cache / name / "base.pth", marker)
        plant(cache / "metadata.pth", marker)
        result = run_embed(tmp_path, {}, **params)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if aside.exists():
            shutil.move(aside, cache)
    assert not marker.exists()
    assert result.summaries["embed"]["training_triples"] > 1000
