"""The IRI rule for seed KGs (an absolute IRI of RFC 3987 characters), the machine-independent base that
relative IRIs resolve against, and where a term first appears in a seed file's text.
"""

from __future__ import annotations

import bisect
import json
import re
from pathlib import PurePosixPath
from urllib.parse import quote

# Relative IRIs in a seed resolve against this plus the seed's path under the pipeline root. It must be a
# hierarchical http IRI: rdflib resolves with RFC 3986 rules that leave urn: or tag: bases unusable. The
# .invalid domain (RFC 2606) can never be looked up, so nothing ever fetches these IRIs.
DEFAULT_SEED_BASE = "http://kgpipe.invalid/seed/"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# Characters RFC 3987 leaves out of IRIs outright; each one breaks N-Triples and SPARQL output downstream.
_FORBIDDEN = frozenset(' <>"{}|\\^`')
_BAD_CHARACTER = re.compile(r'[ <>"{}|\\^`\x00-\x1f\x7f-\x9f\ud800-\udfff]')  # the above, controls, surrogates


def local_name(iri: str) -> str:
    """The last segment of an IRI, after its last '/' or '#' ('http://schema.org/Person' -> 'Person')."""
    return iri.rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def seed_base(source: str) -> str:
    """The base IRI of a seed file named by its path relative to the pipeline root (never an absolute path,
    which would make IRIs depend on the machine)."""
    path = PurePosixPath(source.replace("\\", "/"))
    relative = path.name if path.is_absolute() else path.as_posix()
    return DEFAULT_SEED_BASE + quote(relative, safe="/")


def iri_problem(iri: str) -> str | None:
    """Why `iri` is not an absolute IRI kgpipe accepts, or None when it is."""
    if not _SCHEME.match(iri):
        return f"IRI {_show(iri)} is relative or has no scheme (an IRI needs one, e.g. http:)"
    return iri_character_problem(iri)


def iri_character_problem(iri: str) -> str | None:
    """Why `iri` can never be an IRI, whatever base or prefix it is resolved against, or None."""
    match = _BAD_CHARACTER.search(iri)
    if match is None:
        return None
    char, position = match[0], match.start() + 1
    code = ord(char)
    if char in _FORBIDDEN:
        return f"IRI {_show(iri)} contains {'a space' if char == ' ' else repr(char)} at character {position}"
    if 0xD800 <= code <= 0xDFFF:
        return f"IRI {_show(iri)} contains a lone surrogate U+{code:04X} at character {position}"
    return f"IRI {_show(iri)} contains control character U+{code:04X} at character {position}"


def text_problem(text: str, what: str) -> str | None:
    """Why a literal cannot be stored (a lone surrogate from an escape such as \\ud800), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"{what} contains a lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start + 1} "
                "(an escape that is half of a pair)")
    return None


def _show(iri: str, limit: int = 80) -> str:
    shown = iri if len(iri) <= limit else iri[:limit] + "..."
    return ascii(shown) if any(not c.isprintable() for c in shown) else repr(shown)


class LineFinder:
    """Line numbers of terms in a seed's text: the first line where some spelling of the term appears."""

    def __init__(self, text: str, base: str | None = None) -> None:
        self.text = text
        self.base = base
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset)

    def first(self, spellings: list[str]) -> int | None:
        for spelling in spellings:
            if spelling and (offset := self.text.find(spelling)) >= 0:
                return self.line_of(offset)
        return None

    def find(self, term: str) -> int | None:
        """The line of an IRI: as written, relative to the base, escaped (JSON, XML, \\u), or its local name."""
        forms = [term]
        if self.base:
            folder = self.base.rsplit("/", 1)[0] + "/"
            for prefix in (self.base, folder):
                if term.startswith(prefix) and len(term) > len(prefix):
                    forms.append(term[len(prefix):])
        forms += [*escapes(term, iri=True), term.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")]
        local = re.split(r"[/#:]", term.rstrip("/#"))[-1]
        if len(local) >= 3:
            forms += [local, *escapes(local, iri=True)]
        return self.first(forms)

    def find_literal(self, lexical: str) -> int | None:
        quoted = [f'"{lexical}"', f"'{lexical}'", f">{lexical}<"]
        return self.first([*quoted, *(q for form in escapes(lexical) for q in (f'"{form}"', form)), lexical])


def escapes(term: str, iri: bool = False) -> list[str]:
    """How RDF syntaxes escape a term's awkward characters (in an IRI, the forbidden ones too): JSON's \\u
    escapes, and Turtle's in either case."""
    awkward = {c for c in term if not c.isascii() or not c.isprintable() or (iri and c in _FORBIDDEN)}
    if not awkward:
        return []
    upper = "".join(f"\\u{ord(c):04X}" if c in awkward and ord(c) <= 0xFFFF else c for c in term)
    lower = "".join(f"\\u{ord(c):04x}" if c in awkward and ord(c) <= 0xFFFF else c for c in term)
    return [json.dumps(term)[1:-1], upper, lower]
