"""The shared span-pair head: pooling, the context between the spans, entity-label embeddings, and the
configuration that reproduces the inject stage's classifier."""

from __future__ import annotations

import pytest
import torch

from kgpipe.lm.span_pair import SpanPairConfig, SpanPairHead, SpanPairs, between_mask


def masks(length: int, *runs: tuple[int, int]) -> torch.Tensor:
    out = torch.zeros(len(runs), length)
    for row, (start, end) in enumerate(runs):
        out[row, start:end] = 1.0
    return out


def test_between_is_the_gap_in_either_order_and_empty_when_spans_touch() -> None:
    subject = masks(10, (1, 3), (6, 8), (2, 4), (2, 5))
    obj = masks(10, (5, 7), (2, 3), (4, 6), (3, 6))      # after; before; adjacent; overlapping
    expected = masks(10, (3, 5), (3, 6), (0, 0), (0, 0))
    assert torch.equal(between_mask(subject, obj), expected)


def test_max_pooling_and_the_between_context_read_the_right_tokens() -> None:
    hidden = torch.arange(2 * 6 * 2, dtype=torch.float32).reshape(2, 6, 2) - 100.0   # all negative
    head = SpanPairHead(SpanPairConfig(hidden_size=2, n_labels=3))
    pairs = SpanPairs(torch.tensor([1, 0]), masks(6, (1, 2), (0, 2)), masks(6, (4, 6), (2, 3)))
    features = head.features(hidden, pairs)
    # pair 0 in sequence 1: context = max of tokens 2..3, subject token 1, object max of 4..5
    assert features[0].tolist() == [*hidden[1, 3].tolist(), *hidden[1, 1].tolist(), *hidden[1, 5].tolist()]
    # pair 1 in sequence 0: spans adjacent, so the context is the learned empty vector (zeros at start)
    assert features[1, :2].tolist() == [0.0, 0.0]
    with torch.no_grad():
        head.empty_context.fill_(7.0)
    assert head.features(hidden, pairs)[1, :2].tolist() == [7.0, 7.0]
    assert head(hidden, pairs).shape == (2, 3)


def test_mean_pooling_with_cls_context_is_the_inject_classifiers_features() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 4)
    subject, obj = masks(5, (1, 3), (2, 3), (1, 2)), masks(5, (3, 5), (4, 5), (2, 4))
    head = SpanPairHead(SpanPairConfig(hidden_size=4, n_labels=2, pooling="mean", context="cls"))
    assert head.empty_context is None and head.entity_labels is None

    def mean(mask: torch.Tensor) -> torch.Tensor:
        return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)

    expected = torch.cat([hidden[:, 0], mean(subject), mean(obj)], dim=-1)
    assert torch.allclose(head.features(hidden, SpanPairs(torch.arange(3), subject, obj)), expected)


def test_entity_labels_are_embedded_and_required() -> None:
    head = SpanPairHead(SpanPairConfig(hidden_size=2, n_labels=2, n_entity_labels=3, entity_label_dim=4))
    hidden = torch.randn(1, 6, 2)
    pairs = SpanPairs(torch.tensor([0, 0]), masks(6, (1, 2), (1, 2)), masks(6, (4, 5), (4, 5)),
                      torch.tensor([1, 2]), torch.tensor([0, 0]))
    features = head.features(hidden, pairs)
    assert features.shape == (2, 3 * 2 + 2 * 4) == (2, head.config.feature_size)
    assert torch.equal(features[0, 6:10], head.entity_labels.weight[1].detach())
    assert torch.equal(features[0, 10:14], head.entity_labels.weight[0].detach())
    assert not torch.equal(features[0], features[1])     # same spans, different subject label
    with pytest.raises(ValueError, match="subject_label"):
        head.features(hidden, SpanPairs(pairs.rows, pairs.subject, pairs.object))
