"""The extract stage's model-based relations: a trained relation model (`kgpipe rel train`) scores ordered pairs
of the mentions of each sentence, the stage's labels mapped onto the model's NER labels.

Reading a model folder's label maps needs no torch (the stage checks them before anything runs); scoring loads
the model through kgpipe.lm.relation_model, once per worker process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kgpipe.vocab import ancestors

if TYPE_CHECKING:
    from kgpipe.lm.relation_model import PairScores, RelationModel, TextWithEntities

UNKNOWN_ENTITY = "<unknown>"     # the model's NER label 0 (kgpipe.lm.relation_model.UNKNOWN_ENTITY)
MODEL_CONFIG = "relation_model.json"
MODEL_FORMAT = "kgpipe-relation-model/1"
DECIMALS = 4                     # probabilities are rounded so that float noise never changes an artifact's bytes
POLICIES = ("patterns", "model", "union", "model_then_patterns")


class NotARelationModel(ValueError):
    """The folder holds no relation model kgpipe can read (the message says why)."""


@dataclass(frozen=True)
class ModelLabels:
    """What a relation model folder says about its labels (from relation_model.json alone)."""

    relations: tuple[str, ...]   # without "no relation"
    entities: tuple[str, ...]    # without UNKNOWN_ENTITY
    uses_entity_labels: bool     # the model embeds NER labels (entity_label_dim > 0)


def read_model_labels(folder: Path) -> ModelLabels:
    """The label maps of a relation model folder; NotARelationModel when it is not one."""
    config = folder / MODEL_CONFIG
    if not folder.is_dir():
        raise NotARelationModel(f"{folder} is not a folder")
    if not config.is_file():
        raise NotARelationModel(f"no {MODEL_CONFIG} in {folder}")
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("format") != MODEL_FORMAT:
            raise ValueError(f"format {raw.get('format') if isinstance(raw, dict) else None!r}, "
                             f"expected {MODEL_FORMAT!r}")
        relations, entities = list(raw["relation_labels"]), list(raw["entity_labels"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotARelationModel(f"{config} cannot be read as a relation model ({type(exc).__name__}: {exc})") \
            from None
    return ModelLabels(tuple(relations[1:]), tuple(entities[1:]), bool(raw.get("entity_label_dim", 25)))


def unreachable_labels(labels: ModelLabels, label_map: Mapping[str, str],
                       relation_label_map: Mapping[str, str]) -> list[str]:
    """The model's NER labels no mention can be given: neither a label the stage keeps (label_map) nor the
    target of relation_label_map."""
    return [label for label in labels.entities if label not in label_map and label not in relation_label_map.values()]


class LabelMapper:
    """A mention's (label, kg_type) -> the model's NER label: relation_label_map first, then the label itself when
    the model knows it, then the nearest KG type (kg_type or a parent) that label_map gives one of the model's
    labels; else UNKNOWN_ENTITY."""

    def __init__(self, model_labels: Sequence[str], label_map: Mapping[str, str],
                 relation_label_map: Mapping[str, str], type_parents: Mapping[str, str]) -> None:
        self.known = frozenset(model_labels)
        self.explicit = dict(relation_label_map)
        self.parents = type_parents
        self.by_type: dict[str, str] = {}
        for label in model_labels:  # the first of the model's labels wins a shared type: stable, documented
            kg_type = label_map.get(label)
            if kg_type is not None:
                self.by_type.setdefault(kg_type, label)
        self._cache: dict[tuple[str, str | None], str] = {}

    def __call__(self, label: str, kg_type: str | None) -> str:
        key = (label, kg_type)
        found = self._cache.get(key)
        if found is None:
            found = self._resolve(label, kg_type)
            self._cache[key] = found
        return found

    def _resolve(self, label: str, kg_type: str | None) -> str:
        if label in self.explicit:
            return self.explicit[label]
        if label in self.known:
            return label
        for t in ancestors(kg_type, self.parents) if kg_type is not None else ():
            if t in self.by_type:
                return self.by_type[t]
        return UNKNOWN_ENTITY


@dataclass(frozen=True)
class SentenceMentions:
    """One sentence's text and its mentions' character spans (relative to the text) and model labels."""

    text: str
    spans: tuple[tuple[int, int], ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class FoundRelation:
    subject: int                 # mention indexes within the sentence
    object: int
    relation: str
    probability: float           # rounded to DECIMALS


@dataclass
class PairCounts:
    scored: int = 0              # ordered pairs the model scored
    dropped: int = 0             # beyond max_pairs_per_sentence
    skipped: int = 0             # no encoder window held both spans whole
    unknown_labels: int = 0      # mentions given to the model as UNKNOWN_ENTITY


def nearest_pairs(spans: Sequence[tuple[int, int]], limit: int) -> tuple[list[tuple[int, int]], int]:
    """Every ordered pair of distinct mentions, or, beyond `limit`, the `limit` pairs whose mentions lie closest
    (characters between them; ties by position): deterministic, and the pairs most likely related. Returns the
    pairs in (subject, object) order and how many were dropped."""
    pairs = [(s, o) for s in range(len(spans)) for o in range(len(spans)) if s != o]
    if len(pairs) <= limit:
        return pairs, 0

    def gap(pair: tuple[int, int]) -> tuple[int, int, int]:
        (a0, a1), (b0, b1) = spans[pair[0]], spans[pair[1]]
        return max(a0, b0) - min(a1, b1), pair[0], pair[1]

    kept = sorted(sorted(pairs, key=gap)[:limit])
    return kept, len(pairs) - limit


@dataclass
class ModelRelations:
    """A loaded relation model with the stage's settings; `find` scores a piece's sentences in one call."""

    model: RelationModel
    name: str                    # the folder's name, for pattern_id "model:<name>"
    threshold: float = 0.5
    max_pairs: int = 64
    batch_size: int = 16

    @property
    def pattern_id(self) -> str:
        return f"model:{self.name}"

    def find(self, sentences: Sequence[SentenceMentions]) -> tuple[list[list[FoundRelation]], PairCounts]:
        """Per sentence, the pairs whose most probable relation (other than "no relation") has at least the
        threshold's probability, and the counts. Each sentence (or window of a long one) goes through the
        encoder once for all its pairs; sentences are batched."""
        from kgpipe.lm.relation_model import EntitySpan, TextWithEntities

        counts = PairCounts()
        inputs, wanted = [], []
        for sentence in sentences:
            pairs, dropped = nearest_pairs(sentence.spans, self.max_pairs)
            counts.dropped += dropped
            counts.scored += len(pairs)
            if self.model.config.entity_label_dim and pairs:
                counts.unknown_labels += sum(label == UNKNOWN_ENTITY for label in sentence.labels)
            inputs.append(TextWithEntities(sentence.text, tuple(
                EntitySpan(a, b, label) for (a, b), label in zip(sentence.spans, sentence.labels, strict=True))))
            wanted.append(pairs)
        if not any(wanted):
            return [[] for _ in sentences], counts
        scores = self._score(inputs, wanted)
        counts.skipped += scores.skipped
        counts.scored -= scores.skipped
        labels = self.model.config.relation_labels
        found: list[list[FoundRelation]] = []
        for pairs, table in zip(scores.pairs, scores.probabilities, strict=True):
            rows = []
            for (s, o), probabilities in zip(pairs, table.tolist(), strict=True):
                best = max(range(1, len(labels)), key=lambda k: (probabilities[k], -k))
                probability = round(probabilities[best], DECIMALS)
                if probability >= self.threshold:
                    rows.append(FoundRelation(s, o, labels[best], probability))
            found.append(rows)
        return found, counts

    def _score(self, inputs: Sequence[TextWithEntities], wanted: Sequence[Sequence[tuple[int, int]]]) -> PairScores:
        """The model's scores on one torch thread (reductions split over threads would change the floats from
        one machine or engine to another), the process's thread count restored after: on the local engine this
        process goes on to run other stages."""
        import torch

        before = torch.get_num_threads()
        if before != 1:
            torch.set_num_threads(1)
        try:
            return self.model.score(inputs, pairs=wanted, batch_size=self.batch_size)
        finally:
            if before != 1:
                torch.set_num_threads(before)


def load_model_relations(folder: str, *, threshold: float, max_pairs: int) -> ModelRelations:
    """The relation model in `folder`, loaded for inference on this process (it scores on one torch thread, so
    that every engine computes the same floats)."""
    from kgpipe.lm.relation_model import RelationModel

    model = RelationModel.load(folder)
    return ModelRelations(model, Path(folder).name, threshold=threshold, max_pairs=max_pairs)
