"""Relation classification over marked entity pairs: the task that trains fusion modules and measures
what knowledge adds. One JSON line per example: {"text", "subject": [start, end], "object": [start, end],
"label"}, optionally "subject_entity" / "object_entity" (KG ids, when already linked) and "relation" (a KG
relation id the example is about, for tasks such as triple classification where the relation is an input).

The classifier is kgpipe.lm.span_pair's head: for encoders as it always was here, the [CLS] state and the mean of
the subject's and of the object's tokens, then a linear layer; for decoders, whose first token sees nothing after
it, the tokens between the two mentions stand for the context.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from kgpipe.errors import InputError, KgpipeError
from kgpipe.lm.alignment import require_fast, tokens_for_span
from kgpipe.lm.span_pair import SpanPairConfig, SpanPairHead, SpanPairs


@dataclass
class RelationExample:
    text: str
    subject: tuple[int, int]
    object: tuple[int, int]
    label: str
    subject_entity: str | None = None
    object_entity: str | None = None
    relation: str | None = None


def read_examples(path: Path) -> list[RelationExample]:
    """Task file in JSON lines; a bad line is an error naming the file and line."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            example = RelationExample(row["text"], tuple(row["subject"]), tuple(row["object"]), str(row["label"]),
                                      row.get("subject_entity"), row.get("object_entity"), row.get("relation"))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"not a task example ({type(exc).__name__}: {exc})", file=path, line=number,
                             hint='each line: {"text": ..., "subject": [start, end], "object": [start, end], '
                                  '"label": ...}') from None
        for side in (example.subject, example.object):
            if not (len(side) == 2 and 0 <= side[0] < side[1] <= len(example.text)):
                raise InputError(f"span {list(side)} is outside the text ({len(example.text)} characters)",
                                 file=path, line=number)
        examples.append(example)
    return examples


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    entity_rows: torch.Tensor
    subject_mask: torch.Tensor
    object_mask: torch.Tensor
    labels: torch.Tensor
    relation_rows: torch.Tensor | None = None   # [B], -1: none; only when some example names a relation


def encode_examples(tokenizer: Any, examples: Sequence[RelationExample], labels: Sequence[str],
                    entity_row: Callable[[str | None], int], *, max_length: int = 128,
                    relation_row: Callable[[str | None], int] | None = None) -> list[dict[str, Any]]:
    """Token ids, mention masks and entity rows (-1: none) per example, and its relation's row where
    relation_row is given; examples whose spans fall past max_length are truncated around the pair so both
    spans stay inside."""
    require_fast(tokenizer)
    label_index = {label: i for i, label in enumerate(labels)}
    encoded = []
    for ex in examples:
        text, shift = ex.text, 0
        lo, hi = min(ex.subject[0], ex.object[0]), max(ex.subject[1], ex.object[1])
        enc = tokenizer(text, return_offsets_mapping=True, truncation=False)
        if len(enc["input_ids"]) > max_length:  # keep a window of text around the pair
            width = max(hi - lo, 1) * 2 + 200
            shift = max(0, lo - (width - (hi - lo)) // 2)
            text = text[shift:shift + width]
            enc = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=max_length)
        subj = tokens_for_span(enc["offset_mapping"], ex.subject[0] - shift, ex.subject[1] - shift)
        obj = tokens_for_span(enc["offset_mapping"], ex.object[0] - shift, ex.object[1] - shift)
        if not subj or not obj:
            continue  # a span of whitespace, or cut by truncation: nothing to pool
        rows = [-1] * len(enc["input_ids"])
        for tokens, entity in ((subj, ex.subject_entity), (obj, ex.object_entity)):
            row = entity_row(entity)
            for t in tokens:
                rows[t] = row
        encoded.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                        "entity_rows": rows, "subject": subj, "object": obj,
                        "label": label_index.get(ex.label, -100)})
        if relation_row is not None:
            encoded[-1]["relation_row"] = relation_row(ex.relation)
    return encoded


def collate(items: Sequence[dict[str, Any]], pad_id: int = 0) -> Batch:
    width = max(len(i["input_ids"]) for i in items)

    def pad(key: str, value: int) -> torch.Tensor:
        return torch.tensor([i[key] + [value] * (width - len(i[key])) for i in items])

    def mask(key: str) -> torch.Tensor:
        out = torch.zeros(len(items), width)
        for row, item in enumerate(items):
            out[row, item[key]] = 1.0
        return out

    relations = [i.get("relation_row", -1) for i in items]
    return Batch(pad("input_ids", pad_id), pad("attention_mask", 0), pad("entity_rows", -1),
                 mask("subject"), mask("object"), torch.tensor([i["label"] for i in items]),
                 torch.tensor(relations) if any(r >= 0 for r in relations) else None)


