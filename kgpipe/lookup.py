"""Finding a thing by name for people: an unknown name is an error that suggests the closest known names.

Shared by Embeddings (kgpipe.export.embeddings) and LinkPredictor (kgpipe.embed.predict).
"""

from __future__ import annotations

from collections.abc import Iterable

from kgpipe.errors import InputError


class UnknownNameError(InputError, KeyError):
    """No entity or relation has this id or label. Also a KeyError, so `except KeyError` keeps working."""

    def __init__(self, kind: str, name: str, candidates: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.suggestions = close_names(name, candidates)
        hint = f"did you mean {', '.join(repr(c) for c in self.suggestions)}?" if self.suggestions else None
        super().__init__(f"no {kind} with id or label {name!r}", hint=hint)

    __str__ = InputError.__str__   # not KeyError's repr of the message


def close_names(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The known names closest to `name` (rapidfuzz WRatio), best first."""
    from rapidfuzz import process

    unique = list(dict.fromkeys(c for c in candidates if isinstance(c, str)))
    return [match for match, _, _ in process.extract(name, unique, limit=limit)]
