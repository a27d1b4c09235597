"""Splitting long documents into pieces spaCy can process (below nlp.max_length, and small enough to keep
the parser's memory bounded), cutting at paragraph, then sentence, then word boundaries; every piece keeps
its character offset so that spans map back to the original text exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Cut points, best first: a blank line, a line break, the end of a sentence, any whitespace.
_BOUNDARIES = (
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n\s*"),
    re.compile(r"(?<=[.!?。！？])[\"'”’)\]]*\s+"),
    re.compile(r"\s+"),
)


def split_text(text: str, max_chars: int) -> Iterator[tuple[int, str]]:
    """Yield (offset, piece) with text[offset:offset + len(piece)] == piece and len(piece) <= max_chars.

    Pieces are cut at the last paragraph break before max_chars, else the last line break, sentence end,
    or whitespace; only text with no whitespace at all is cut mid-word. Whitespace at a cut belongs to
    neither piece, so no entity can straddle one.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    start = 0
    n = len(text)
    while start < n:
        if n - start <= max_chars:
            yield start, text[start:]
            return
        window_end = start + max_chars
        cut, resume = window_end, window_end
        for boundary in _BOUNDARIES:
            # the last boundary inside the window that leaves a non-empty piece
            last = None
            for match in boundary.finditer(text, start + 1, window_end + 1):
                if match.start() > start:
                    last = match
            if last is not None:
                cut, resume = last.start(), last.end()
                break
        yield start, text[start:cut]
        start = resume
