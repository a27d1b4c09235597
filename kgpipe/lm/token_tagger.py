"""A token classifier over BIO tags for the transformer NER: a Hugging Face encoder and a linear layer, with
word tokens (spaCy's) mapped to sub-words through the fast tokenizer's offsets.

A word's tag is read from (and trained on) its first sub-word; a word whose start is covered by a sub-word
that began in an earlier word, or that has no sub-word (whitespace), has no tag of its own. Texts longer than
the encoder's limit are split into overlapping windows, and each word is read from the window in which its
first sub-word lies furthest from the edges. A folder holds ner_model.json, ner_model.safetensors and the
tokenizer; loading it needs neither the hub nor the base model.

Recipe options, each off for a folder whose config predates it: word shapes (the capitalisation an uncased
tokenizer throws away, embedded and joined to each word's first sub-word), word parts of speech (spaCy's
universal tag of each word, embedded and joined the same way: PROPN against NOUN is a name cue the uncased
encoder cannot see), the base spaCy model's own entities (its stock, case-aware NER's IOB and type of each
word, embedded likewise: strong evidence of where a name starts and ends, whatever the label set) and decoding
that only yields valid BIO sequences (Viterbi over the words instead of a per-word argmax). Each word feature
is one WordFeature (TaggerConfig.word_features): the tagger loops over those that are on; the config's flat
fields and the embeddings' attribute names stay as every folder so far saved them.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from kgpipe.lm.alignment import require_fast
from kgpipe.lm.finetune import (
    ModelFolder,
    encoder_architecture,
    encoder_limit,
    load_base,
    save_tokenizer,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel

CONFIG_FILE = "ner_model.json"
WEIGHTS_FILE = "ner_model.safetensors"
TOKENIZER_DIR = "tokenizer"
FORMAT = "kgpipe-transformer-ner/1"
OUTSIDE = 0
# spaCy's universal part-of-speech tags (spacy.parts_of_speech.IDS without the empty one), in its order. A
# model's config keeps the list it was trained with, so its ids do not move if this one ever changes.
UNIVERSAL_POS = ("ADJ", "ADP", "ADV", "AUX", "CONJ", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
                 "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X", "EOL", "SPACE")
# The entity types of spaCy's English pipelines' NER (OntoNotes 5), kept in a model's config like the POS tags.
# A word's stock-NER id: 0 none (no annotation, padding), 1 O, then B- and I- of each type in this order, then
# B- and I- of any type not listed ('other').
ONTONOTES_TYPES = ("CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP",
                   "ORDINAL", "ORG", "PERCENT", "PERSON", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART")


@dataclass
class TaggerConfig:
    base_model: str                  # the package or folder name training started from (never a path)
    labels: list[str]                # entity labels; tags are O, then B-label and I-label for each
    encoder: dict[str, Any]          # the encoder's Hugging Face config (architecture only)
    max_length: int = 512            # tokens per window; longer texts are windowed
    stride: int = 64                 # overlap of consecutive windows, in tokens
    dropout: float = 0.1
    training: dict[str, Any] = field(default_factory=dict)   # how it was trained (summary, for people)
    format: str = FORMAT
    # Absent from folders saved before they existed, hence False by default: such folders load as they were.
    word_shapes: bool = False        # a word-shape embedding joined to the encoder state before the classifier
    shape_dim: int = 16
    constrained_decoding: bool = False   # Viterbi over valid BIO sequences instead of per-word argmax
    word_pos: bool = False           # a part-of-speech embedding joined likewise (needs token.pos_ set)
    pos_dim: int = 16
    pos_tags: list[str] = field(default_factory=lambda: list(UNIVERSAL_POS))   # id 1 + index; 0: none
    word_base_ner: bool = False      # the base model's stock NER tag of each word, embedded likewise
    base_ner_dim: int = 16
    base_ner_types: list[str] = field(default_factory=lambda: list(ONTONOTES_TYPES))   # see ONTONOTES_TYPES

    @property
    def tags(self) -> list[str]:
        return ["O", *(f"{prefix}-{label}" for label in self.labels for prefix in ("B", "I"))]

    def word_features(self) -> tuple[WordFeature, ...]:
        """Every word feature as this config sets it (on or off), in the order their embeddings join the
        encoder state: shape, part of speech, stock NER (a saved classifier's columns depend on it)."""
        n_types = len(self.base_ner_types)
        return (
            WordFeature("shape", "shape", "word_shapes", self.word_shapes, N_SHAPES, self.shape_dim, shape_ids,
                        from_text=True),
            WordFeature("pos", "part of speech", "word_pos", self.word_pos, 1 + len(self.pos_tags), self.pos_dim,
                        _tag_ids(self.pos_tags)),
            WordFeature("base_ner", "stock-NER tag", "word_base_ner", self.word_base_ner, 2 + 2 * (n_types + 1),
                        self.base_ner_dim, _iob_ids(self.base_ner_types)),
        )


@dataclass(frozen=True)
class WordFeature:
    """One per-word input of the tagger: each word's value (a string) mapped to an id, embedded, and joined to
    the encoder state at the word's first sub-word before the classifier. Id 0 is none: padding, sub-words
    that start no word, a value the model does not know. Built from a TaggerConfig (word_features), whose flat
    fields (word_pos, pos_dim, pos_tags, ...) stay its saved form, so folders saved before it load as they
    were."""

    name: str             # key in `features` mappings; its embedding is the tagger's `{name}_embedding`
    what: str             # what a word's value is, for messages
    flag: str             # the TaggerConfig field that turns it on
    enabled: bool
    size: int             # ids, 0 included
    dim: int
    ids: Callable[[Sequence[str]], list[int]]     # the values of a text's words, in order -> their ids
    from_text: bool = False   # the values are the words' own characters, read by the tagger, never passed in


def _tag_ids(tags: Sequence[str]) -> Callable[[Sequence[str]], list[int]]:
    """Ids of tags (token.pos_): 1 + index in `tags`; 0 for one not listed or an empty one."""
    index = {tag: 1 + k for k, tag in enumerate(tags)}
    return lambda values: [index.get(value, 0) for value in values]


def _iob_ids(types: Sequence[str]) -> Callable[[Sequence[str]], list[int]]:
    """Ids of stock-NER tags ('B-PERSON', 'I-ORG', 'O'; '' where no NER ran): see ONTONOTES_TYPES; a B- or I-
    tag of a type not in `types` gets that prefix's 'other' id."""
    index = {"O": 1, **{f"{iob}-{kind}": 2 + 2 * k + (iob == "I") for k, kind in enumerate(types) for iob in "BI"}}
    other = {"B-": 2 + 2 * len(types), "I-": 3 + 2 * len(types)}
    return lambda values: [index.get(value) or other.get(value[:2], 0) for value in values]


class Entity(NamedTuple):
    start: int          # word indexes, end exclusive
    end: int
    label: str


@dataclass
class Window:
    """One encoder input and the words read from it: word index -> sub-word position (and gold tag)."""

    text: int                        # index of the text among those encoded
    input_ids: list[int]
    words: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    # feature name -> the id of each word read (see WordFeature), for the model's enabled word features
    features: dict[str, list[int]] = field(default_factory=dict)


class Batch(NamedTuple):
    """Windows as tensors [windows, sub-words]: each enabled word feature's ids (by name) at each word's first
    sub-word (0 elsewhere), targets there (-100 elsewhere)."""

    input_ids: torch.Tensor
    attention: torch.Tensor
    features: dict[str, torch.Tensor]
    targets: torch.Tensor


# Word shapes. The packaged encoder's tokenizer lower-cases, so the case of a word, the strongest single cue
# for names in news text, is read here from the original text. Id 0 marks sub-words that start no word.
LOWER, TITLE, UPPER, MIXED, NUMERIC, HAS_DIGIT, PUNCT, OTHER = range(8)
N_BASE_SHAPES = 8
N_SHAPES = 1 + 2 * N_BASE_SHAPES       # none, then each base shape off and at the start of a sentence
SENTENCE_END = frozenset(".!?")


def base_shape(word: str) -> int:
    """LOWER, TITLE ('Smith', 'A'), UPPER ('IBM'), MIXED ('iPhone', 'McDonald'), NUMERIC ('1,000', '3.5'),
    HAS_DIGIT ('F-16', '1990s'), PUNCT (no letter or digit) or OTHER (letters without case)."""
    if not any(c.isalnum() for c in word):
        return PUNCT
    has_letter = any(c.isalpha() for c in word)
    if any(c.isdigit() for c in word):
        return HAS_DIGIT if has_letter else NUMERIC
    upper = sum(c.isupper() for c in word)
    lower = sum(c.islower() for c in word)
    if upper == 0:
        return LOWER if lower else OTHER
    if lower == 0:
        return UPPER if upper > 1 else TITLE
    first = next(c for c in word if c.isupper() or c.islower())
    return TITLE if upper == 1 and first.isupper() else MIXED


def word_shapes(text: str, words: Sequence[tuple[int, int]]) -> list[int]:
    """Shape id (see shape_ids) of each word (character span of `text`)."""
    return shape_ids([text[start:end] for start, end in words])


def shape_ids(words: Sequence[str]) -> list[int]:
    """Shape id (1 .. N_SHAPES - 1) of each word of a text, in order: its base shape, shifted by N_BASE_SHAPES
    for the first word with a letter or digit of the text or after a word made only of '.!?' (capitalised
    there by grammar, not because it is a name)."""
    shapes: list[int] = []
    initial = True
    for word in words:
        shape = base_shape(word)
        shapes.append(1 + shape + (N_BASE_SHAPES if initial and shape != PUNCT else 0))
        if shape != PUNCT:
            initial = False
        elif word.strip() and set(word.strip()) <= SENTENCE_END:
            initial = True
    return shapes


def bio_tags(n_words: int, entities: Sequence[Entity], labels: Sequence[str]) -> list[int]:
    """Tag indexes (O = 0, B-label = 1 + 2k, I-label = 2 + 2k) of the words for non-overlapping entities."""
    index = {label: k for k, label in enumerate(labels)}
    tags = [OUTSIDE] * n_words
    for entity in entities:
        k = index[entity.label]
        tags[entity.start] = 1 + 2 * k
        for word in range(entity.start + 1, entity.end):
            tags[word] = 2 + 2 * k
    return tags


def decode(tags: Sequence[int | None], labels: Sequence[str]) -> list[Entity]:
    """Entities from per-word tags. An I- tag that does not continue an entity of its label starts one (as a
    B- would). A word without a tag of its own (None) neither starts nor ends an entity: it joins the open
    one only if a later word continues it."""
    entities: list[Entity] = []
    open_label: int | None = None
    start = end = 0
    for word, tag in enumerate(tags):
        if tag is None:
            continue
        label, inside = (tag - 1) // 2, tag % 2 == 0
        if tag != OUTSIDE and inside and open_label == label:
            end = word + 1
            continue
        if open_label is not None:
            entities.append(Entity(start, end, labels[open_label]))
            open_label = None
        if tag != OUTSIDE:
            open_label, start, end = label, word, word + 1
    if open_label is not None:
        entities.append(Entity(start, end, labels[open_label]))
    return entities


def bio_transitions(n_tags: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(start [tags], transitions [previous tag, tag]): 0 where allowed, -inf where not. I-X may only follow
    B-X or I-X, so it can neither start a sequence nor follow O or another label."""
    start = torch.zeros(n_tags)
    transitions = torch.zeros(n_tags, n_tags)
    for tag in range(2, n_tags, 2):               # I- tags
        start[tag] = -torch.inf
        transitions[:, tag] = -torch.inf
        transitions[tag - 1, tag] = transitions[tag, tag] = 0.0
    return start, transitions


def viterbi(scores: torch.Tensor) -> list[int]:
    """The valid BIO tag sequence (see bio_transitions) with the highest total score, for `scores` [words,
    tags] (log-probabilities); when the per-word argmax is valid, it is that."""
    if scores.shape[0] == 0:
        return []
    start, transitions = bio_transitions(scores.shape[1])
    best = start + scores[0]
    back: list[torch.Tensor] = []
    for row in scores[1:]:
        candidates = best.unsqueeze(1) + transitions           # [previous, tag]
        best, previous = candidates.max(dim=0)
        best = best + row
        back.append(previous)
    path = [int(best.argmax())]
    for previous in reversed(back):
        path.append(int(previous[path[-1]]))
    return path[::-1]


def windows_for(tokenizer: Any, text: str, words: Sequence[tuple[int, int]], *, max_length: int, stride: int,
                number: int = 0, tags: Sequence[int] | None = None,
                features: Mapping[str, Sequence[int]] | None = None) -> list[Window]:
    """The encoder inputs of one text and, in each, the words read from it: every word that has a first
    sub-word goes to exactly one window (the one where that sub-word is furthest from the edges). `features`:
    feature name -> each word's id, carried into the windows with the words."""
    if not words or not text.strip():
        return []
    features = features or {}
    encoded = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=max_length, stride=stride,
                        return_overflowing_tokens=True, add_special_tokens=True)
    windows = [Window(number, list(ids), features={name: [] for name in features}) for ids in encoded["input_ids"]]
    best: list[tuple[int, int, int] | None] = [None] * len(words)   # (centrality, window, position)
    ends = [end for _, end in words]
    for w, offsets in enumerate(encoded["offset_mapping"]):
        real = [i for i, (a, b) in enumerate(offsets) if b > a]
        if not real:
            continue
        starts = [offsets[i][0] for i in real]
        first_char, last_char = offsets[real[0]][0], offsets[real[-1]][1]
        lo = bisect_left(ends, first_char + 1)             # the first word that may lie in this window
        for word in range(lo, len(words)):
            w_start, w_end = words[word]
            if w_start >= last_char:
                break
            if w_start < first_char or w_end > last_char:
                continue                                   # cut by the window's edge: another window has it
            k = bisect_left(starts, w_start)
            if k == len(real) or starts[k] >= w_end:
                continue                                   # no sub-word starts in the word
            if k > 0 and offsets[real[k - 1]][1] > w_start:
                continue                                   # its start lies in a sub-word of an earlier word
            position = real[k]
            centrality = min(k, len(real) - 1 - k)
            current = best[word]
            if current is None or centrality > current[0]:
                best[word] = (centrality, w, position)
    for word, chosen in enumerate(best):
        if chosen is not None:
            window = windows[chosen[1]]
            window.words.append(word)
            window.positions.append(chosen[2])
            window.targets.append(tags[word] if tags is not None else -100)
            for name, ids in features.items():
                window.features[name].append(ids[word])
    return [w for w in windows if w.words]


class TokenTagger(nn.Module):
    """Encoder (+ an embedding of each enabled word feature) + dropout + linear layer over the BIO tags."""

    def __init__(self, encoder: PreTrainedModel, tokenizer: Any, config: TaggerConfig) -> None:
        super().__init__()
        require_fast(tokenizer)
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.config = config
        self.dropout = nn.Dropout(config.dropout)
        self.features = tuple(f for f in config.word_features() if f.enabled)
        # Built before the embeddings, so a model without them starts from the same weights as before.
        self.classifier = nn.Linear(encoder.config.hidden_size + sum(f.dim for f in self.features),
                                    len(config.tags))
        for feature in self.features:
            # `{name}_embedding`: the state-dict keys (shape_embedding.weight, ...) of every folder saved so far
            self.add_module(f"{feature.name}_embedding", nn.Embedding(feature.size, feature.dim, padding_idx=0))

    @classmethod
    def from_base(cls, base_model: str, labels: Sequence[str], *, max_length: int | None = None,
                  dropout: float = 0.1, features: Collection[str] = (),
                  constrained_decoding: bool = False) -> TokenTagger:
        """A new tagger over `base_model`; `features`: the names of the word features to read (see
        TaggerConfig.word_features)."""
        encoder, tokenizer, recorded = load_base(base_model)
        limit = encoder_limit(encoder, tokenizer)
        config = TaggerConfig(recorded, list(labels), encoder_architecture(encoder),
                              max_length=min(max_length or limit, limit), dropout=dropout,
                              constrained_decoding=constrained_decoding)
        known = config.word_features()
        unknown = set(features) - {f.name for f in known}
        if unknown:
            raise ValueError(f"unknown word features {sorted(unknown)}: known are {[f.name for f in known]}")
        for feature in known:
            setattr(config, feature.flag, feature.name in features)
        config.stride = min(config.stride, config.max_length // 4)
        return cls(encoder, tokenizer, config)

    def feature(self, name: str) -> WordFeature:
        """The word feature `name` as this model's config describes it (on or off)."""
        for feature in self.config.word_features():
            if feature.name == name:
                return feature
        raise ValueError(f"unknown word feature {name!r}")

    def embedding(self, name: str) -> nn.Embedding | None:
        """The embedding of the word feature `name`; None where the model does not read it."""
        module = getattr(self, f"{name}_embedding", None)
        return module if isinstance(module, nn.Embedding) else None

    def windows(self, text: str, words: Sequence[tuple[int, int]], number: int = 0,
                tags: Sequence[int] | None = None, features: Mapping[str, Sequence[str]] | None = None
                ) -> list[Window]:
        """See windows_for; `features`: feature name -> each word's value, for every enabled feature not read
        from the text (e.g. {"pos": each word's token.pos_, "base_ner": each word's stock-NER tag}); values
        of a feature the model does not read are ignored."""
        given = features or {}
        passed = {f.name for f in self.config.word_features() if not f.from_text}
        if set(given) - passed:
            raise ValueError(f"unknown word features {sorted(set(given) - passed)}: pass those of {sorted(passed)}")
        ids: dict[str, list[int]] = {}
        for feature in self.features:
            values = [text[start:end] for start, end in words] if feature.from_text else given.get(feature.name)
            if values is None or len(values) != len(words):
                raise ValueError(f"this model reads each word's {feature.what}: {len(words)} words, "
                                 f"{'no' if values is None else len(values)} values in features[{feature.name!r}]")
            ids[feature.name] = feature.ids(values)
        return windows_for(self.tokenizer, text, words, max_length=self.config.max_length,
                           stride=self.config.stride, number=number, tags=tags, features=ids)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits [windows, sub-words, tags]; `features`: feature name -> [windows, sub-words] ids of the word
        a sub-word starts (0 elsewhere), one for each enabled feature (see collate)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        for feature in self.features:
            ids = (features or {}).get(feature.name)
            embedding = self.embedding(feature.name)
            if ids is None or embedding is None:
                raise ValueError(f"this model reads each word's {feature.what}: pass features[{feature.name!r}] "
                                 "(see collate)")
            hidden = torch.cat([hidden, embedding(ids)], dim=-1)
        return self.classifier(self.dropout(hidden))

    def collate(self, windows: Sequence[Window]) -> Batch:
        """The windows as one padded batch (see Batch)."""
        width = max(len(w.input_ids) for w in windows)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.tensor([w.input_ids + [pad] * (width - len(w.input_ids)) for w in windows])
        attention = torch.tensor([[1] * len(w.input_ids) + [0] * (width - len(w.input_ids)) for w in windows])
        features = {f.name: torch.zeros((len(windows), width), dtype=torch.long) for f in self.features}
        targets = torch.full((len(windows), width), -100, dtype=torch.long)
        for row, window in enumerate(windows):
            for name, ids in features.items():
                ids[row, window.positions] = torch.tensor(window.features[name], dtype=torch.long)
            targets[row, window.positions] = torch.tensor(window.targets, dtype=torch.long)
        return Batch(input_ids, attention, features, targets)

    def loss(self, windows: Sequence[Window]) -> torch.Tensor:
        batch = self.collate(windows)
        logits = self(batch.input_ids, batch.attention, batch.features)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1),
                                           ignore_index=-100)

    @torch.no_grad()
    def predict(self, texts: Sequence[tuple[str, Sequence[tuple[int, int]]]], *, batch_size: int = 64,
                features: Mapping[str, Sequence[Sequence[str]]] | None = None) -> list[list[Entity]]:
        """Entities (word spans) of each (text, word character spans): the windows of all texts run through the
        encoder together, `batch_size` windows per forward pass, shortest first (less padding); tags by
        per-word argmax, or by Viterbi over the words that have one (constrained_decoding). `features`:
        feature name -> each text's words' values (see windows), for every enabled feature not read from the
        text."""
        given = features or {}
        for name, per_text in given.items():
            if len(per_text) != len(texts):
                raise ValueError(f"{len(texts)} texts, values of features[{name!r}] for {len(per_text)}")
        windows = [w for number, (text, words) in enumerate(texts)
                   for w in self.windows(text, words, number,
                                         features={name: per_text[number] for name, per_text in given.items()})]
        was_training = self.training
        self.eval()
        scores: list[list[torch.Tensor | None]] = [[None] * len(words) for _, words in texts]
        windows.sort(key=lambda w: len(w.input_ids))
        for start in range(0, len(windows), batch_size):
            chosen = windows[start:start + batch_size]
            batch = self.collate(chosen)
            log_probabilities = torch.log_softmax(
                self(batch.input_ids, batch.attention, batch.features), dim=-1)
            for row, window in enumerate(chosen):
                for word, position in zip(window.words, window.positions, strict=True):
                    scores[window.text][word] = log_probabilities[row, position]
        self.train(was_training)
        return [decode(self._tags(text_scores), self.config.labels) for text_scores in scores]

    def _tags(self, scores: Sequence[torch.Tensor | None]) -> list[int | None]:
        """Each word's tag (None for a word without one) from its tag scores."""
        tagged = [(word, row) for word, row in enumerate(scores) if row is not None]
        tags: list[int | None] = [None] * len(scores)
        if not tagged:
            return tags
        if self.config.constrained_decoding:
            best = viterbi(torch.stack([row for _, row in tagged]))
        else:
            best = [int(row.argmax()) for _, row in tagged]
        for (word, _), tag in zip(tagged, best, strict=True):
            tags[word] = tag
        return tags

    # --- persistence ------------------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Tokenizer, weights and config, each written atomically; the config last."""
        from kgpipe.atomic import atomic_write_text
        from kgpipe.tensorfile import write_torch

        folder.mkdir(parents=True, exist_ok=True)
        save_tokenizer(self.tokenizer, folder / TOKENIZER_DIR)
        write_torch(folder / WEIGHTS_FILE, dict(self.state_dict()))
        atomic_write_text(folder / CONFIG_FILE, json.dumps(asdict(self.config), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: Path) -> TokenTagger:
        """The model saved in `folder` (see MODEL_FOLDER), without the hub, the base model or training code."""
        return MODEL_FOLDER.load(Path(folder), TaggerConfig, cls)


MODEL_FOLDER = ModelFolder(CONFIG_FILE, WEIGHTS_FILE, FORMAT, "transformer NER", "kgpipe ner train --transformer",
                           TOKENIZER_DIR)
