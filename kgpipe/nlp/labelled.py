"""Labelled sentences for training and evaluation, read from JSON lines in the CoNLL04 style:
{"tokens": [...], "entities": [{"start", "end" (token, exclusive), "type"}], "relations": [{"head", "tail"
(entity indexes), "type"}]}, or {"text": ..., "entities": [{"start", "end" (characters), "type"}], ...}.

Used by `kgpipe ner train`, `kgpipe patterns learn` and the extraction benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgpipe.errors import InputError

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span
    from spacy.vocab import Vocab


@dataclass(frozen=True)
class LabelledEntity:
    start: int   # token index (tokens format) or character offset (text format)
    end: int     # exclusive
    type: str


@dataclass(frozen=True)
class LabelledRelation:
    head: int    # index into the sentence's entities
    tail: int
    type: str


@dataclass(frozen=True)
class LabelledSentence:
    tokens: tuple[str, ...] | None
    text: str | None
    entities: tuple[LabelledEntity, ...]
    relations: tuple[LabelledRelation, ...]
    line: int

    @property
    def surface(self) -> str:
        """The sentence as text: the text, or the tokens joined by single spaces."""
        return self.text if self.text is not None else " ".join(self.tokens or ())

    def char_spans(self) -> list[tuple[int, int]]:
        """Each entity's character span in `surface`."""
        if self.tokens is None:
            return [(e.start, e.end) for e in self.entities]
        starts, position = [], 0
        for token in self.tokens:
            starts.append(position)
            position += len(token) + 1
        return [(starts[e.start], starts[e.end - 1] + len(self.tokens[e.end - 1])) for e in self.entities]


def read_labelled(path: Path, *, display: str | None = None) -> list[LabelledSentence]:
    """Read labelled JSON lines; a malformed line fails with the file and line number."""
    name = display or str(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read labelled data: {exc.strerror or exc}", file=name,
                         hint="pass a JSON lines file of labelled sentences (CoNLL04 style)") from None
    sentences = []
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                sentences.append(_parse(json.loads(line), number))
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise InputError(f"not a labelled sentence ({type(exc).__name__}: {exc})", file=name, line=number,
                                 hint='expected {"tokens": [...], "entities": [{"start", "end", "type"}], '
                                      '"relations": [{"head", "tail", "type"}]}') from None
    return sentences


def _parse(record: dict[str, Any], line: int) -> LabelledSentence:
    tokens = record.get("tokens")
    text = record.get("text") if tokens is None else None
    if tokens is None and not isinstance(text, str):
        raise KeyError("tokens (or text)")
    limit = len(tokens) if tokens is not None else len(text or "")
    entities = []
    for e in record.get("entities", []):
        start, end = int(e["start"]), int(e["end"])
        if not 0 <= start < end <= limit:
            raise IndexError(f"entity span {start}:{end} outside the sentence (length {limit})")
        entities.append(LabelledEntity(start, end, str(e["type"])))
    relations = []
    for r in record.get("relations", []):
        head, tail = int(r["head"]), int(r["tail"])
        if not (0 <= head < len(entities) and 0 <= tail < len(entities)):
            raise IndexError(f"relation refers to entity {max(head, tail)} of {len(entities)}")
        relations.append(LabelledRelation(head, tail, str(r["type"])))
    return LabelledSentence(tuple(str(t) for t in tokens) if tokens is not None else None, text,
                            tuple(entities), tuple(relations), line)


def make_doc(vocab_or_nlp: Any, sentence: LabelledSentence) -> Doc:
    """An unannotated Doc of the sentence: its own tokens, or the text through the tokenizer. A tokenized
    record is one sentence (as in CoNLL04), so its Doc is marked as one: the parser, which respects preset
    boundaries, then gives one tree, and every entity pair has a dependency path."""
    from spacy.tokens import Doc

    if sentence.tokens is not None:
        words = list(sentence.tokens)
        vocab: Vocab = getattr(vocab_or_nlp, "vocab", vocab_or_nlp)
        # spaCy's parameter is list[bool | int | None], and list is invariant
        starts: list[bool | int | None] | None = [True, *[False] * (len(words) - 1)] if words else None
        return Doc(vocab, words=words, spaces=[True] * (len(words) - 1) + [False] if words else [],
                   sent_starts=starts)
    return vocab_or_nlp.make_doc(sentence.text)


def entity_spans(doc: Doc, sentence: LabelledSentence) -> list[Span | None]:
    """The gold entities as spans of doc (None where a character span does not fit the tokens)."""
    if sentence.tokens is not None:
        from spacy.tokens import Span

        return [Span(doc, e.start, e.end, label=e.type) for e in sentence.entities]
    return [doc.char_span(e.start, e.end, label=e.type, alignment_mode="expand") for e in sentence.entities]


def entity_types(sentences: Iterable[LabelledSentence]) -> list[str]:
    return sorted({e.type for s in sentences for e in s.entities})