@runtime_checkable
class Resumable(Protocol):
    """A knowledge model whose frozen layers below `resume_layer` do not depend on knowledge: their states are
    computed once (`states_below`) and the model resumes from them (`forward_from`). KnowledgeEnhancedEncoder
    (fusion) and KnowledgeDecoder (prefix) are; resume_layer None says this one cannot (align, or a trained
    base)."""

    @property
    def resume_layer(self) -> int | None: ...

    def states_below(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor: ...

    def forward_from(self, states: torch.Tensor, attention_mask: torch.Tensor | None,
                     entity_rows: torch.Tensor, *args: Any) -> torch.Tensor: ...


class SpanPairClassifier(nn.Module):
    """[context; mean(subject tokens); mean(object tokens)] -> dropout -> linear (the shared span-pair head), over
    any encoder whose forward takes (input_ids, attention_mask, entity_rows=...) or (input_ids, attention_mask).
    context "cls" (encoders): the first token's state; "between" (decoders): the tokens between the mentions."""

    def __init__(self, encoder: nn.Module, hidden_size: int, n_labels: int, *, knowledge: bool,
                 dropout: float = 0.1, context: Literal["cls", "between"] = "cls") -> None:
        super().__init__()
        self.encoder = encoder
        self.knowledge = knowledge
        self.head = SpanPairHead(SpanPairConfig(hidden_size, n_labels, pooling="mean", context=context,
                                                dropout=dropout))

    @property
    def encoder_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.encoder.parameters())

    def train(self, mode: bool = True) -> SpanPairClassifier:
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()  # a frozen feature extractor runs without dropout
        return self

    def features(self, batch: Batch, states: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features; `states` (from `lower_states`) skips the frozen layers below the knowledge."""
        relation = [batch.relation_rows] if self.knowledge and batch.relation_rows is not None else []
        if states is not None:
            rows = batch.entity_rows if self.knowledge else torch.full_like(batch.entity_rows, -1)
            hidden = _resumable(self.encoder).forward_from(states, batch.attention_mask, rows, *relation)
        else:
            kwargs = {"entity_rows": batch.entity_rows} if self.knowledge else {}
            if relation:
                kwargs["relation_rows"] = relation[0]
            hidden = self.encoder(batch.input_ids, batch.attention_mask, **kwargs).last_hidden_state
        pairs = SpanPairs(torch.arange(hidden.shape[0]), batch.subject_mask, batch.object_mask)
        return self.head.features(hidden, pairs)

    def forward(self, batch: Batch, states: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.classify(self.features(batch, states))


def _resumable(encoder: nn.Module) -> Resumable:
    """The encoder as one that can resume from cached lower states."""
    if not isinstance(encoder, Resumable) or encoder.resume_layer is None:
        raise KgpipeError(f"cached lower states were given, but a {type(encoder).__name__} cannot resume from them",
                          hint="pass states only for a fusion KnowledgeEnhancedEncoder or a prefix KnowledgeDecoder "
                          "with a frozen base")
    return encoder


def _by_length(items: Sequence[dict[str, Any]], batch_size: int) -> list[list[int]]:
    """Batches of item indices with similar lengths: far less padding than input order."""
    order = sorted(range(len(items)), key=lambda i: len(items[i]["input_ids"]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _pad_states(states: Sequence[torch.Tensor]) -> torch.Tensor:
    return nn.utils.rnn.pad_sequence(list(states), batch_first=True)


@torch.no_grad()
def lower_states(model: SpanPairClassifier, items: Sequence[dict[str, Any]], batch_size: int = 64
                 ) -> list[torch.Tensor] | None:
    """Per example, the frozen base's hidden states below the first knowledge layer (unpadded), or None
    when the encoder cannot resume from them (not fusion or prefix, or the base is trained). They do not depend
    on the knowledge table, so one list serves every knowledge model over the same base and layers."""
    encoder = model.encoder
    if not isinstance(encoder, Resumable) or encoder.resume_layer is None:
        return None
    model.eval()
    return states_below_items(encoder, items, batch_size)


@torch.no_grad()
def states_below_items(encoder: Resumable, items: Sequence[dict[str, Any]], batch_size: int = 64
                       ) -> list[torch.Tensor]:
    """`states_below` of each item (its input_ids and attention_mask), unpadded, batched by length."""
    out: list[torch.Tensor] = [torch.empty(0)] * len(items)
    for chosen in _by_length(items, batch_size):
        width = max(len(items[i]["input_ids"]) for i in chosen)
        ids = torch.tensor([items[i]["input_ids"] + [0] * (width - len(items[i]["input_ids"])) for i in chosen])
        mask = torch.tensor([items[i]["attention_mask"] + [0] * (width - len(items[i]["attention_mask"]))
                             for i in chosen])
        states = encoder.states_below(ids, mask)
        for row, index in enumerate(chosen):
            out[index] = states[row, :len(items[index]["input_ids"])].clone()
    return out


@torch.no_grad()
def _cached_features(model: SpanPairClassifier, items: Sequence[dict[str, Any]], batch_size: int = 64,
                     states: list[torch.Tensor] | None = None) -> torch.Tensor:
    """A frozen encoder gives every example the same features in every epoch: compute them once (from the
    cached lower states when given)."""
    model.eval()
    features: list[torch.Tensor] = [torch.empty(0)] * len(items)
    for chosen in _by_length(items, batch_size):
        padded = _pad_states([states[i] for i in chosen]) if states is not None else None
        for index, row in zip(chosen, model.features(collate([items[i] for i in chosen]), padded), strict=True):
            features[index] = row
    return torch.stack(features)


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 42


def train_classifier(model: SpanPairClassifier, items: Sequence[dict[str, Any]], config: TrainConfig,
                     progress: Callable[[int, int], None] | None = None,
                     states: list[torch.Tensor] | None = None) -> list[float]:
    """AdamW over the trainable parameters; returns the mean loss per epoch. A frozen encoder runs once per
    example; a frozen base under fusion runs once below the knowledge layers (`states`, computed here
    when not given)."""
    torch.manual_seed(config.seed)
    if states is None and not model.encoder_frozen:
        states = lower_states(model, items)
    cached = _cached_features(model, items, states=states) if model.encoder_frozen else None
    labels = torch.tensor([item["label"] for item in items])

    def batch_loss(chosen: list[int]) -> torch.Tensor:
        if cached is not None:  # the same computation as model(batch), minus the repeated encoder passes
            logits = model.head.classify(cached[chosen])
        else:
            logits = model(collate([items[i] for i in chosen]),
                           _pad_states([states[i] for i in chosen]) if states is not None else None)
        return nn.functional.cross_entropy(logits, labels[chosen], ignore_index=-100)

    model.train()
    losses = optimise(model, len(items), config, batch_loss, progress)
    model.eval()
    return losses


def optimise(model: nn.Module, n_items: int, config: TrainConfig, batch_loss: Callable[[list[int]], torch.Tensor],
             progress: Callable[[int, int], None] | None = None) -> list[float]:
    """AdamW over the model's trainable parameters for config.epochs; each epoch visits the items in a new
    seeded order, one step per batch of item indices. Returns the mean loss per epoch."""
    rng = random.Random(config.seed)
    order = list(range(n_items))
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    steps = (n_items + config.batch_size - 1) // config.batch_size
    losses = []
    for epoch in range(config.epochs):
        rng.shuffle(order)
        total = 0.0
        for step in range(steps):
            loss = batch_loss(order[step * config.batch_size:(step + 1) * config.batch_size])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
            if progress is not None:
                progress(epoch * steps + step + 1, config.epochs * steps)
        losses.append(total / max(steps, 1))
    return losses


@torch.no_grad()
def predict(model: SpanPairClassifier, items: Sequence[dict[str, Any]], batch_size: int = 64,
            states: list[torch.Tensor] | None = None) -> list[int]:
    """Predicted label index per item, in item order; `states` as for train_classifier."""
    model.eval()
    out = [0] * len(items)
    for chosen in _by_length(items, batch_size):
        batch = collate([items[i] for i in chosen])
        padded = _pad_states([states[i] for i in chosen]) if states is not None else None
        for index, label in zip(chosen, model(batch, padded).argmax(-1).tolist(), strict=True):
            out[index] = label
    return out


def accuracy_macro_f1(gold: Sequence[int], predicted: Sequence[int]) -> tuple[float, float]:
    """Accuracy, and macro-F1 over the labels that occur in gold."""
    if not gold:
        return 0.0, 0.0
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    f1s = []
    for label in set(gold):
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, predicted, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return accuracy, sum(f1s) / len(f1s)
