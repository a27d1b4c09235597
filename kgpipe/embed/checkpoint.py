"""Training checkpoints without pickle: tensors (model, optimizer, best weights) as safetensors, everything
else (epoch, losses, RNG states, early-stopping state) as JSON, both written atomically.

A checkpoint is checkpoint.json plus the tensor file it names (checkpoint-<epoch>.safetensors) and whose
sha256 it records. The tensor file is written first and the JSON last, so a crash between the two leaves the
previous pair intact. Reading checks everything against the freshly built model and optimizer before any
state is touched; anything that does not fit raises CheckpointRejected, and the caller starts over.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgpipe.atomic import atomic_write_bytes, atomic_write_text, remove_path

log = logging.getLogger(__name__)

STATE = "checkpoint.json"
FORMAT = "kgpipe-embed-checkpoint"
FORMAT_VERSION = 1
TENSOR_FILE = re.compile(r"checkpoint-\d{6}\.safetensors")
# names of training state other programs (and kgpipe before safetensors) kept here; never read, only removed
FOREIGN = ("training.pt", "best-model.pt", "progress.json")


class CheckpointRejected(Exception):
    """The checkpoint is damaged, of another run, or does not fit the model; the reason says which."""


@dataclass
class StopperState:
    """Early stopping's memory: every validation result, the best so far, and whether it stopped."""

    results: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    remaining_patience: int = 0
    stopped: bool = False


@dataclass
class Checkpoint:
    """The training state after `epoch` finished epochs."""

    epoch: int
    losses: list[float]
    training_seconds: float
    model: dict[str, Any]                   # state_dict tensors
    optimizer: dict[str, Any]               # an optimizer state_dict (torch's own layout)
    rng: dict[str, Any]                     # JSON-safe RNG states, see capture_rng
    stopper: StopperState | None = None
    best: dict[str, Any] | None = None      # best epoch's state_dict, while early stopping keeps one


# --- RNG states as JSON ------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """Python's, numpy's and torch's RNG states (CUDA's too, where initialised) as JSON-safe values."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss},
        "numpy": {"kind": kind, "keys": [int(k) for k in keys], "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": base64.b64encode(torch.random.get_rng_state().numpy().tobytes()).decode("ascii"),
        "cuda": None,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode("ascii") for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Set every RNG from capture_rng's record; raises CheckpointRejected on a record of the wrong shape."""
    import numpy as np
    import torch

    try:
        py = state["python"]
        internal = tuple(int(x) for x in py["state"])
        gauss = py["gauss_next"]
        numpy_state = state["numpy"]
        keys = np.asarray(numpy_state["keys"], dtype=np.uint32)
        torch_bytes = base64.b64decode(state["torch"], validate=True)
        current = torch.random.get_rng_state()
        if len(torch_bytes) != current.numel() or keys.shape != (624,) or len(internal) != 625:
            raise ValueError("a state of the wrong length")
        cuda = state.get("cuda")
        random.setstate((int(py["version"]), internal, None if gauss is None else float(gauss)))
        np.random.set_state((str(numpy_state["kind"]), keys, int(numpy_state["pos"]),
                             int(numpy_state["has_gauss"]), float(numpy_state["cached_gaussian"])))
        torch.random.set_rng_state(torch.frombuffer(bytearray(torch_bytes), dtype=torch.uint8))
    except (KeyError, TypeError, ValueError, OverflowError, RuntimeError) as exc:
        raise CheckpointRejected(f"its random states do not fit ({type(exc).__name__}: {exc})") from None
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)
                                      for s in cuda])
    elif torch.cuda.is_available() and torch.cuda.is_initialized():
        log.warning("the checkpoint has no CUDA random state for this machine's devices; a resumed run on CUDA "
                    "may differ from an uninterrupted one")


# --- writing -----------------------------------------------------------------------------------------


