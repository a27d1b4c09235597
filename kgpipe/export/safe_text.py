"""What each output format does with characters it cannot hold: the one place where labels and ids from the
data are made safe for a file format or a terminal (README, "Export": the policy in a table).

- Every file: a lone surrogate (which no UTF-8 file can hold) becomes U+FFFD.
- GraphML: characters XML 1.0 forbids (C0 controls but tab, newline and carriage return; U+FFFE, U+FFFF;
  surrogates) become U+FFFD in labels and other text values; a carriage return is written as &#13; (XML
  readers turn a raw one into a newline).
- Entity and relation ids (IRIs), in every graph format alike: characters Turtle forbids in an IRI (controls,
  space, <>"{}|^`\\), those XML forbids and every Unicode space are percent-encoded (UTF-8), so a node has one
  id everywhere (an id and its percent-encoded form are one IRI, hence one node).
- Turtle and N-Triples literals: rdflib escapes them; only surrogates are replaced.
- word2vec keys: '%', whitespace and control characters percent-encoded (urllib.parse.unquote reverses it).
- Terminal: control characters, bidi overrides and non-characters are shown as Python escapes (\\x1b).
"""

from __future__ import annotations

import re
import unicodedata

REPLACEMENT = "\ufffd"

_SURROGATES = re.compile("[\ud800-\udfff]")
# XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]; the complement here
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Turtle's IRIREF excludes #x00-#x20 and <>"{}|^`\ ; XML-illegal ones are added so GraphML ids stay legal,
# and every control and Unicode space (rdflib's N-Triples parser ends an IRI at any \s, NEL and U+2028 too)
_IRI_UNSAFE = re.compile('[\x00-\x20<>"{}|^`\\\\\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f'
                         '\u3000\ud800-\udfff\ufffe\uffff]')
# Unicode format characters that reorder or hide text on a terminal (bidi controls, zero-width joiners are
# harmless and left alone)
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def utf8_safe(text: str) -> str:
    """text with lone surrogates replaced by U+FFFD: what every kgpipe file writer encodes."""
    return _SURROGATES.sub(REPLACEMENT, text)


def xml_safe(text: str) -> str:
    """text with the characters XML 1.0 cannot hold replaced by U+FFFD (GraphML values)."""
    return _XML_ILLEGAL.sub(REPLACEMENT, text)


def xml_keep_carriage_returns(document: bytes) -> bytes:
    """A UTF-8 XML document with each raw carriage return written as &#13;, which XML readers keep (they turn
    a raw one, or CR LF, into LF). Markup never holds a CR of its own, so every one is inside a value."""
    return document.replace(b"\r", b"&#13;")


def _percent(char: str) -> str:
    return "".join(f"%{b:02X}" for b in utf8_safe(char).encode("utf-8"))


def iri_safe(iri: str) -> str:
    """An id usable as an IRI in Turtle, N-Triples and GraphML: unsafe characters percent-encoded."""
    return _IRI_UNSAFE.sub(lambda m: _percent(m.group()), iri)


def _w2v_unsafe(char: str) -> bool:
    return char == "%" or char.isspace() or unicodedata.category(char) in ("Cc", "Cs") or char in "\ufffe\uffff"


def word2vec_key(key: str) -> str:
    """A word2vec text key: one token without whitespace; '%', whitespace and controls percent-encoded, so
    distinct ids stay distinct and urllib.parse.unquote(key) gives the id back (surrogates as U+FFFD)."""
    if not any(_w2v_unsafe(c) for c in key):
        return key
    return "".join(_percent(c) if _w2v_unsafe(c) else c for c in key)


def _terminal_unsafe(char: str) -> bool:
    category = unicodedata.category(char)
    return category in ("Cc", "Cs") or char in _BIDI or char in "\ufffe\uffff\u2028\u2029"


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """text for a terminal: control characters (ESC, BEL, backspace, carriage return, ...), bidi overrides,
    line separators and non-characters shown as Python escapes; with keep_newlines, '\\n' stays a newline."""
    out = []
    for char in text:
        if keep_newlines and char == "\n":
            out.append(char)
        elif _terminal_unsafe(char):
            out.append(repr(char)[1:-1])  # every such character is below U+10000: \\x.. or \\u....
        else:
            out.append(char)
    return "".join(out)
