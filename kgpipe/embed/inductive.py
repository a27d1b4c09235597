"""Inductive entity vectors: a closed-form ridge map from an entity's text (its label and aliases, and the mean
encoding of the sentences that mention it) into the KG embedding space, fitted on the entities that have both.

The embed model's rows are never changed: entities it trained keep their vectors; only the others get a
predicted one. Features: [mean name encoding, mean context encoding] (each block L2-normalised per text).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kgpipe.lm.projection import LinearMap, fit_linear_map

# a sentence ends at . ! or ? followed by white space (the extract stage's spaCy sentences are not stored
# with their spans; this bound is close and needs no parser)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")


@dataclass(frozen=True)
class EntityText:
    """What the map reads for one entity: its names (label first) and the sentences that mention it."""

    entity_id: str
    names: tuple[str, ...]
    contexts: tuple[str, ...]


@dataclass(frozen=True)
class FitReport:
    """How well the map predicts held-out anchors' KG vectors (None where too few anchors to hold any out)."""

    anchors: int
    heldout: int
    ridge: float
    heldout_cosine: float | None
    heldout_r2: float | None
    baseline_cosine: float | None   # the training anchors' mean vector as the prediction: what the map must beat

    def as_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {"anchors": self.anchors, "heldout_anchors": self.heldout, "ridge": self.ridge,
                "heldout_cosine": rounded(self.heldout_cosine), "heldout_r2": rounded(self.heldout_r2),
                "heldout_baseline_cosine": rounded(self.baseline_cosine)}


def sentence_around(text: str, start: int, end: int) -> str:
    """The sentence of text that holds the span [start, end)."""
    begin = 0
    for match in _SENTENCE_END.finditer(text, 0, start):
        begin = match.end()
    after = _SENTENCE_END.search(text, end)
    return text[begin:after.end() if after else len(text)].strip()


def entity_texts(entities: Sequence[tuple[str, str, Sequence[str]]],
                 mentions: Sequence[tuple[str, str, int, int]] = (), documents: dict[str, str] | None = None, *,
                 max_names: int = 8, max_contexts: int = 32) -> list[EntityText]:
    """entities: (id, label, aliases); mentions: (entity id, doc id, start, end) already linked to entities;
    documents: doc id -> text. Contexts are the distinct sentences in (doc, offset) order, at most max_contexts."""
    sentences: dict[str, list[str]] = {}
    for entity, doc, start, end in sorted(mentions, key=lambda m: (m[0], m[1], m[2], m[3])):
        found = sentences.setdefault(entity, [])
        if len(found) < max_contexts and documents is not None:
            sentence = sentence_around(documents[doc], start, end)
            if sentence and sentence not in found:
                found.append(sentence)
    out = []
    for entity, label, aliases in entities:
        names = [label] + [a for a in dict.fromkeys(aliases) if a and a != label]
        out.append(EntityText(entity, tuple(names[:max_names]), tuple(sentences.get(entity, ()))))
    return out


def text_features(texts: Sequence[EntityText], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """(len(texts), 2 * dim) float64: mean name encoding, then mean context encoding (zeros without context).
    Each distinct string is encoded once."""
    strings = sorted({s for t in texts for s in (*t.names, *t.contexts)})
    encoded = encode(strings)
    row = {s: i for i, s in enumerate(strings)}
    dim = encoded.shape[1] if encoded.ndim == 2 else 0
    features = np.zeros((len(texts), 2 * dim), dtype=np.float64)
    for i, t in enumerate(texts):
        if t.names:
            features[i, :dim] = encoded[[row[s] for s in t.names]].astype(np.float64).mean(0)
        if t.contexts:
            features[i, dim:] = encoded[[row[s] for s in t.contexts]].astype(np.float64).mean(0)
    return features


def _apply(linear: LinearMap, x: np.ndarray) -> np.ndarray:
    import torch

    return linear(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy().astype(np.float32)


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(((a * b).sum(1) / np.maximum(na, 1e-12)).mean())


def fit_inductive_map(features: np.ndarray, targets: np.ndarray, *, ridge: float, holdout: float,
                      seed: int) -> tuple[LinearMap, FitReport]:
    """The map fitted on every anchor (rows of features and targets), and its quality on a seeded held-out
    share of anchors when fitted on the rest."""
    import torch

    n = features.shape[0]
    held = round(holdout * n)
    cosine = r2 = baseline = None
    if held >= 1 and n - held >= 2:
        order = np.random.default_rng(seed).permutation(n)
        test, train = order[:held], order[held:]
        partial = fit_linear_map(torch.from_numpy(features[train]), torch.from_numpy(targets[train]), ridge=ridge)
        predicted = _apply(partial, features[test]).astype(np.float64)
        truth = targets[test].astype(np.float64)
        mean = targets[train].astype(np.float64).mean(0)
        cosine = _mean_cosine(predicted, truth)
        total = float(((truth - mean) ** 2).sum())
        r2 = 1.0 - float(((truth - predicted) ** 2).sum()) / max(total, 1e-12)
        baseline = _mean_cosine(np.broadcast_to(mean, truth.shape), truth)
    else:
        held = 0
    linear = fit_linear_map(torch.from_numpy(features), torch.from_numpy(targets.astype(np.float64)), ridge=ridge)
    return linear, FitReport(n, held, ridge, cosine, r2, baseline)


def predict(linear: LinearMap, features: np.ndarray) -> np.ndarray:
    """KG-space vectors (float32) for rows of text features."""
    return _apply(linear, features)
