"""Warm start: a model for a changed graph that starts from the previous model's vectors.

Entities and relations that persist (same id) start from the previous run's rows; new ones keep the rows the
model's own initialiser drew: the model is built, seeded and reset by PyKEEN's training loop exactly as from
scratch, then (kgpipe.embed.train, just before the first batch) the persisting rows are overwritten. Learned
parameters of the interaction function (ConvE's convolution, ...) are copied whole.
Only a previous model of the same PyKEEN model with the same model_kwargs and inverse_triples qualifies;
anything else trains from scratch, and says why. The previous model is an input: its content hash (as the
lock file records the model out) goes into the lock entry as `warm_started_from`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kgpipe.embed.config import ConfigError, TrainingConfig
from kgpipe.embed.data import GraphData, Triple
from kgpipe.embed.model_io import TRIPLES, WEIGHTS, ModelInfo, read_info
from kgpipe.errors import ArtifactError

log = logging.getLogger(__name__)

# the parts of a model whose rows are entities or relations, and the tensor holding an Embedding's rows
REPRESENTATIONS = {"entity": "entity_representations", "relation": "relation_representations"}
ROWS = "_embeddings.weight"
# learned parts shared by all entities and relations (copied whole when present)
SHARED_PREFIX = "interaction."


@dataclass(frozen=True)
class PreviousModel:
    """The stage's own last model: its folder, content hash, config, weights and training triples."""

    folder: Path
    sha256: str
    info: ModelInfo
    state: Mapping[str, Any]                   # name -> torch tensor (safetensors, no pickle)
    training_triples: frozenset[Triple]

    def mismatch(self, config: TrainingConfig) -> str | None:
        """Why this model cannot start `config`'s training (None: it can)."""
        import json

        from kgpipe.dag import changed_leaves
        from kgpipe.hashing import canonical_json

        if self.info.model != config.model:
            return f"the previous model is {self.info.model}, this run trains {config.model}"
        if self.info.inverse_triples != config.inverse_triples:
            return (f"the previous model was trained with inverse_triples {self.info.inverse_triples}, this run "
                    f"with {config.inverse_triples}")
        # as JSON values on both sides: model.json holds tuples as lists
        old, new = (json.loads(canonical_json(dict(kwargs))) for kwargs in (self.info.model_kwargs,
                                                                            config.model_kwargs))
        changes = changed_leaves(old, new)
        if changes:
            return "model_kwargs differ from the previous model's (" + "; ".join(
                f"{key}: {before!r} -> {after!r}" for key, before, after in changes[:3]) + ")"
        return None


