"""The span-pair head shared by the inject stage's task classifier and the relation model (SpERT's design):
pooled subject and object spans, a pooled context, optional entity-label embeddings, one linear layer.

Many pairs can share one encoded sequence (`SpanPairs.rows`), so a sentence is encoded once for all its pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class SpanPairConfig:
    hidden_size: int
    n_labels: int
    pooling: Literal["max", "mean"] = "max"     # how a span's (or the context's) token states are pooled
    # "between": the tokens strictly between the two spans (a learned vector when there are none);
    # "cls": the sequence's first token, as the inject stage's task classifier has always used
    context: Literal["between", "cls"] = "between"
    n_entity_labels: int = 0                    # > 0: an embedding of each side's NER label joins the features
    entity_label_dim: int = 25
    dropout: float = 0.1

    @property
    def feature_size(self) -> int:
        return 3 * self.hidden_size + (2 * self.entity_label_dim if self.n_entity_labels else 0)


@dataclass
class SpanPairs:
    """P pairs over a batch of encoded sequences [B, T]: which sequence each pair is in, and 0/1 masks [P, T]
    of the subject's and the object's tokens (each a contiguous run); entity label indexes [P] when the head
    embeds them."""

    rows: torch.Tensor
    subject: torch.Tensor
    object: torch.Tensor
    subject_label: torch.Tensor | None = None
    object_label: torch.Tensor | None = None


class SpanPairHead(nn.Module):
    """features(hidden [B, T, H], pairs) -> [P, feature_size]; classify(features) -> logits [P, n_labels]."""

    def __init__(self, config: SpanPairConfig) -> None:
        super().__init__()
        self.config = config
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.feature_size, config.n_labels)
        # created after the classifier, and only when used: a "cls" head draws the same random numbers as
        # the inject stage's classifier always has, so its trained weights stay the same
        self.empty_context = (nn.Parameter(torch.zeros(config.hidden_size)) if config.context == "between"
                              else None)
        self.entity_labels = (nn.Embedding(config.n_entity_labels, config.entity_label_dim)
                              if config.n_entity_labels else None)

    def _pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """states [P, T, H], mask [P, T] -> [P, H]; rows with an empty mask give zeros."""
        if self.config.pooling == "mean":
            return (states * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
        filled = states.masked_fill(mask.unsqueeze(-1) == 0, float("-inf")).amax(1)
        return torch.where(mask.sum(1, keepdim=True) > 0, filled, torch.zeros_like(filled))

    def features(self, hidden: torch.Tensor, pairs: SpanPairs) -> torch.Tensor:
        states = hidden[pairs.rows]
        subject = self._pool(states, pairs.subject)
        obj = self._pool(states, pairs.object)
        if self.empty_context is None:
            context = states[:, 0]
        else:
            between = between_mask(pairs.subject, pairs.object)
            context = torch.where(between.sum(1, keepdim=True) > 0, self._pool(states, between),
                                  self.empty_context.expand_as(subject))
        parts = [context, subject, obj]
        if self.entity_labels is not None:
            if pairs.subject_label is None or pairs.object_label is None:
                raise ValueError("this span-pair head embeds entity labels: give subject_label and object_label")
            parts += [self.entity_labels(pairs.subject_label), self.entity_labels(pairs.object_label)]
        return torch.cat(parts, dim=-1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(features))

    def forward(self, hidden: torch.Tensor, pairs: SpanPairs) -> torch.Tensor:
        return self.classify(self.features(hidden, pairs))


def between_mask(subject: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
    """[P, T] masks of the tokens after the earlier span's end and before the later span's start (none when
    the spans touch or overlap)."""
    positions = torch.arange(subject.shape[1], device=subject.device).unsqueeze(0)

    def bounds(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inside = mask > 0
        first = torch.where(inside, positions, mask.shape[1]).amin(1, keepdim=True)
        last = torch.where(inside, positions, -1).amax(1, keepdim=True)
        return first, last + 1

    s_start, s_end = bounds(subject)
    o_start, o_end = bounds(obj)
    subject_first = s_start <= o_start
    left_end = torch.where(subject_first, s_end, o_end)
    right_start = torch.where(subject_first, o_start, s_start)
    return ((positions >= left_end) & (positions < right_start)).to(subject.dtype)
