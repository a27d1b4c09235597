"""Seed knowledge graphs: RDF (Turtle, N-Triples, RDF/XML, JSON-LD, via rdflib) and TSV triples become
entities (label, aliases, types), entity-to-entity triples and literal attributes.

Literals are attributes, never entities; schema statements (classes, properties) are not entities either.
A seed is read from its own bytes only (nothing it names is fetched, see seed_guard); a file that cannot be
trusted as a whole (syntax, a refused reference) is an InputError, a triple with one bad term is skipped.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
import xml.sax
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from kgpipe.corpus import utf8_error_position
from kgpipe.errors import InputError
from kgpipe.kg.iri import LineFinder, iri_character_problem, iri_problem, seed_base, text_problem
from kgpipe.kg.seed_guard import REFUSED_HINT, RefusingContextCache, check_xml_declarations, refusal, remote_references

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
SKOS = "http://www.w3.org/2004/02/skos/core#"

DEFAULT_LABEL_PROPERTIES = (
    RDFS + "label", SKOS + "prefLabel", "http://schema.org/name", "https://schema.org/name",
    "http://xmlns.com/foaf/0.1/name",
)
DEFAULT_ALIAS_PROPERTIES = (
    SKOS + "altLabel", SKOS + "hiddenLabel", "http://schema.org/alternateName",
    "https://schema.org/alternateName", "http://xmlns.com/foaf/0.1/nick",
)
# Statements about the vocabulary, not about the world's entities.
SCHEMA_PREDICATES = frozenset({
    RDFS + "subClassOf", RDFS + "subPropertyOf", RDFS + "domain", RDFS + "range",
    OWL + "equivalentClass", OWL + "equivalentProperty", OWL + "inverseOf", OWL + "disjointWith",
    OWL + "imports", RDFS + "isDefinedBy", RDFS + "seeAlso",
})
SCHEMA_TYPES = frozenset({
    OWL + "Class", RDFS + "Class", "http://www.w3.org/1999/02/22-rdf-syntax-ns#Property",
    OWL + "ObjectProperty", OWL + "DatatypeProperty", OWL + "AnnotationProperty", OWL + "Ontology",
    OWL + "TransitiveProperty", OWL + "SymmetricProperty", OWL + "FunctionalProperty",
})

RDF_FORMAT_BY_SUFFIX = {".ttl": "turtle", ".turtle": "turtle", ".n3": "n3", ".nt": "nt", ".ntriples": "nt",
                        ".rdf": "xml", ".owl": "xml", ".xml": "xml", ".jsonld": "json-ld", ".json": "json-ld"}
TSV_SUFFIXES = {".tsv", ".tab"}
# rdflib's RDF/XML (not XML) errors carry their place only in the message: '<system id>:<line>:<column>: why'
_RDFXML_ERROR = re.compile(r".*?:(?P<line>\d+):\d+: (?P<why>.*)", re.S)


@dataclass(frozen=True)
class SeedOptions:
    label_properties: tuple[str, ...] = DEFAULT_LABEL_PROPERTIES
    alias_properties: tuple[str, ...] = DEFAULT_ALIAS_PROPERTIES
    languages: tuple[str, ...] = ("en",)
    tsv_namespace: str = "http://kgpipe.org/seed/"
    base: str | None = None  # relative IRIs resolve against it; None: iri.seed_base(the seed's path)
    strict: bool = False  # a triple with a bad term is an error instead of a skip
    max_lines_searched: int = 1000  # skipped triples per file whose line is looked up in the text


@dataclass(frozen=True)
class SkippedTriple:
    source: str
    line: int | None
    reason: str


@dataclass
class SeedEntity:
    iri: str
    labels: list[str] = field(default_factory=list)   # in priority order; the first becomes the label
    aliases: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)


@dataclass
class SeedGraph:
    """One seed file, read."""

    source: str
    format: str
    entities: dict[str, SeedEntity] = field(default_factory=dict)
    triples: list[tuple[str, str, str]] = field(default_factory=list)
    attributes: list[tuple[str, str, str, str | None, str | None]] = field(default_factory=list)
    statements_read: int = 0
    blank_node_statements: int = 0
    schema_statements: int = 0
    skipped: list[SkippedTriple] = field(default_factory=list)

    def entity(self, iri: str) -> SeedEntity:
        if iri not in self.entities:
            self.entities[iri] = SeedEntity(iri)
        return self.entities[iri]

    def stats(self) -> dict[str, object]:
        return {"source": self.source, "format": self.format, "statements_read": self.statements_read,
                "entities": len(self.entities), "triples": len(self.triples),
                "relations": len({r for _, r, _ in self.triples}), "attributes": len(self.attributes),
                "blank_node_statements_skipped": self.blank_node_statements,
                "schema_statements_skipped": self.schema_statements, "triples_skipped": len(self.skipped)}

    def skip(self, line: int | None, reason: str, options: SeedOptions) -> None:
        if options.strict:
            raise InputError(reason, file=self.source, line=line,
                             hint="fix the triple, or set strict: false to skip bad seed triples")
        self.skipped.append(SkippedTriple(self.source, line, reason))


def local_name_label(iri: str) -> str:
    """The readable end of an IRI: 'http://x.org/Marie_Curie' -> 'Marie Curie'."""
    tail = iri.rstrip("/#")
    for sep in ("#", "/", ":"):
        if sep in tail:
            tail = tail.rsplit(sep, 1)[1]
            break
    return unquote(tail).replace("_", " ").strip() or iri


def detect_format(path: Path, source: str | None = None) -> str:
    suffix = path.suffix.lower()
    if suffix in TSV_SUFFIXES:
        return "tsv"
    if suffix in RDF_FORMAT_BY_SUFFIX:
        return RDF_FORMAT_BY_SUFFIX[suffix]
    raise InputError(f"cannot tell the format of seed file from its suffix '{suffix}'", file=source or path,
                     hint="use .ttl, .nt, .rdf/.owl/.xml, .jsonld/.json or .tsv, or set seed_format")


# --- RDF ---------------------------------------------------------------------------------------------


def _nt_error_line(text: str) -> int | None:
    """rdflib's N-Triples errors carry no line number: find the first line that fails on its own."""
    import rdflib

    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                rdflib.Graph().parse(data=line, format="nt")
            except Exception:  # any parser complaint marks the line
                return number
    return None


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, start = utf8_error_position(data, exc)
        raise InputError(f"invalid UTF-8 at byte {start}", file=source, line=line,
                         hint="re-encode the file as UTF-8") from None