def _split_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """torch's optimizer state_dict as (tensors for safetensors, the rest as JSON)."""
    import torch

    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in group.items()} for group in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def write_checkpoint(folder: Path, checkpoint: Checkpoint, identity: Mapping[str, Any]) -> None:
    """Write the tensors, then the JSON naming them; older tensor files go once the JSON is in place."""
    from kgpipe.tensorfile import torch_bytes

    folder.mkdir(parents=True, exist_ok=True)
    optimizer_tensors, optimizer_rest = _split_optimizer(checkpoint.optimizer)
    tensors = {f"model/{k}": v for k, v in checkpoint.model.items()}
    tensors.update(optimizer_tensors)
    if checkpoint.best is not None:
        tensors.update({f"best/{k}": v for k, v in checkpoint.best.items()})
    data = torch_bytes(tensors, metadata={"format": FORMAT})
    name = f"checkpoint-{checkpoint.epoch:06d}.safetensors"
    atomic_write_bytes(folder / name, data)
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "identity": dict(identity),
        "epoch": checkpoint.epoch, "losses": list(checkpoint.losses),
        "training_seconds": checkpoint.training_seconds, "tensors": name,
        "tensors_sha256": hashlib.sha256(data).hexdigest(), "optimizer": optimizer_rest,
        "rng": checkpoint.rng, "has_best": checkpoint.best is not None,
        "stopper": None if checkpoint.stopper is None else vars(checkpoint.stopper),
    }
    atomic_write_text(folder / STATE, json.dumps(document, allow_nan=False) + "\n")
    for old in folder.glob("checkpoint-*.safetensors"):
        if old.name != name:
            remove_path(old)


# --- reading -----------------------------------------------------------------------------------------


def _need(condition: bool, what: str) -> None:
    if not condition:
        raise CheckpointRejected(what)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _stopper_state(raw: Any) -> StopperState | None:
    if raw is None:
        return None
    _need(isinstance(raw, dict) and set(raw) == set(vars(StopperState())), "its early-stopping state has the "
          "wrong fields")
    _need(isinstance(raw["results"], list) and all(_number(x) for x in raw["results"]),
          "its validation results are not numbers")
    _need(raw["best_epoch"] is None or (isinstance(raw["best_epoch"], int) and raw["best_epoch"] > 0),
          "its best epoch is not an epoch")
    _need(raw["best_metric"] is None or _number(raw["best_metric"]), "its best metric is not a number")
    _need(isinstance(raw["remaining_patience"], int) and isinstance(raw["stopped"], bool),
          "its patience or stopped flag has the wrong type")
    return StopperState(**raw)


def _checked_tensors(loaded: Mapping[str, Any], prefix: str, expected: Mapping[str, Any]) -> dict[str, Any]:
    found = {k[len(prefix):]: v for k, v in loaded.items() if k.startswith(prefix)}
    _need(set(found) == set(expected), f"its {prefix.rstrip('/')} tensors are not the model's "
          f"({len(set(found) ^ set(expected))} names differ)")
    for name, tensor in found.items():
        want = expected[name]
        _need(tensor.shape == want.shape and tensor.dtype == want.dtype,
              f"{prefix}{name} is {tuple(tensor.shape)} {tensor.dtype}, the model's {tuple(want.shape)} {want.dtype}")
    return found


