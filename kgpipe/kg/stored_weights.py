"""The fuse stage's stored match weights (its `learned_weights.json` output): what it writes, how a later run reads
them back, and whether they fit the run's settings.

With `resolution.learn: em` the stage learns Fellegi-Sunter weights on its first run and stores them; later runs
reuse the stored ones, so that a pair scores the same however the corpus grows and entity ids stay stable across
incremental runs. `resolution.relearn: true`, or deleting the file, learns them again. With learn fixed the file
says so and holds no weights (every declared output is written on every run).

>>> from kgpipe.kg.learned_weights import ComparisonWeights, LearnedWeights
>>> weights = LearnedWeights(comparisons=[ComparisonWeights(name="name", levels=["exact", "else"],
...                                                          m=[0.9, 0.1], u=[0.01, 0.99])], prior=0.2)
>>> parse_stored(stored_text(weights).encode()).weights == weights
True
>>> parse_stored(stored_text(None).encode()).note
'the last run stored none (learn: fixed)'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from kgpipe.kg.learned_weights import LearnedWeights

if TYPE_CHECKING:
    from kgpipe.kg.resolution_config import ResolutionConfig

FIXED_TEXT = json.dumps({"learn": "fixed", "note": "resolution.learn is fixed: no weights were learned"},
                        indent=1) + "\n"
WeightsHow = Literal["learned", "reused", "given"]


def stored_text(weights: LearnedWeights | None) -> str:
    """The bytes of the output (as text): the weights as JSON, or the fixed note where there are none."""
    return weights.to_json() + "\n" if weights is not None else FIXED_TEXT


@dataclass(frozen=True)
class StoredWeights:
    """What a previous run stored: its weights (None where it stored none or the file is not readable as weights),
    the file's SHA-256 (the run that reuses them records it, as it would an input's) and, without weights, why."""

    weights: LearnedWeights | None
    sha256: str | None = None
    note: str | None = None


def parse_stored(data: bytes) -> StoredWeights:
    from kgpipe.hashing import sha256_bytes

    digest = sha256_bytes(data)
    try:
        return StoredWeights(LearnedWeights.from_json(data), digest)
    except (ValidationError, ValueError) as error:
        if data.decode("utf-8", errors="replace") == FIXED_TEXT:
            return StoredWeights(None, digest, "the last run stored none (learn: fixed)")
        return StoredWeights(None, digest, f"the stored file is not learned weights ({error})")


def read_stored(path: Path | None) -> StoredWeights:
    """The weights a previous run left at `path` (None: no previous run, or the file was deleted)."""
    if path is None:
        return StoredWeights(None, None, "none stored (a first run, or the file was deleted)")
    try:
        data = path.read_bytes()
    except OSError as error:
        return StoredWeights(None, None, f"the stored file cannot be read ({error.strerror})")
    return parse_stored(data)


@dataclass(frozen=True)
class WeightsUse:
    """How a run came by its weights: learned on this run's pairs, reused from the previous run, or given in the
    params (weights_from); `note`: why stored weights were not reused; `reused_sha256`: the file reused."""

    how: WeightsHow
    note: str | None = None
    reused_sha256: str | None = None


def signature_of(config: ResolutionConfig, has_context: bool) -> list[tuple[str, tuple[str, ...]]]:
    """The comparisons and levels the settings give: stored weights with another signature cannot be reused."""
    from kgpipe.kg.comparisons import comparisons_for

    return [(c.name, c.levels) for c in comparisons_for(config, has_context)]


def choose_weights(config: ResolutionConfig, stored: StoredWeights | None, has_context: bool
                   ) -> tuple[ResolutionConfig, WeightsUse | None]:
    """The settings to resolve with and how the weights come: None with learn fixed; the params' own weights_from;
    the stored weights where they exist, fit these settings and no relearn is asked; else learned again."""
    if config.learn != "em":
        return config, None
    if config.weights_from is not None:
        return config, WeightsUse("given")
    if config.relearn:
        return config, WeightsUse("learned", "relearn asked (resolution.relearn: true)")
    if stored is None or stored.weights is None:
        return config, WeightsUse("learned", None if stored is None else stored.note)
    wanted = signature_of(config, has_context)
    if stored.weights.signature() != wanted:
        return config, WeightsUse("learned", "the stored weights compare "
                                  f"{_names(stored.weights.signature())}, these settings {_names(wanted)}")
    return config.model_copy(update={"weights_from": stored.weights}), WeightsUse("reused", None, stored.sha256)


def _names(signature: Sequence[tuple[str, tuple[str, ...]]]) -> str:
    return "[" + ", ".join(f"{name}({len(levels)})" for name, levels in signature) + "]"
