"""A seed file may name nothing outside itself: RDF/XML DTDs with external or nested entities and JSON-LD
remote contexts are refused before rdflib sees the file, so reading a seed never opens a URL or another path.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import Any
from xml.parsers import expat

from kgpipe.errors import InputError

# Flat internal entities (OWL files declare namespaces that way) expand to at most this many characters in
# all; nested ones are refused outright, so the total is a plain sum and cannot grow exponentially.
MAX_ENTITY_EXPANSION = 16 * 1024 * 1024

REFUSED_HINT = "seed files must be self-contained: inline the content, or download it and list it as a seed"
_FLAT_HINT = "write the values out, or use only flat entities such as <!ENTITY owl \"http://...#\">"
_ENTITY_REFERENCE = re.compile(r"&([^\s&;<>\"'%#]+);")  # any name: only declared ones are counted


class _Refused(Exception):
    def __init__(self, message: str, line: int | None, hint: str = REFUSED_HINT) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.hint = hint


class _DtdDone(Exception):
    """The root element began: the DTD, the only place entities are declared, is over."""


def check_xml_declarations(data: bytes, source: str) -> None:
    """Refuse an RDF/XML file whose DTD declares anything that reaches outside the file or expands without
    bound: an external DTD, external or parameter entities, entities that refer to other entities, an
    undeclared entity reference, flat entities that expand to more than MAX_ENTITY_EXPANSION in all."""
    parser = expat.ParserCreate()
    # the setting xml.sax's expat reader (rdflib's RDF/XML parser) uses, so both see the same declarations
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_UNLESS_STANDALONE)
    entities: dict[str, int] = {}  # name -> length of the value
    declared: list[str | None] = [None]  # the encoding named by the XML declaration

    def xml_declaration(_version: str | None, encoding: str | None, _standalone: int) -> None:
        declared[0] = encoding

    def doctype(name: str, system_id: str | None, public_id: str | None, _internal: int) -> None:
        if system_id or public_id:
            raise _Refused(f"RDF/XML DOCTYPE names an external DTD ({system_id or public_id!r}); external DTDs "
                           "are never loaded", parser.CurrentLineNumber)

    def entity(name: str, is_parameter: int, value: str | None, _base: str | None, system_id: str | None,
               public_id: str | None, notation: str | None) -> None:
        line = parser.CurrentLineNumber
        if is_parameter:
            raise _Refused(f"RDF/XML DTD declares the parameter entity '%{name};'; parameter entities are "
                           "refused", line, _FLAT_HINT)
        if value is None:
            raise _Refused(f"RDF/XML DTD declares the external entity '&{name};' "
                           f"({system_id or public_id or notation!r}); external entities are never loaded", line)
        if "&" in value:
            raise _Refused(f"RDF/XML entity '&{name};' refers to another entity; nested entities are refused "
                           "(they can expand exponentially)", line, _FLAT_HINT)
        entities[name] = len(value)

    def skipped(name: str, is_parameter: int) -> None:
        # an undeclared entity reference: after one in the DTD expat stops reading declarations
        what = f"parameter entity '%{name};'" if is_parameter else f"entity '&{name};'"
        raise _Refused(f"RDF/XML DTD refers to the undeclared {what}; refused", parser.CurrentLineNumber,
                       _FLAT_HINT)

    def external(_context: str | None, _base: str | None, system_id: str | None, public_id: str | None) -> int:
        raise _Refused(f"RDF/XML refers to the external entity {system_id or public_id!r}; external entities "
                       "are never loaded", parser.CurrentLineNumber)

    def element(*_args: Any) -> None:
        raise _DtdDone

    parser.XmlDeclHandler = xml_declaration
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.SkippedEntityHandler = skipped
    parser.ExternalEntityRefHandler = external
    parser.StartElementHandler = element
    try:
        parser.Parse(data, True)
    except _DtdDone:
        pass
    except _Refused as exc:
        raise InputError(exc.message, file=source, line=exc.line, hint=exc.hint) from None
    except expat.ExpatError as exc:
        raise InputError(f"RDF/XML error: {expat.ErrorString(exc.code)}", file=source, line=exc.lineno,
                         hint="fix the syntax at that line (the file was not loaded)") from None
    if entities:
        _check_expansion(_xml_text(data, declared[0]), entities, source)


def _check_expansion(text: str, entities: dict[str, int], source: str) -> None:
    total = 0
    for match in _ENTITY_REFERENCE.finditer(text):
        total += entities.get(match[1], 0)
        if total > MAX_ENTITY_EXPANSION:
            raise InputError(f"RDF/XML entity references expand to more than {MAX_ENTITY_EXPANSION:,} characters "
                             "in all; refused", file=source, line=text.count("\n", 0, match.start()) + 1,
                             hint="write the values out instead of entity references")


def _xml_text(data: bytes, declared: str | None) -> str:
    """The document as text, decoded as expat decodes it: a UTF-16 file counted as bytes would hide its
    entity references between NUL bytes."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    if data.startswith(b"<\x00"):
        return data.decode("utf-16-le", "replace")
    if data.startswith(b"\x00<"):
        return data.decode("utf-16-be", "replace")
    try:
        return data.decode(declared or "utf-8", "replace")
    except LookupError:  # an encoding Python does not know: expat cannot read the file either
        return data.decode("utf-8", "replace")


# --- JSON-LD -----------------------------------------------------------------------------------------


def remote_references(document: Any) -> Iterator[str]:
    """Every context a JSON-LD document would load from elsewhere: a string (URL or path) given as or in an
    @context, and every @import. rdflib fetches exactly these (jsonld.context.Context._fetch_context)."""
    stack = [document]  # iterative: the document may nest as deep as the JSON parser allowed
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == "@context":
                    for item in value if isinstance(value, list) else [value]:
                        if isinstance(item, str):
                            yield item
                elif key == "@import":
                    yield value if isinstance(value, str) else repr(value)
            stack.extend(reversed(list(node.values())))


class RefusingContextCache(dict):
    """rdflib's JSON-LD contexts look a remote context up in this cache before fetching it; answering the
    lookup with a refusal means no fetch can happen even where the scan above missed a reference."""

    def __contains__(self, url: object) -> bool:
        raise _Refused(f"JSON-LD refers to the remote context {url!r}; remote contexts are never loaded", None)


def refusal(exc: BaseException) -> str | None:
    """The message of a refusal raised from inside rdflib, or None for any other error."""
    return exc.message if isinstance(exc, _Refused) else None

