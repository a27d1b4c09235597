"""A relation classifier over ordered pairs of entity spans: a Hugging Face encoder runs once per sentence
(or per window of a long one), then the shared span-pair head scores every pair from the token states.

A model folder holds relation_model.json (encoder architecture, head settings, relation and NER label maps,
the base model's package or folder name), relation_model.safetensors and the tokenizer; loading it needs
neither the hub nor the base model nor any training code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import torch
from torch import nn

from kgpipe.lm.alignment import encode_with_spans, require_fast, whole_span_tokens
from kgpipe.lm.finetune import (
    ModelFolder,
    encoder_architecture,
    encoder_limit,
    load_base,
    save_tokenizer,
)
from kgpipe.lm.span_pair import SpanPairConfig, SpanPairHead, SpanPairs

if TYPE_CHECKING:
    from transformers import PreTrainedModel

NO_RELATION = "<none>"          # relation label 0
UNKNOWN_ENTITY = "<unknown>"    # NER label 0: a label the model was not trained on
CONFIG_FILE = "relation_model.json"
WEIGHTS_FILE = "relation_model.safetensors"
TOKENIZER_DIR = "tokenizer"
FORMAT = "kgpipe-relation-model/1"


@dataclass(frozen=True)
class EntitySpan:
    start: int                  # character offsets into the text, end exclusive
    end: int
    label: str | None = None    # NER label; one the model does not know counts as UNKNOWN_ENTITY


@dataclass(frozen=True)
class TextWithEntities:
    text: str
    entities: tuple[EntitySpan, ...]


class ScoredPair(NamedTuple):
    subject: int                # entity indexes in the sentence
    object: int
    label: str
    probability: float


@dataclass
class RelationModelConfig:
    base_model: str                       # the package or folder name training started from (never a path)
    relation_labels: list[str]            # index 0 is NO_RELATION
    entity_labels: list[str]              # index 0 is UNKNOWN_ENTITY
    encoder: dict[str, Any]               # the encoder's Hugging Face config (architecture only)
    max_length: int = 512                 # tokens per window; longer sentences are windowed
    stride: int = 64                      # overlap of consecutive windows, in tokens
    pooling: Literal["max", "mean"] = "max"
    entity_label_dim: int = 25            # 0: no NER-label embeddings
    dropout: float = 0.1
    training: dict[str, Any] = field(default_factory=dict)   # how it was trained (summary, for people)
    format: str = FORMAT

    def head_config(self, hidden_size: int) -> SpanPairConfig:
        return SpanPairConfig(hidden_size, len(self.relation_labels), pooling=self.pooling, context="between",
                              n_entity_labels=len(self.entity_labels) if self.entity_label_dim else 0,
                              entity_label_dim=self.entity_label_dim or 25, dropout=self.dropout)


@dataclass
class EncodedUnit:
    """One encoder input (a sentence, or one window of a long one) and the pairs scored from it."""

    sentence: int                         # index of the sentence in the list encoded
    input_ids: list[int]
    pairs: list[tuple[int, int]] = field(default_factory=list)      # (subject, object) entity indexes
    subject_tokens: list[list[int]] = field(default_factory=list)
    object_tokens: list[list[int]] = field(default_factory=list)
    subject_labels: list[int] = field(default_factory=list)
    object_labels: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)                # relation label index (training)


@dataclass
class RelationBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    pairs: SpanPairs
    targets: torch.Tensor


@dataclass
class PairScores:
    """Per sentence, the scored pairs and their probabilities over the relation labels; `skipped` counts the
    pairs no window held whole (or whose spans cover no token)."""

    pairs: list[list[tuple[int, int]]]
    probabilities: list[torch.Tensor]     # [pairs of the sentence, labels]
    skipped: int = 0


class RelationModel(nn.Module):
    """Encoder + span-pair head; `score` and `predict` run one encoder pass per sentence window."""

    def __init__(self, encoder: PreTrainedModel, tokenizer: Any, config: RelationModelConfig) -> None:
        super().__init__()
        require_fast(tokenizer)
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.config = config
        self.head = SpanPairHead(config.head_config(encoder.config.hidden_size))
        self._relation_index = {label: i for i, label in enumerate(config.relation_labels)}
        self._entity_index = {label: i for i, label in enumerate(config.entity_labels)}

    @classmethod
    def from_base(cls, base_model: str, relation_labels: Sequence[str], entity_labels: Sequence[str], *,
                  max_length: int | None = None, **head: Any) -> RelationModel:
        """A new model over a base encoder; labels get NO_RELATION / UNKNOWN_ENTITY at index 0."""
        encoder, tokenizer, recorded = load_base(base_model)
        limit = encoder_limit(encoder, tokenizer)
        config = RelationModelConfig(recorded, [NO_RELATION, *relation_labels], [UNKNOWN_ENTITY, *entity_labels],
                                     encoder_architecture(encoder), max_length=min(max_length or limit, limit),
                                     **head)
        config.stride = min(config.stride, config.max_length // 4)
        return cls(encoder, tokenizer, config)

    # --- encoding ---------------------------------------------------------------------------------------

    def relation_index(self, label: str) -> int:
        return self._relation_index[label]

    def entity_index(self, label: str | None) -> int:
        return self._entity_index.get(label or "", 0)

    def encode(self, sentences: Sequence[TextWithEntities],
               pairs: Sequence[Sequence[tuple[int, int]]] | None = None,
               targets: Sequence[Sequence[int]] | None = None) -> tuple[list[EncodedUnit], int]:
        """Encoder inputs for the given pairs (default: every ordered pair of distinct entities), each pair
        in the first window that holds both its spans whole; returns (units, pairs skipped)."""
        units: list[EncodedUnit] = []
        skipped = 0
        for number, sentence in enumerate(sentences):
            wanted = pairs[number] if pairs is not None else all_pairs(len(sentence.entities))
            if not wanted:
                continue
            spans = [(e.start, e.end) for e in sentence.entities]
            windows = encode_with_spans(self.tokenizer, sentence.text, spans, max_length=self.config.max_length,
                                        stride=self.config.stride)
            by_window = [EncodedUnit(number, w.input_ids) for w in windows]
            for k, (s, o) in enumerate(wanted):
                for window, unit in zip(windows, by_window, strict=True):
                    s_tokens = window.span_tokens.get(s) or whole_span_tokens(window, *spans[s])
                    o_tokens = window.span_tokens.get(o) or whole_span_tokens(window, *spans[o])
                    if s_tokens and o_tokens:
                        unit.pairs.append((s, o))
                        unit.subject_tokens.append(s_tokens)
                        unit.object_tokens.append(o_tokens)
                        unit.subject_labels.append(self.entity_index(sentence.entities[s].label))
                        unit.object_labels.append(self.entity_index(sentence.entities[o].label))
                        unit.targets.append(targets[number][k] if targets is not None else -100)
                        break
                else:
                    skipped += 1
            units.extend(u for u in by_window if u.pairs)
        return units, skipped

    def collate(self, units: Sequence[EncodedUnit]) -> RelationBatch:
        width = max(len(u.input_ids) for u in units)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.tensor([u.input_ids + [pad] * (width - len(u.input_ids)) for u in units])
        attention = torch.tensor([[1] * len(u.input_ids) + [0] * (width - len(u.input_ids)) for u in units])
        n_pairs = sum(len(u.pairs) for u in units)
        subject, obj = torch.zeros(n_pairs, width), torch.zeros(n_pairs, width)
        rows: list[int] = []
        p = 0
        for row, unit in enumerate(units):
            for s_tokens, o_tokens in zip(unit.subject_tokens, unit.object_tokens, strict=True):
                subject[p, s_tokens] = 1.0
                obj[p, o_tokens] = 1.0
                rows.append(row)
                p += 1
        pairs = SpanPairs(torch.tensor(rows, dtype=torch.long), subject, obj,
                          torch.tensor([x for u in units for x in u.subject_labels], dtype=torch.long),
                          torch.tensor([x for u in units for x in u.object_labels], dtype=torch.long))
        return RelationBatch(input_ids, attention, pairs, torch.tensor([t for u in units for t in u.targets]))

    def forward(self, batch: RelationBatch) -> torch.Tensor:
        """Logits [pairs, relation labels]: one encoder pass for the batch's sequences."""
        hidden = self.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        return self.head(hidden, batch.pairs)

    # --- inference --------------------------------------------------------------------------------------

    @torch.no_grad()
    def score(self, sentences: Sequence[TextWithEntities], *, batch_size: int = 16,
              pairs: Sequence[Sequence[tuple[int, int]]] | None = None) -> PairScores:
        """Probabilities over the relation labels for every ordered pair (or the pairs given), batched:
        `batch_size` encoder inputs per forward pass."""
        was_training = self.training
        self.eval()
        units, skipped = self.encode(sentences, pairs)
        n_labels = len(self.config.relation_labels)
        found: list[list[tuple[int, int]]] = [[] for _ in sentences]
        probs: list[list[torch.Tensor]] = [[] for _ in sentences]
        order = sorted(range(len(units)), key=lambda i: len(units[i].input_ids))  # less padding
        for start in range(0, len(order), batch_size):
            chosen = [units[i] for i in order[start:start + batch_size]]
            probabilities = torch.softmax(self(self.collate(chosen)), dim=-1)
            p = 0
            for unit in chosen:
                for pair in unit.pairs:
                    found[unit.sentence].append(pair)
                    probs[unit.sentence].append(probabilities[p])
                    p += 1
        self.train(was_training)
        tables = []
        for number in range(len(sentences)):  # pairs in (subject, object) order, whatever the windows
            ranked = sorted(range(len(found[number])), key=lambda k: found[number][k])
            found[number] = [found[number][k] for k in ranked]
            tables.append(torch.stack([probs[number][k] for k in ranked]) if ranked
                          else torch.zeros(0, n_labels))
        return PairScores(found, tables, skipped)

    def predict(self, sentences: Sequence[TextWithEntities], *, threshold: float | None = None,
                batch_size: int = 16) -> list[list[ScoredPair]]:
        """Per sentence, the related pairs: (subject, object, relation, probability) with the most probable
        relation label; a pair counts as related when that label beats "no relation" (threshold None) or
        when its probability is at least `threshold`."""
        scores = self.score(sentences, batch_size=batch_size)
        out: list[list[ScoredPair]] = []
        for pairs, table in zip(scores.pairs, scores.probabilities, strict=True):
            found = []
            for (s, o), row in zip(pairs, table, strict=True):
                best = int(row[1:].argmax()) + 1
                probability = float(row[best])
                if (probability >= threshold) if threshold is not None else probability > float(row[0]):
                    found.append(ScoredPair(s, o, self.config.relation_labels[best], probability))
            out.append(found)
        return out

    # --- persistence ------------------------------------------------------------------------------------

    def save(self, folder: Path) -> Path:
        """Tokenizer (a folder swapped in whole), weights and config, each written atomically; the config last,
        so that it always describes weights at least as new as itself."""
        from kgpipe.tensorfile import write_torch

        folder.mkdir(parents=True, exist_ok=True)
        save_tokenizer(self.tokenizer, folder / TOKENIZER_DIR)
        write_torch(folder / WEIGHTS_FILE, dict(self.state_dict()))
        self.save_config(folder)
        return folder

    def save_config(self, folder: Path) -> None:
        from kgpipe.atomic import atomic_write_text

        atomic_write_text(folder / CONFIG_FILE, json.dumps(asdict(self.config), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> RelationModel:
        """The model saved in `folder` (see MODEL_FOLDER), without the hub, the base model or training code."""
        return MODEL_FOLDER.load(Path(folder), RelationModelConfig, cls)


def all_pairs(n: int) -> list[tuple[int, int]]:
    return [(s, o) for s in range(n) for o in range(n) if s != o]


MODEL_FOLDER = ModelFolder(CONFIG_FILE, WEIGHTS_FILE, FORMAT, "relation model", "kgpipe rel train", TOKENIZER_DIR)
