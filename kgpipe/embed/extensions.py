"""Components kgpipe adds to PyKEEN's resolvers, so that params and saved models name them like PyKEEN's own.

`onevsall` (loss): 1-vs-all cross-entropy per training triple for the LCWA loop. PyKEEN's LCWA loop trains
on one row per head and relation, labelled with all its true tails, and its `crossentropy` turns those labels
into one target distribution: a row with k tails weighs as much as a row with one. LibKGE's and kbc's 1vsAll
(with which the published CoDEx and kbc ComplEx results were trained) score each training triple on its
own: a softmax over all entities for its head and relation, the cross-entropy of its own tail. Summing that
over a row's tails gives the same loss from PyKEEN's rows:

    loss(row) = sum over the row's true tails t of -log softmax(scores)[t]

(averaged over the rows of a batch), so a head and relation with k tails weighs k triples. With label
smoothing e, each triple's one-hot target becomes (1 - e) one-hot + e uniform, as in torch's cross_entropy.
With sLCWA it is PyKEEN's cross-entropy unchanged.

`small_normal_` (initializer): N(0, 0.001^2), the initial scale of the kbc ComplEx-N3 code. PyKEEN's ComplEx
takes an initializer by name but no initializer kwargs, so the scale needs a name of its own.
"""

from __future__ import annotations

import torch
from pykeen.losses import CrossEntropyLoss, loss_resolver, weighted_reduction
from pykeen.nn.init import initializer_resolver
from torch.nn import functional


class OneVsAllLoss(CrossEntropyLoss):
    """Cross-entropy per training triple over all entities (1-vs-all), for PyKEEN's LCWA loop."""

    def process_lcwa_scores(self, predictions, labels, label_smoothing=None, num_entities=None, weights=None):
        log_p = functional.log_softmax(predictions, dim=-1)
        per_row = -(labels * log_p).sum(dim=-1)
        if label_smoothing:
            tails = labels.sum(dim=-1)
            per_row = (1.0 - label_smoothing) * per_row - label_smoothing * tails * log_p.mean(dim=-1)
        if weights is not None:  # as PyKEEN's cross-entropy: one weight per row
            return weighted_reduction(per_row, weight=weights.sum(dim=-1), reduction=self.reduction)
        return per_row.mean() if self.reduction == "mean" else per_row.sum()


def small_normal_(tensor: torch.Tensor, std: float = 1e-3) -> torch.Tensor:
    """Fill `tensor` from N(0, std^2) (default 0.001, as kbc's ComplEx; a complex tensor splits the variance
    between its real and imaginary parts, as torch.nn.init.normal_ does)."""
    return torch.nn.init.normal_(tensor, std=std)


def register() -> None:
    """Make kgpipe's components known to PyKEEN's resolvers (once)."""
    if loss_resolver.normalize_cls(OneVsAllLoss) not in loss_resolver.lookup_dict:
        loss_resolver.register(OneVsAllLoss)
    if initializer_resolver.normalize("small_normal_") not in initializer_resolver.lookup_dict:
        initializer_resolver.register(small_normal_)