def read_previous(folder: Path) -> PreviousModel:
    """The model a previous run wrote (kgpipe.embed.model_io's format); ArtifactError if it is damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from kgpipe.hashing import path_hash

    info = read_info(folder)
    try:
        state = load_file(str(folder / WEIGHTS))
        mapped = load_file(str(folder / TRIPLES))["training"].tolist()
    except (OSError, KeyError, SafetensorError) as exc:
        raise ArtifactError(f"{folder}: saved model is incomplete or damaged ({exc})") from None
    entities, relations = list(info.entity_ids), list(info.relation_ids)
    try:
        triples = frozenset((entities[h], relations[r], entities[t]) for h, r, t in mapped)
    except (IndexError, ValueError, TypeError):
        raise ArtifactError(f"{folder}: its training triples do not fit the ids in model.json") from None
    return PreviousModel(folder=folder, sha256=path_hash(folder) or "", info=info, state=state,
                         training_triples=triples)


@dataclass(frozen=True)
class WarmStartPlan:
    """What the stage decided: the previous model to start from (None: from scratch) and why not."""

    previous: PreviousModel | None
    reason: str | None = None  # why there is no warm start (None when there is one)


def plan_warm_start(folder: Path | None, config: TrainingConfig) -> WarmStartPlan:
    """Start from the model in `folder` when it exists, is readable and fits config; else say why not."""
    if folder is None or not folder.exists():
        return WarmStartPlan(None, "there is no previous model (the stage's model out does not exist yet)")
    try:
        previous = read_previous(folder)
    except ArtifactError as exc:
        return WarmStartPlan(None, f"the previous model cannot be read: {exc.message}")
    reason = previous.mismatch(config)
    if reason is not None:
        return WarmStartPlan(None, reason)
    return WarmStartPlan(previous)


def warm_config(config: TrainingConfig, warm_epochs: int | None) -> TrainingConfig:
    """The config of a warm-started run: warm_epochs epochs (default: a quarter of the epochs, at least one
    early-stopping interval), and early stopping evaluating often enough that its patience can run out within
    them (every warm_epochs / (patience + 2) epochs at most: with the defaults' every 5 epochs, patience 3, a
    15-epoch warm run could never stop early)."""
    stopping = config.early_stopping
    if warm_epochs is None:
        warm_epochs = min(config.epochs, max(stopping.frequency if stopping is not None else 1,
                                             -(-config.epochs // 4)))
    if stopping is not None:
        stopping = replace(stopping, frequency=max(1, min(stopping.frequency, warm_epochs // (stopping.patience + 2))))
    return replace(config, epochs=warm_epochs, early_stopping=stopping)


@dataclass(frozen=True)
class WarmStartCounts:
    """Rows copied from the previous model, and rows the initialiser drew (new entities or relations)."""

    entities_copied: int
    entities_new: int
    relations_copied: int
    relations_new: int

    def as_dict(self) -> dict[str, int]:
        return {"entities_copied": self.entities_copied, "entities_new": self.entities_new,
                "relations_copied": self.relations_copied, "relations_new": self.relations_new}


def check_copyable(model: Any) -> None:
    """Refuse (ConfigError, naming the model) a model with a representation that is not a plain Embedding."""
    from pykeen.nn.representation import Embedding

    if getattr(model, "entity_representations", None) is None:
        raise ConfigError("warm_start", f"{type(model).__name__} has no entity representations to copy into",
                          hint="set warm_start: false for this model")
    for kind, attribute in REPRESENTATIONS.items():
        for index, representation in enumerate(getattr(model, attribute)):
            if type(representation) is not Embedding:
                raise ConfigError("warm_start", f"{type(model).__name__}'s {kind} representation {index} is a "
                                  f"{type(representation).__name__}; warm start copies only plain Embedding rows",
                                  hint="set warm_start: false for this model")


def _ids(previous: PreviousModel, graph: GraphData) -> dict[str, tuple[list[str], list[str]]]:
    return {"entity": (graph.entity_ids, list(previous.info.entity_ids)),
            "relation": (graph.relation_ids, list(previous.info.relation_ids))}


def row_counts(previous: PreviousModel, graph: GraphData) -> WarmStartCounts:
    """How many entities and relations of graph persist from the previous model, and how many are new."""
    copied = {kind: len(_row_pairs(new, old)) for kind, (new, old) in _ids(previous, graph).items()}
    return WarmStartCounts(entities_copied=copied["entity"], entities_new=len(graph.entity_ids) - copied["entity"],
                           relations_copied=copied["relation"],
                           relations_new=len(graph.relation_ids) - copied["relation"])


def copy_vectors(model: Any, previous: PreviousModel, graph: GraphData) -> WarmStartCounts:
    """Overwrite the rows of persisting entities and relations (and the shared interaction parameters) in a
    model for graph with the previous model's; the other rows stay as the initialiser drew them."""
    import torch

    check_copyable(model)
    with torch.no_grad():
        for kind, (new_ids, old_ids) in _ids(previous, graph).items():
            attribute = REPRESENTATIONS[kind]
            pairs = _row_pairs(new_ids, old_ids)
            for index, representation in enumerate(getattr(model, attribute)):
                key = f"{attribute}.{index}.{ROWS}"
                _copy_rows(representation._embeddings.weight, previous, key, pairs, len(new_ids), len(old_ids))
        shared = {key: _previous_tensor(previous, key, tensor, rows=False)
                  for key, tensor in model.state_dict().items() if key.startswith(SHARED_PREFIX)}
        if shared:
            model.load_state_dict(shared, strict=False)
    counts = row_counts(previous, graph)
    log.info("warm start from %s: %d of %d entities and %d of %d relations start from its vectors",
             previous.folder, counts.entities_copied, len(graph.entity_ids), counts.relations_copied,
             len(graph.relation_ids))
    return counts


def _row_pairs(new_ids: Sequence[str], old_ids: Sequence[str]) -> list[tuple[int, int]]:
    """(new row, old row) for every id both have, in the new id order."""
    old = {name: row for row, name in enumerate(old_ids)}
    return [(row, old[name]) for row, name in enumerate(new_ids) if name in old]


def _previous_tensor(previous: PreviousModel, key: str, tensor: Any, *, rows: bool) -> Any:
    """The previous model's tensor `key`, checked against this model's (rows: only the row count may differ)."""
    value = previous.state.get(key)
    shape = tuple(tensor.shape)
    fits = value is not None and value.dtype == tensor.dtype and (
        tuple(value.shape[1:]) == shape[1:] if rows else tuple(value.shape) == shape)
    if not fits:
        found = "missing" if value is None else f"{tuple(value.shape)} {value.dtype}"
        raise ArtifactError(f"{previous.folder}: the previous model's {key} ({found}) does not fit this model's "
                            f"{shape} {tensor.dtype} although its model.json matches",
                            hint="delete the embed stage's model out, or set warm_start: false")
    return value


def _copy_rows(weight: Any, previous: PreviousModel, key: str, pairs: list[tuple[int, int]], new_ids: int,
               old_ids: int) -> None:
    """Copy rows by id. A representation may hold several rows per id (a relation and its inverse, rows 2i and
    2i+1, with inverse_triples): each id's block is copied. A complex-valued Embedding keeps real and imaginary
    parts side by side in a real tensor, so its rows copy as they are."""
    import torch

    value = _previous_tensor(previous, key, weight, rows=True)
    per_id, rest = divmod(int(weight.shape[0]), max(1, new_ids))
    per_old, rest_old = divmod(int(value.shape[0]), max(1, old_ids))
    if rest or rest_old or per_id != per_old:
        raise ArtifactError(f"{previous.folder}: {key} has {value.shape[0]} rows for {old_ids} ids, this model "
                            f"{weight.shape[0]} for {new_ids}", hint="set warm_start: false")
    if not pairs:
        return
    new_index = torch.tensor([new * per_id + k for new, _ in pairs for k in range(per_id)], dtype=torch.long)
    old_index = torch.tensor([old * per_id + k for _, old in pairs for k in range(per_id)], dtype=torch.long)
    weight[new_index.to(weight.device)] = value[old_index].to(weight.device)