def _parse_jsonld(text: str, graph: Any, source: str, base: str) -> tuple[dict[Any, str], list[_BadTerm]]:
    """Parse JSON-LD from its text alone. Returns the blank nodes rdflib put where an @id was empty, and the
    @ids rdflib drops without a word (with every statement of their node) because no IRI can contain them."""
    from rdflib import ConjunctiveGraph
    from rdflib.plugins.parsers.jsonld import Parser
    from rdflib.plugins.shared.jsonld.context import Context

    hint = "fix the syntax at that line (the file was not loaded)"
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"JSON-LD is not valid JSON: {exc.msg}", file=source, line=exc.lineno, hint=hint) from None
    except RecursionError:
        raise InputError("JSON-LD is nested too deeply to parse", file=source, hint=hint) from None
    for reference in remote_references(document):
        raise InputError(f"JSON-LD refers to the remote context {reference!r}; remote contexts and @import are "
                         "never loaded", file=source, line=LineFinder(text).find(reference), hint=REFUSED_HINT)
    context = Context(base=base, version=1.1)
    context._context_cache = RefusingContextCache()  # a second fence: see RefusingContextCache
    parser = Parser(generalized_rdf=False)
    with warnings.catch_warnings():  # rdflib's own JSON-LD plugin parses into a ConjunctiveGraph too
        warnings.simplefilter("ignore", DeprecationWarning)
        parser.parse(document, context, ConjunctiveGraph(store=graph.store, identifier=graph.identifier))
    dropped = [_BadTerm(f"the node's @id: {why}; rdflib leaves the node and its statements out", value, "iri")
               for value in _jsonld_ids(document) if (why := iri_character_problem(value))]
    return {node: iri for iri, node in parser.invalid_uri_to_bnode.items()}, dropped


