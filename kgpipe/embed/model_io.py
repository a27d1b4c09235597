"""A trained PyKEEN model on disk without pickle: weights as safetensors, the training triples (ids) as
safetensors, and a JSON config with the model's name, kwargs and id maps to rebuild it.

>>> model, info = load_model("artifacts/embed/model")        # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgpipe.atomic import atomic_write_text
from kgpipe.errors import ArtifactError

WEIGHTS = "model.safetensors"
TRIPLES = "training_triples.safetensors"
CONFIG = "model.json"
FORMAT = "kgpipe-pykeen-model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelInfo:
    """What model.json says: enough to rebuild the model and map its ids back to kgpipe ids and labels."""

    model: str
    model_kwargs: Mapping[str, Any]
    loss: str | None
    loss_kwargs: Mapping[str, Any]
    regularizer: str | None
    regularizer_kwargs: Mapping[str, Any]
    inverse_triples: bool
    entity_ids: Sequence[str]
    entity_labels: Sequence[str]
    relation_ids: Sequence[str]
    relation_labels: Sequence[str]
    extra: Mapping[str, Any]

    @property
    def entity_to_id(self) -> dict[str, int]:
        return {entity: index for index, entity in enumerate(self.entity_ids)}

    @property
    def relation_to_id(self) -> dict[str, int]:
        return {relation: index for index, relation in enumerate(self.relation_ids)}


def save_model(folder: Path, model: Any, *, training_triples: Any, config: Mapping[str, Any],
               entity_ids: Sequence[str], entity_labels: Sequence[str], relation_ids: Sequence[str],
               relation_labels: Sequence[str], extra: Mapping[str, Any] | None = None) -> None:
    """Write weights, training triples and model.json into folder (created if missing)."""
    from kgpipe.tensorfile import write_torch

    folder.mkdir(parents=True, exist_ok=True)
    write_torch(folder / WEIGHTS, model.state_dict(), metadata={"format": FORMAT})
    write_torch(folder / TRIPLES, {"training": training_triples})
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model": config["model"], "model_kwargs": dict(config.get("model_kwargs", {})),
        "loss": config.get("loss"), "loss_kwargs": dict(config.get("loss_kwargs", {})),
        "regularizer": config.get("regularizer"), "regularizer_kwargs": dict(config.get("regularizer_kwargs", {})),
        "inverse_triples": bool(config.get("inverse_triples", False)),
        "num_entities": len(entity_ids), "num_relations": len(relation_ids),
        "entity_ids": list(entity_ids), "entity_labels": list(entity_labels),
        "relation_ids": list(relation_ids), "relation_labels": list(relation_labels),
        **(extra or {}),
    }
    atomic_write_text(folder / CONFIG, json.dumps(document, indent=1, ensure_ascii=False) + "\n")


def read_info(folder: Path) -> ModelInfo:
    path = Path(folder) / CONFIG
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no saved model here", hint="point at the embed stage's model folder") from None
    except ValueError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None
    if document.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a kgpipe model config (format {document.get('format')!r})")
    known = {"format", "format_version", "model", "model_kwargs", "loss", "loss_kwargs", "regularizer",
             "regularizer_kwargs", "inverse_triples", "num_entities", "num_relations", "entity_ids",
             "entity_labels", "relation_ids", "relation_labels"}
    return ModelInfo(
        model=document["model"], model_kwargs=document["model_kwargs"], loss=document["loss"],
        loss_kwargs=document["loss_kwargs"], regularizer=document["regularizer"],
        regularizer_kwargs=document["regularizer_kwargs"], inverse_triples=document["inverse_triples"],
        entity_ids=document["entity_ids"], entity_labels=document["entity_labels"],
        relation_ids=document["relation_ids"], relation_labels=document["relation_labels"],
        extra={k: v for k, v in document.items() if k not in known})


def build_model(info: ModelInfo | Mapping[str, Any], triples_factory: Any, random_seed: int | None = None) -> Any:
    """A fresh PyKEEN model with the saved architecture (same components as kgpipe's pipeline built it)."""
    from pykeen.models import model_resolver
    from pykeen.regularizers import regularizer_resolver

    from kgpipe.embed.config import resolver

    loss_resolver = resolver("loss")

    get = info.get if isinstance(info, Mapping) else lambda key, default=None: getattr(info, key, default)
    kwargs = dict(get("model_kwargs") or {})
    if get("regularizer") is not None:
        kwargs["regularizer"] = regularizer_resolver.make(get("regularizer"), dict(get("regularizer_kwargs") or {}))
    kwargs["loss"] = loss_resolver.make(get("loss"), dict(get("loss_kwargs") or {}))
    return model_resolver.make(get("model"), triples_factory=triples_factory, random_seed=random_seed, **kwargs)


@contextmanager
def _rng_preserved() -> Iterator[None]:
    """Restore Python's, numpy's and torch's RNG state afterwards (PyKEEN seeds all three)."""
    import random

    import numpy as np
    import torch

    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])


def load_model(folder: str | Path, device: str = "cpu") -> tuple[Any, ModelInfo, Any]:
    """The saved model (in eval mode), its info, and a TriplesFactory of its training triples with labels."""
    from pykeen.triples import TriplesFactory
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    info = read_info(folder)
    try:
        triples = load_file(str(folder / TRIPLES))["training"]
        state = load_file(str(folder / WEIGHTS))
    except (OSError, KeyError, SafetensorError) as exc:  # SafetensorError: a truncated or damaged file
        raise ArtifactError(f"{folder}: saved model is incomplete or damaged ({exc})",
                            hint="re-run the embed stage (kgpipe run --force --only embed)") from None
    factory = TriplesFactory(mapped_triples=triples.long(), entity_to_id=info.entity_to_id,
                             relation_to_id=info.relation_to_id, create_inverse_triples=info.inverse_triples)
    with _rng_preserved():  # building seeds and initialises weights; the caller's RNG stays as it was
        model = build_model(info, factory, random_seed=0)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"{folder}: weights do not fit a {info.model} built from model.json ({exc})") from None
    return model.to(device).eval(), info, factory
