"""Clustering quality against gold clusters: pairwise precision/recall/F1, B-cubed and purity, computed from
the contingency table (never from the list of pairs, so a million records cost a sort).

>>> pairwise_prf([0, 0, 1, 1], [0, 0, 0, 1])
{'precision': 0.5, 'recall': 0.3333, 'f1': 0.4, 'predicted_pairs': 2, 'gold_pairs': 3, 'true_pairs': 1}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _codes(labels: Sequence[Any]) -> np.ndarray:
    return np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)[1].astype(np.int64)


def _contingency(pred: Sequence[Any], gold: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell sizes n_ij, and for each record the codes of its cell's predicted and gold cluster."""
    p, g = _codes(pred), _codes(gold)
    cell = p * (g.max(initial=0) + 1) + g
    _, cell_of, cell_size = np.unique(cell, return_inverse=True, return_counts=True)
    return cell_size, cell_of, np.stack([p, g])


def _pairs(sizes: np.ndarray) -> int:
    return int((sizes.astype(np.int64) * (sizes.astype(np.int64) - 1) // 2).sum())


def pairwise_prf(pred: Sequence[Any], gold: Sequence[Any]) -> dict[str, float | int]:
    """Precision, recall and F1 over record pairs put in one cluster (gold: its transitive closure)."""
    cell_size, _, (p, g) = _contingency(pred, gold)
    true = _pairs(cell_size)
    predicted = _pairs(np.bincount(p))
    gold_pairs = _pairs(np.bincount(g))
    precision = true / predicted if predicted else 1.0
    recall = true / gold_pairs if gold_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "predicted_pairs": predicted, "gold_pairs": gold_pairs, "true_pairs": true}


def bcubed(pred: Sequence[Any], gold: Sequence[Any]) -> dict[str, float]:
    """B-cubed precision, recall and F1 (Bagga & Baldwin): per record, the share of its predicted cluster
    that is in its gold cluster, and the reverse, averaged over records."""
    cell_size, cell_of, (p, g) = _contingency(pred, gold)
    shared = cell_size[cell_of].astype(np.float64)
    precision = float(np.mean(shared / np.bincount(p)[p]))
    recall = float(np.mean(shared / np.bincount(g)[g]))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def purity(pred: Sequence[Any], gold: Sequence[Any]) -> float:
    """Share of records whose predicted cluster's majority gold label is their own."""
    cell_size, cell_of, (p, _) = _contingency(pred, gold)
    best = np.zeros(p.max(initial=0) + 1, dtype=np.int64)
    first = np.unique(cell_of, return_index=True)[1]
    np.maximum.at(best, p[first], cell_size)
    return round(float(best.sum() / len(p)), 4) if len(p) else 1.0