def _jsonld_ids(document: Any) -> list[str]:
    """Every string @id of a JSON-LD document's nodes, in document order (term definitions in an @context are
    not nodes: an IRI they define is checked where a triple uses it)."""
    found, stack = [], [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("@id"), str):
                found.append(node["@id"])
            stack.extend(reversed([value for key, value in node.items() if key != "@context"]))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return found


def _parse_rdf(data: bytes, fmt: str, source: str, base: str) -> tuple[Any, dict[Any, str], list[_BadTerm]]:
    import rdflib
    from rdflib.plugins.parsers.notation3 import BadSyntax

    if fmt == "xml":
        check_xml_declarations(data, source)  # before rdflib's SAX parser expands a single entity
    graph = rdflib.Graph()
    hint = "fix the syntax at that line (the file was not loaded)"
    invalid: dict[Any, str] = {}
    dropped: list[_BadTerm] = []
    term_log = logging.getLogger("rdflib.term")  # its 'not a valid URI' warnings say less than our report
    level = term_log.level
    term_log.setLevel(logging.ERROR)
    try:
        if fmt == "json-ld":
            invalid, dropped = _parse_jsonld(_decode(data, source), graph, source, base)
        else:
            graph.parse(data=data, format=fmt, publicID=base)
    except InputError:
        raise
    except BadSyntax as exc:
        # str(exc) is 'at line N of <>:\nBad syntax (...) at ^ in:\n<context>': keep the middle line
        lines = str(exc).splitlines()
        raise InputError(f"{fmt} syntax error: {lines[1] if len(lines) > 1 else exc}",
                         file=source, line=exc.lines + 1, hint=hint) from None
    except xml.sax.SAXParseException as exc:
        raise InputError(f"RDF/XML error: {exc.getMessage()}", file=source, line=exc.getLineNumber(),
                         hint=hint) from None
    except UnicodeDecodeError as exc:
        line, start = utf8_error_position(data, exc)
        raise InputError(f"invalid UTF-8 at byte {start}", file=source, line=line,
                         hint="re-encode the file as UTF-8") from None
    except RecursionError:
        raise InputError(f"{fmt} is nested too deeply to parse", file=source, hint=hint) from None
    except Exception as exc:  # rdflib raises many parser-specific types; all are input errors here
        if (message := refusal(exc)) is not None:
            raise InputError(message, file=source, hint=REFUSED_HINT) from None
        line, why = None, str(exc)
        if fmt == "nt":
            line = _nt_error_line(data.decode("utf-8", errors="replace"))
        if fmt == "xml" and (where := _RDFXML_ERROR.match(why)):
            line, why = int(where["line"]), where["why"]
        raise InputError(f"{fmt} parse error: {why}", file=source, line=line, hint=hint) from None
    finally:
        term_log.setLevel(level)
    return graph, invalid, dropped


@dataclass(frozen=True)
class _BadTerm:
    reason: str
    term: str
    kind: str  # 'iri', 'literal' or 'text': how to look for it in the file


