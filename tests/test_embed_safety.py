"""No pickle anywhere in kgpipe (a planted file must never run code), and the safetensors files kgpipe
writes have the same bytes for the same tensors."""

from __future__ import annotations

import ast
import contextlib
import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO

# PyKEEN's own sLCWA data loader passes a deprecated argument to itself; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Training instances are always shuffled:DeprecationWarning")

PACKAGE = REPO / "kgpipe"
# modules whose loaders unpickle (or can): kgpipe reads none of its files with them
UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(node: ast.AST) -> str:
    """'torch.load' for torch.load(...), 'load' for a bare load(...)."""
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _unsafe_uses(source: str, filename: str) -> list[str]:
    tree = ast.parse(source, filename)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                modules += [f"torch.{a.name}" for a in node.names]
            for module in modules:
                if module.split(".")[0] in UNPICKLING_MODULES or module == "torch.load":
                    found.append(f"{filename}:{node.lineno}: imports {module}")
    for call in _calls(tree):
        name = _name(call.func)
        keywords = {k.arg: k.value for k in call.keywords}
        safe = isinstance(keywords.get("weights_only"), ast.Constant) and keywords["weights_only"].value is True
        if name.endswith("torch.load") and not safe:
            found.append(f"{filename}:{call.lineno}: torch.load without weights_only=True")
        if name.endswith(("read_pickle", "pickle.load", "pickle.loads", "Unpickler")):
            found.append(f"{filename}:{call.lineno}: {name}")
        allow = keywords.get("allow_pickle")
        if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
            found.append(f"{filename}:{call.lineno}: {name} with allow_pickle")
    return found


def test_kgpipe_never_unpickles() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 30
    problems = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        shown = path.relative_to(REPO).as_posix()
        problems += [f"{shown}:{i}: weights_only=False" for i, line in enumerate(text.splitlines(), 1)
                     if "weights_only=False" in line.replace(" ", "")]
        problems += _unsafe_uses(text, shown)
    assert problems == []


def test_the_scan_finds_each_kind_of_unpickling() -> None:
    planted = """
import pickle
from torch import load
import torch, numpy as np, pandas as pd
torch.load(path)
torch.load(path, weights_only=False)
torch.load(path, weights_only=flag)
torch.load(path, weights_only=True)
np.load(path, allow_pickle=True)
pd.read_pickle(path)
pickle.loads(data)
"""
    found = _unsafe_uses(planted, "x.py")
    assert [f.split(": ", 1)[1] for f in found] == [
        "imports pickle", "imports torch.load", "torch.load without weights_only=True",
        "torch.load without weights_only=True", "torch.load without weights_only=True",
        "np.load with allow_pickle", "pd.read_pickle", "pickle.loads"]


def test_safetensors_files_have_the_same_bytes_for_the_same_tensors(tmp_path: Path) -> None:
    from safetensors.numpy import load_file as load_numpy
    from safetensors.torch import load_file, safe_open

    from kgpipe.tensorfile import torch_bytes, write_numpy, write_torch

    tensors = {name: torch.randn(3, i + 1) for i, name in enumerate("zyxwvu")}
    metadata = {f"key{i}": str(i) for i in range(12)}  # safetensors writes these in hash-map order
    first = torch_bytes(tensors, metadata)
    assert all(torch_bytes(tensors, metadata) == first for _ in range(5))
    (length,) = struct.unpack("<Q", first[:8])
    assert length % 8 == 0
    header = json.loads(first[8:8 + length])
    assert list(header) == ["__metadata__", *sorted(tensors)]
    assert list(header["__metadata__"]) == sorted(metadata)

    write_torch(tmp_path / "t.safetensors", tensors, metadata)  # every safetensors reader reads it
    loaded = load_file(str(tmp_path / "t.safetensors"))
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items()) and loaded.keys() == tensors.keys()
    with safe_open(str(tmp_path / "t.safetensors"), framework="pt") as handle:
        assert handle.metadata() == metadata
    arrays = {"b": np.arange(6, dtype=np.float32), "a": np.eye(2)}
    write_numpy(tmp_path / "n.safetensors", arrays, {"x": "1", "y": "2"})
    assert {k: v.tolist() for k, v in load_numpy(str(tmp_path / "n.safetensors")).items()} == {
        k: v.tolist() for k, v in arrays.items()}


def test_rng_states_round_trip_through_json() -> None:
    from kgpipe.embed.checkpoint import capture_rng, restore_rng

    state = json.loads(json.dumps(capture_rng()))  # JSON-safe: survives a round trip
    expected = (random.random(), float(np.random.rand()), torch.rand(3).tolist())
    random.random(), np.random.rand(), torch.rand(5)
    restore_rng(state)
    assert (random.random(), float(np.random.rand()), torch.rand(3).tolist()) == expected


def test_training_checkpointing_resuming_and_stopping_never_pickle(tmp_path: Path, monkeypatch) -> None:
    """A run with early stopping that is interrupted, resumed from its checkpoint and then stops early (its
    best weights come back from the checkpoint) calls neither torch.save nor torch.load nor pickle, in
    kgpipe or in PyKEEN."""
    import pickle

    from pykeen.training.training_loop import TrainingLoop

    from tests.test_embed import FAST, run_embed, toy_graph, write_graph

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle used")

    for module, name in ((torch, "load"), (torch, "save"), (pickle, "load"), (pickle, "loads"),
                         (pickle, "dump"), (pickle, "dumps")):
        monkeypatch.setattr(module, name, refuse)
    params = {**FAST, "epochs": 6, "early_stopping": {"frequency": 1, "patience": 2, "relative_delta": 100.0}}
    write_graph(tmp_path, *toy_graph())
    train_epoch = TrainingLoop._train_epoch
    seen: list[int] = []

    def interrupted_in_epoch_3(self, *args, epoch: int, **kwargs):
        seen.append(epoch)
        if epoch == 3 and len(seen) == 3:
            raise KeyboardInterrupt
        return train_epoch(self, *args, epoch=epoch, **kwargs)

    monkeypatch.setattr(TrainingLoop, "_train_epoch", interrupted_in_epoch_3)
    with contextlib.suppress(KeyboardInterrupt):
        run_embed(tmp_path, **params)
    result = run_embed(tmp_path, **params)

    assert seen == [1, 2, 3, 3] and result.summaries["embed"]["resumed_from_epoch"] == 2
    metrics = json.loads(result.outputs["embed"]["metrics"].read_text(encoding="utf-8"))["training"]
    assert metrics["stopped_early"] and metrics["best_epoch"] == 1 and metrics["epochs"] == 3
