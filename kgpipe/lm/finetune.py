"""What every fine-tuning of a packaged or local encoder shares (the relation model, the transformer NER):
loading the base encoder offline, rebuilding one from a saved config, seeding, AdamW with warm-up, batches
of similar length, and checkpoints that a rerun with the same data and options resumes.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from kgpipe.errors import ArtifactError, DependencyMissingError, InputError, WorkspaceError
from kgpipe.lm.encoder import DEFAULT_BASE_MODEL, resolve_base_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel

BASE_HINT = ("pass all-MiniLM-L6-v2 (the packaged default) or a local folder of a BERT-family encoder "
             "(config.json, weights and fast-tokenizer files, as save_pretrained writes them)")


def load_base(name: str) -> tuple[PreTrainedModel, Any, str]:
    """(encoder, fast tokenizer, name to record) for the default packaged model or a local model folder;
    never the hub."""
    from transformers import AutoModel, AutoTokenizer

    if name in (DEFAULT_BASE_MODEL, "default"):
        path, recorded = resolve_base_model(DEFAULT_BASE_MODEL), DEFAULT_BASE_MODEL
    else:
        folder = Path(name)
        if not folder.is_dir():
            raise InputError(f"base model folder '{name}' does not exist", file=name, hint=BASE_HINT)
        if not (folder / "config.json").is_file():
            raise InputError("not a Hugging Face model folder (no config.json)", file=name, hint=BASE_HINT)
        path, recorded = str(folder), folder.resolve().name
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoder = AutoModel.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot load an encoder and tokenizer from it ({type(exc).__name__}: {exc})",
                         file=name, hint=BASE_HINT) from None
    config = encoder.config
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "is_decoder", False) \
            or not getattr(config, "hidden_size", None):
        raise InputError(f"{type(encoder).__name__} is not an encoder", file=name, hint=BASE_HINT)
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(f"its tokenizer ({type(tokenizer).__name__}) is not a fast tokenizer", file=name,
                         hint="spans are mapped to tokens through offset mappings: the folder needs tokenizer.json")
    return encoder, tokenizer, recorded


def encoder_architecture(encoder: PreTrainedModel) -> dict[str, Any]:
    """The encoder's config as a dict, without where it was loaded from (an absolute path)."""
    config = encoder.config.to_dict()
    config.pop("_name_or_path", None)
    return dict(sorted(config.items()))


def encoder_limit(encoder: PreTrainedModel, tokenizer: Any) -> int:
    """The longest input the encoder and tokenizer both take, at most 512 tokens."""
    return min(512, int(getattr(encoder.config, "max_position_embeddings", 512) or 512),
               int(getattr(tokenizer, "model_max_length", 512) or 512))


def rebuild_encoder(architecture: Mapping[str, Any]) -> PreTrainedModel:
    """An encoder with random weights of the saved architecture (the weights are loaded next); no hub."""
    from transformers import AutoConfig, AutoModel

    settings = dict(architecture)
    return AutoModel.from_config(AutoConfig.for_model(settings.pop("model_type"), **settings))