class _TermCheck:
    """Why a triple cannot be used (a bad term), and the line of the first such term in the file."""

    def __init__(self, data: bytes, seed: SeedGraph, base: str, invalid: dict[Any, str],
                 options: SeedOptions) -> None:
        self.data = data
        self.seed = seed
        self.base = base
        self.invalid = invalid
        self.options = options
        self._finder: LineFinder | None = None
        self._good_iris: set[str] = set()

    def problem(self, subject: Any, predicate: Any, obj: Any) -> _BadTerm | None:
        from rdflib import BNode, Literal, URIRef, Variable

        for role, term in (("subject", subject), ("predicate", predicate), ("object", obj)):
            if type(term) is URIRef:  # the common case first, each IRI checked once
                if term not in self._good_iris:
                    if reason := iri_problem(term):
                        return _BadTerm(f"the {role} {reason}", str(term), "iri")
                    self._good_iris.add(term)
            elif term in self.invalid:
                why = iri_problem(self.invalid[term]) or "is not a valid IRI"
                return _BadTerm(f"the {role} {why}", self.invalid[term], "iri")
            elif isinstance(term, Literal):
                if role != "object":
                    return _BadTerm(f"the {role} is a literal ({str(term)[:60]!r}); only IRIs name entities",
                                    str(term), "literal")
                if reason := text_problem(str(term), "the literal"):
                    return _BadTerm(reason, str(term), "literal")
                if term.datatype is not None and (reason := iri_problem(str(term.datatype))):
                    return _BadTerm(f"the literal's datatype {reason}", str(term.datatype), "iri")
            elif isinstance(term, URIRef):
                if reason := iri_problem(str(term)):
                    return _BadTerm(f"the {role} {reason}", str(term), "iri")
            elif isinstance(term, Variable):
                return _BadTerm(f"the {role} is the N3 variable ?{term}, not an RDF term", f"?{term}", "text")
            elif not isinstance(term, BNode):
                return _BadTerm(f"the {role} is an N3 formula {{...}}, not an RDF term", "{", "text")
        return None

    def skip(self, bad: _BadTerm) -> None:
        line, reason = None, bad.reason
        if len(self.seed.skipped) < self.options.max_lines_searched:
            if self._finder is None:
                self._finder = LineFinder(self.data.decode("utf-8-sig", errors="replace"), self.base)
            finder = self._finder
            find = {"iri": finder.find, "literal": finder.find_literal}.get(bad.kind, lambda term: finder.first([term]))
            line = find(bad.term)
            reason += "" if line is not None else " (line unknown: the term was not found in the file's text)"
        else:
            reason += f" (line not looked up after {self.options.max_lines_searched} skipped triples)"
        self.seed.skip(line, reason, self.options)


def read_rdf(data: bytes, fmt: str, source: str, options: SeedOptions) -> SeedGraph:
    from rdflib import BNode, Literal, URIRef

    base = options.base or seed_base(source)
    graph, invalid, dropped = _parse_rdf(data, fmt, source, base)
    seed = SeedGraph(source, fmt)
    check = _TermCheck(data, seed, base, invalid, options)
    for dropped_id in dropped:
        check.skip(dropped_id)
    label_rank = {p: i for i, p in enumerate(options.label_properties)}
    aliases = set(options.alias_properties)
    languages = set(options.languages)

    schema_terms = {str(s) for s, o in graph.subject_objects(URIRef(RDF_TYPE)) if str(o) in SCHEMA_TYPES}
    schema_terms |= {str(p) for p in graph.predicates()}
    class_terms = {str(o) for o in graph.objects(None, URIRef(RDF_TYPE))}
    labels: dict[str, list[tuple[int, int, str]]] = {}

    for subject, predicate, obj in graph:
        seed.statements_read += 1
        if (bad := check.problem(subject, predicate, obj)) is not None:
            check.skip(bad)
            continue
        if isinstance(subject, BNode) or isinstance(predicate, BNode) or isinstance(obj, BNode):
            seed.blank_node_statements += 1  # N3 allows a blank predicate; it names no relation either
            continue
        s, p = str(subject), str(predicate)
        if s in schema_terms or s in class_terms or p in SCHEMA_PREDICATES:
            seed.schema_statements += 1
            continue
        if isinstance(obj, Literal):
            lang = obj.language
            seed.attributes.append((s, p, str(obj), str(obj.datatype) if obj.datatype else None, lang))
            seed.entity(s)  # the subject of an attribute is an entity, named or not
            # 'en' accepts en, en-GB, en-US; 'en-gb' accepts exactly en-GB
            if lang is not None and not {lang.lower(), lang.split("-")[0].lower()} & languages:
                continue
            lang_rank = 0 if lang is not None else 1  # a tagged label in a wanted language beats an untagged one
            if p in label_rank:
                labels.setdefault(s, []).append((label_rank[p], lang_rank, str(obj).strip()))
            elif p in aliases:
                seed.entity(s).aliases.append(str(obj).strip())
        elif isinstance(obj, URIRef):
            if p == RDF_TYPE:
                if str(obj) not in SCHEMA_TYPES:
                    seed.entity(s).types.append(str(obj))
                continue
            seed.triples.append((s, p, str(obj)))
            seed.entity(s)
            seed.entity(str(obj))
    for iri, found in labels.items():
        seed.entity(iri).labels = [text for _, _, text in sorted(found)]
    seed.skipped.sort(key=lambda s: (s.line is None, s.line or 0, s.reason))  # in file order, stably
    return seed


