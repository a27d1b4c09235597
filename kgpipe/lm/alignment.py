"""Character spans to sub-word token positions, through a fast tokenizer's offset_mapping, with texts
longer than the model's limit split into overlapping windows so that no span is cut or misaligned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kgpipe.errors import KgpipeError


@dataclass
class EncodedWindow:
    """One model input: token ids, and for each span that fits whole in it, its token positions."""

    input_ids: list[int]
    attention_mask: list[int]
    offsets: list[tuple[int, int]]
    span_tokens: dict[int, list[int]] = field(default_factory=dict)  # span index -> token positions


def require_fast(tokenizer: Any) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise KgpipeError(f"tokenizer {type(tokenizer).__name__} is not a fast tokenizer",
                          hint="character-to-token alignment needs offset_mapping: load it with use_fast=True")


def tokens_for_span(offsets: Sequence[tuple[int, int]], start: int, end: int) -> list[int]:
    """Positions of the tokens that overlap [start, end); special tokens (empty offsets) never do."""
    return [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]


def encode_with_spans(tokenizer: Any, text: str, spans: Sequence[tuple[int, int]], *,
                      max_length: int = 512, stride: int = 64) -> list[EncodedWindow]:
    """Tokenise text into windows of at most max_length tokens (overlapping by `stride`); each span is
    assigned to the first window that holds all of its tokens. Spans covering no token (whitespace) are
    left out of every window.
    """
    require_fast(tokenizer)
    encoded = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=max_length,
                        stride=stride, return_overflowing_tokens=True, add_special_tokens=True)
    windows = [EncodedWindow(list(ids), list(mask), [tuple(o) for o in offs])
               for ids, mask, offs in zip(encoded["input_ids"], encoded["attention_mask"],
                                          encoded["offset_mapping"], strict=True)]
    for index, (start, end) in enumerate(spans):
        for window in windows:
            tokens = whole_span_tokens(window, start, end)
            if tokens:
                window.span_tokens[index] = tokens
                break
    return windows


def whole_span_tokens(window: EncodedWindow, start: int, end: int) -> list[int]:
    """The span's token positions in this window if the span lies whole inside the window's text (not just
    touching its edge), else none."""
    tokens = tokens_for_span(window.offsets, start, end)
    real = [o for o in window.offsets if o[1] > o[0]]
    if tokens and real and real[0][0] <= start and end <= real[-1][1]:
        return tokens
    return []