def save_tokenizer(tokenizer: Any, folder: Path) -> None:
    """The tokenizer's files as `folder`, swapped in whole (a reused folder keeps no other tokenizer's files)."""
    from kgpipe.atomic import commit_path, temp_path_for

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(folder, directory=True)
    try:
        tokenizer.save_pretrained(str(tmp))
        commit_path(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def adamw_with_warmup(model: nn.Module, learning_rate: float, weight_decay: float, warmup_share: float,
                      total_steps: int, *, head_learning_rate: float | None = None, encoder: str = "encoder"
                      ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW without weight decay on biases and norms; the learning rate rises linearly over the first
    `warmup_share` of the steps, then falls linearly to zero. With `head_learning_rate`, the parameters outside
    the submodule `encoder` (the randomly initialised layers on top of the pretrained encoder) get that peak
    rate instead, on the same schedule; without it, one rate for all as before."""
    total_steps = max(1, total_steps)
    warmup = int(warmup_share * total_steps)
    no_decay = ("bias", "LayerNorm.weight", "norm.weight")
    named = list(model.named_parameters())

    def group(params: list[nn.Parameter], decay: float, rate: float | None) -> dict[str, Any]:
        return {"params": params, "weight_decay": decay, **({} if rate is None else {"lr": rate})}

    def split(chosen: list[tuple[str, nn.Parameter]], rate: float | None) -> list[dict[str, Any]]:
        return [group([p for n, p in chosen if not any(k in n for k in no_decay)], weight_decay, rate),
                group([p for n, p in chosen if any(k in n for k in no_decay)], 0.0, rate)]

    if head_learning_rate is None:
        groups = split(named, None)
    else:
        inside = [(n, p) for n, p in named if n.startswith(encoder + ".")]
        if not inside or len(inside) == len(named):
            raise ValueError(f"a head learning rate needs parameters inside and outside '{encoder}'")
        groups = (split(inside, learning_rate)
                  + split([(n, p) for n, p in named if not n.startswith(encoder + ".")], head_learning_rate))
    optimiser = torch.optim.AdamW(groups, lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: (step + 1) / max(1, warmup) if step < warmup
        else max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    return optimiser, scheduler


def length_batches(items: list[int], length: Mapping[int, int], size: int, rng: random.Random) -> list[list[int]]:
    """One epoch's batches: the items shuffled, then sorted by length within blocks of 50 batches, so a
    batch pads little (on CoNLL04 train 1.04 times the real tokens instead of 1.85), then the batches
    shuffled. Shuffled afresh from the given order every epoch: a resumed run draws the same batches."""
    rng.shuffle(items)
    block = size * 50
    batches = []
    for start in range(0, len(items), block):
        chunk = sorted(items[start:start + block], key=lambda s: (length[s], s))
        batches += [chunk[k:k + size] for k in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches


@dataclass(frozen=True)
class EpochRun:
    """What one pass over the batches did: summed loss, optimiser steps, items (sentences) seen, and whether
    the time budget ran out before the last batch."""

    total_loss: float
    steps: int
    items: int
    out_of_time: bool

    @property
    def mean_loss(self) -> float:
        return round(self.total_loss / max(1, self.steps), 4)


def run_epoch(model: nn.Module, batches: list[list[int]], loss_of: Callable[[list[int]], torch.Tensor],
              optimiser: Any, scheduler: Any, started: float, max_minutes: float) -> EpochRun:
    """One epoch of the shared recipe: per batch the loss, a backward pass, gradients clipped to norm 1, an
    AdamW step and a scheduler step; stops after the batch that passes `max_minutes` since `started`
    (time.monotonic)."""
    import time

    total, steps, items = 0.0, 0, 0
    for chosen in batches:
        loss = loss_of(chosen)
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        scheduler.step()
        total += loss.item()
        items += len(chosen)
        steps += 1
        if (time.monotonic() - started) / 60 > max_minutes:
            return EpochRun(total, steps, items, True)
    return EpochRun(total, steps, items, False)


def as_tuple(value: Any) -> Any:
    """random.getstate() after a round trip through a checkpoint (lists back to tuples)."""
    return tuple(as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


def save_checkpoint(path: Path, fingerprint: str, state: Mapping[str, Any]) -> None:
    """The training state with the fingerprint of its data and options, written atomically."""
    from kgpipe.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"fingerprint": fingerprint, **state}, tmp)


def load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any]:
    """A checkpoint of a run with the same fingerprint; any other is refused (WorkspaceError)."""
    try:
        state = torch.load(path, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: torch raises several kinds
        raise WorkspaceError(f"{path}: not a readable checkpoint ({type(exc).__name__})",
                             hint="delete it, or pass --restart to train from the start") from None
    if state.get("fingerprint") != fingerprint:
        raise WorkspaceError(f"{path}: a checkpoint of a run with other data or options",
                             hint="rerun with the same data and options to resume it, pass --restart to discard "
                                  "it, or choose another output folder")
    return state


@dataclass
class Resumed:
    """Where a resumed run stands: the last finished epoch, the early-stopping counters and the epoch scores
    so far (as the dicts the report's epoch records were saved as)."""

    epoch: int = 0
    best_f: float = -1.0
    since_best: int = 0
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def save_training(path: Path, fingerprint: str, model: nn.Module, optimiser: Any, scheduler: Any,
                  rng: random.Random, at: Resumed) -> None:
    """A checkpoint after epoch `at.epoch`: weights, optimiser, schedule, both random generators and `at`."""
    save_checkpoint(path, fingerprint, {
        "epoch": at.epoch, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
        "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(), "python_rng": rng.getstate(),
        "best_f": at.best_f, "since_best": at.since_best, "best_epoch": at.best_epoch,
        "history": json.dumps(at.history)})


def resume_training(path: Path, fingerprint: str, model: nn.Module, optimiser: Any, scheduler: Any,
                    rng: random.Random) -> Resumed:
    """Restore what save_training wrote into the model, optimiser, schedule and generators (a checkpoint of
    another run is refused: load_checkpoint)."""
    state = load_checkpoint(path, fingerprint)
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    rng.setstate(as_tuple(state["python_rng"]))
    return Resumed(state["epoch"], state["best_f"], state["since_best"], state["best_epoch"],
                   json.loads(state["history"]))


M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class ModelFolder:
    """How a fine-tuned model is saved: its config file (JSON with `format` and `encoder`, the encoder's
    architecture), its weights (safetensors) and the tokenizer's folder; what it is and the command that trains
    it, for messages."""

    config_file: str
    weights_file: str
    format: str
    what: str            # "relation model", "transformer NER"
    command: str         # "kgpipe rel train"
    tokenizer_dir: str = "tokenizer"

    def load(self, folder: Path, config_type: Callable[..., Any],
             build: Callable[[PreTrainedModel, Any, Any], M]) -> M:
        """config_type(**config), the encoder rebuilt from it, the tokenizer, build(encoder, tokenizer,
        config) and the weights loaded into it, in eval mode; no hub and no base model needed. A folder
        without the config is a DependencyMissingError, a broken one an ArtifactError, each naming the file."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        config_path = folder / self.config_file
        if not config_path.is_file():
            raise DependencyMissingError(f"{folder}: not a {self.what} folder (no {self.config_file})",
                                         hint=f"train one with `{self.command} TRAIN.jsonl FOLDER`")
        try:
            raw = json.loads(config_path.read_text(encoding="utf-8"))
            if raw.get("format") != self.format:
                raise ValueError(f"format {raw.get('format')!r}, expected {self.format!r}")
            config = config_type(**raw)
            encoder = rebuild_encoder(config.encoder)
            tokenizer = AutoTokenizer.from_pretrained(str(folder / self.tokenizer_dir))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{config_path}: cannot rebuild the {self.what} ({type(exc).__name__}: {exc})",
                                hint=f"retrain it with `{self.command}`") from None
        model = build(encoder, tokenizer, config)
        weights = folder / self.weights_file
        try:
            model.load_state_dict(load_file(str(weights)), strict=True)
        except (OSError, RuntimeError, SafetensorError) as exc:  # missing, other shapes, not safetensors
            raise ArtifactError(f"{weights}: weights do not match {self.config_file} ({str(exc).splitlines()[0]})",
                                hint=f"retrain it with `{self.command}`") from None
        return model.eval()