# --- TSV ---------------------------------------------------------------------------------------------


def _tsv_iri(token: str, namespace: str) -> str:
    if token.startswith("<") and token.endswith(">"):
        return token[1:-1]
    if "://" in token or token.startswith("urn:"):
        return token
    return namespace + quote(token.replace(" ", "_"), safe="_-.~()',")


def read_tsv(data: bytes, source: str, options: SeedOptions) -> SeedGraph:
    seed = SeedGraph(source, "tsv")
    text = _decode(data, source)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) != 3 or not all(cells):
            raise InputError(
                f"expected 3 tab-separated, non-empty columns (head, relation, tail), found {len(cells)}"
                f" in {line[:80]!r}", file=source, line=number,
                hint="separate columns with a tab; spaces inside a name are allowed")
        head, relation, tail = (_tsv_iri(c, options.tsv_namespace) for c in cells)
        seed.statements_read += 1
        problems = [f"{role} {why}" for role, iri in (("head", head), ("relation", relation), ("tail", tail))
                    if (why := iri_problem(iri))]
        if problems:
            seed.skip(number, "; ".join(problems), options)
            continue
        seed.triples.append((head, relation, tail))
        seed.entity(head)
        seed.entity(tail)
    return seed


def read_seed(path: Path, source: str, fmt: str, options: SeedOptions) -> SeedGraph:
    fmt = detect_format(path, source) if fmt == "auto" else fmt
    try:
        data = path.read_bytes()  # the one file a seed may read: itself
    except FileNotFoundError:
        raise InputError("seed KG file not found", file=source,
                         hint="check the 'seeds' dep in the pipeline file") from None
    except OSError as exc:
        raise InputError(f"cannot read the seed KG file ({exc.strerror})", file=source,
                         hint="check the file's permissions, or that it is a file and not a folder") from None
    if fmt == "tsv":
        return read_tsv(data, source, options)
    return read_rdf(data, fmt, source, options)


# --- merging several seed files into the three tables -------------------------------------------------


def merge_seeds(graphs: Iterable[SeedGraph]) -> tuple[list[dict], list[dict], list[dict]]:
    """Rows of seed_entities, seed_triples and seed_attributes, sorted for stable output."""
    entities: dict[str, dict] = {}
    triples: set[tuple[str, str, str, str]] = set()
    attributes: set[tuple] = set()
    for graph in graphs:
        for iri, ent in graph.entities.items():
            row = entities.setdefault(iri, {"iri": iri, "label": None, "aliases": [], "types": [], "sources": []})
            names = ent.labels + ent.aliases
            if row["label"] is None and ent.labels:
                row["label"] = ent.labels[0]
            row["aliases"].extend(n for n in names if n and n not in row["aliases"])
            row["types"].extend(t for t in ent.types if t not in row["types"])
            if graph.source not in row["sources"]:
                row["sources"].append(graph.source)
        triples.update((h, r, t, graph.source) for h, r, t in graph.triples)
        attributes.update((*attr, graph.source) for attr in graph.attributes)
    for row in entities.values():
        row["label"] = row["label"] or local_name_label(row["iri"])
        row["aliases"] = sorted(a for a in row["aliases"] if a != row["label"])
        row["types"] = sorted(row["types"])
    entity_rows = [entities[iri] for iri in sorted(entities)]
    triple_rows = [dict(zip(("head", "relation", "tail", "source"), t, strict=True)) for t in sorted(triples)]
    attribute_rows = [dict(zip(("entity", "property", "value", "datatype", "lang", "source"), a, strict=True))
                      for a in sorted(attributes, key=lambda a: tuple(x or "" for x in a))]
    return entity_rows, triple_rows, attribute_rows
