"""Closed-form maps from the KG embedding space into a transformer's input-embedding space (E-BERT):
least squares with a bias (optionally ridge), or orthogonal Procrustes on centred anchors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class LinearMap:
    """y = x @ weight + bias, weight shaped (kg_dim, model_dim)."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


def fit_linear_map(x: torch.Tensor, y: torch.Tensor, *, orthogonal: bool = False, ridge: float = 0.0) -> LinearMap:
    """Fit y ~ x W + b over anchor pairs (rows of x and y).

    orthogonal: W has orthonormal rows (kg_dim <= model_dim), found by Procrustes on centred data and
    rescaled by the least-squares scalar; this keeps the KG geometry (angles) intact.
    """
    x, y = x.double(), y.double()
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} KG vectors but {y.shape[0]} target vectors")
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    if orthogonal:
        if x.shape[1] > y.shape[1]:
            raise ValueError(f"an orthogonal map needs kg_dim ({x.shape[1]}) <= model_dim ({y.shape[1]})")
        u, _, vh = torch.linalg.svd(xc.T @ yc, full_matrices=False)
        rotation = u @ vh
        scale = (xc @ rotation * yc).sum() / (xc * xc).sum().clamp_min(1e-12)
        weight = scale * rotation
    else:
        gram = xc.T @ xc + ridge * torch.eye(x.shape[1], dtype=x.dtype)
        weight = torch.linalg.lstsq(gram, xc.T @ yc).solution
    bias = y_mean - x_mean @ weight
    return LinearMap(weight.float(), bias.float())


def label_embeddings(labels: list[str], tokenizer: Any, input_embeddings: torch.Tensor) -> torch.Tensor:
    """Mean input embedding of each label's sub-word tokens (no special tokens): the E-BERT anchor."""
    encoded = tokenizer(labels, add_special_tokens=False)["input_ids"]
    rows = []
    for ids in encoded:
        ids = ids or [tokenizer.unk_token_id]
        rows.append(input_embeddings[torch.tensor(ids)].mean(0))
    return torch.stack(rows)
