"""A seed file may name nothing outside itself: RDF/XML DTDs with external or nested entities and JSON-LD
remote contexts are refused before rdflib sees the file, so reading a seed never opens a URL or another path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from xml.parsers import expat

from kgpipe.errors import InputError

# Flat internal entities (OWL files declare namespaces that way) expand to at most this many characters in
# all; nested ones are refused outright, so the total is a plain sum and cannot grow exponentially.
MAX_ENTITY_EXPANSION = 16 * 1024 * 1024

REFUSED_HINT = "seed files must be self-contained: inline the content, or download it and list it as a seed"
_ENTITY_REFERENCE = re.compile(rb"&([A-Za-z_:][A-Za-z0-9_.:\-]*);")


class _Refused(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _DtdDone(Exception):
    """The root element began: the DTD, the only place entities are declared, is over."""


def check_xml_declarations(data: bytes, source: str) -> None:
    """Refuse an RDF/XML file whose DTD declares anything that reaches outside the file or expands without
    bound: an external DTD, external or parameter entities, entities that refer to other entities."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    entities: dict[str, tuple[int, int]] = {}  # name -> (length of the value, line of the declaration)

    def doctype(name: str, system_id: str | None, public_id: str | None, _internal: int) -> None:
        if system_id or public_id:
            raise _Refused(f"RDF/XML DOCTYPE names an external DTD ({system_id or public_id!r}); external DTDs "
                           "are never loaded", parser.CurrentLineNumber)

    def entity(name: str, is_parameter: int, value: str | None, _base: str | None, system_id: str | None,
               public_id: str | None, notation: str | None) -> None:
        line = parser.CurrentLineNumber
        if is_parameter:
            raise _Refused(f"RDF/XML DTD declares the parameter entity '%{name};'; parameter entities are "
                           "refused", line)
        if value is None:
            raise _Refused(f"RDF/XML DTD declares the external entity '&{name};' "
                           f"({system_id or public_id or notation!r}); external entities are never loaded", line)
        if "&" in value:
            raise _Refused(f"RDF/XML entity '&{name};' refers to another entity; nested entities are refused "
                           "(they can expand exponentially)", line)
        entities[name] = (len(value), line)

    def element(*_args: Any) -> None:
        raise _DtdDone

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.StartElementHandler = element
    try:
        parser.Parse(data, True)
    except _DtdDone:
        pass
    except _Refused as exc:
        raise InputError(exc.message, file=source, line=exc.line, hint=REFUSED_HINT) from None
    except expat.ExpatError as exc:
        raise InputError(f"RDF/XML error: {expat.ErrorString(exc.code)}", file=source, line=exc.lineno,
                         hint="fix the syntax at that line (the file was not loaded)") from None
    if entities:
        _check_expansion(data, entities, source)


def _check_expansion(data: bytes, entities: dict[str, tuple[int, int]], source: str) -> None:
    total = 0
    for match in _ENTITY_REFERENCE.finditer(data):
        size_line = entities.get(match[1].decode("utf-8", "replace"))
        if size_line is not None:
            total += size_line[0]
            if total > MAX_ENTITY_EXPANSION:
                line = data.count(b"\n", 0, match.start()) + 1
                raise InputError(f"RDF/XML entity references expand to more than {MAX_ENTITY_EXPANSION:,} "
                                 "characters in all; refused", file=source, line=line,
                                 hint="write the values out instead of entity references") from None


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