def _optimizer_state(loaded: Mapping[str, Any], raw: Any, optimizer: Any) -> dict[str, Any]:
    """The saved optimizer state in torch's layout, checked against the freshly built optimizer."""
    current = optimizer.state_dict()
    _need(isinstance(raw, dict) and isinstance(raw.get("param_groups"), list)
          and isinstance(raw.get("scalars"), dict), "its optimizer state has the wrong fields")
    groups = raw["param_groups"]
    _need(len(groups) == len(current["param_groups"]), "its optimizer has another number of parameter groups")
    shapes = {}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for saved, fresh in zip(groups, current["param_groups"], strict=True):
        _need(isinstance(saved, dict) and set(saved) == set(fresh) and saved["params"] == fresh["params"],
              "its optimizer's parameter groups are not this optimizer's")
        for key, value in fresh.items():  # torch keeps some settings (betas) as tuples
            if isinstance(value, tuple):
                saved[key] = tuple(saved[key])
    for index, param in zip((i for g in current["param_groups"] for i in g["params"]), params, strict=True):
        shapes[str(index)] = param.shape
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in loaded.items():
        if not key.startswith("optimizer/"):
            continue
        parts = key.split("/")
        _need(len(parts) == 3 and parts[1] in shapes, f"{key} names no parameter of the optimizer")
        _need(tensor.dim() == 0 or tensor.shape == shapes[parts[1]],
              f"{key} is {tuple(tensor.shape)}, its parameter {tuple(shapes[parts[1]])}")
        state.setdefault(int(parts[1]), {})[parts[2]] = tensor
    for index, values in raw["scalars"].items():
        _need(index in shapes and isinstance(values, dict) and all(_number(v) or isinstance(v, bool)
                                                                    for v in values.values()),
              "its optimizer's scalar state has the wrong shape")
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": groups}


def read_checkpoint(folder: Path, identity: Mapping[str, Any], model: Any, optimizer: Any) -> Checkpoint | None:
    """The checkpoint in folder (None if there is none), checked against this run and its fresh model and
    optimizer; raises CheckpointRejected saying what is wrong. Nothing is restored here."""
    from safetensors.torch import load

    path = folder / STATE
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointRejected(f"{STATE} is not readable JSON ({type(exc).__name__}: {exc})") from None
    _need(isinstance(document, dict) and document.get("format") == FORMAT
          and document.get("format_version") == FORMAT_VERSION, f"{STATE} is not a kgpipe checkpoint")
    _need(document.get("identity") == json.loads(json.dumps(dict(identity))),
          "it is of another training run (config or training triples differ)")
    epoch, losses = document.get("epoch"), document.get("losses")
    _need(isinstance(epoch, int) and epoch > 0, "its epoch is not a positive number")
    _need(isinstance(losses, list) and len(losses) == epoch and all(_number(x) for x in losses),
          "its losses are not one number per epoch")
    _need(_number(document.get("training_seconds")), "its training time is not a number")
    name = document.get("tensors")
    _need(isinstance(name, str) and TENSOR_FILE.fullmatch(name) is not None, "it names no tensor file of its own")
    _need(isinstance(document.get("rng"), dict), "its random states are missing")
    _need(isinstance(document.get("has_best"), bool), "its best-weights flag is missing")
    try:
        data = (folder / name).read_bytes()
    except OSError as exc:
        raise CheckpointRejected(f"{name} is not readable ({type(exc).__name__})") from None
    _need(hashlib.sha256(data).hexdigest() == document.get("tensors_sha256"), f"{name} is not the file its "
          "checkpoint.json describes (truncated or replaced)")
    try:
        loaded = load(data)
    except Exception as exc:  # safetensors raises its own error types on a damaged header
        raise CheckpointRejected(f"{name} is not a safetensors file ({type(exc).__name__}: {exc})") from None

    expected = model.state_dict()
    stopper = _stopper_state(document.get("stopper"))
    return Checkpoint(
        epoch=epoch, losses=[float(x) for x in losses], training_seconds=float(document["training_seconds"]),
        model=_checked_tensors(loaded, "model/", expected),
        optimizer=_optimizer_state(loaded, document.get("optimizer"), optimizer),
        rng=document["rng"], stopper=stopper,
        best=_checked_tensors(loaded, "best/", expected) if document["has_best"] else None)


def discard(folder: Path) -> None:
    """Remove every checkpoint file (kgpipe's and foreign ones) so that training starts over."""
    if not folder.exists():
        return
    for path in folder.iterdir():
        if path.name == STATE or TENSOR_FILE.fullmatch(path.name) or path.name in FOREIGN:
            remove_path(path)
