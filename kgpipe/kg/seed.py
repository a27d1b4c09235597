"""Seed knowledge graphs: RDF (Turtle, N-Triples, RDF/XML, JSON-LD, via rdflib) and TSV triples become
entities (label, aliases, types), entity-to-entity triples and literal attributes.

Literals are attributes, never entities; schema statements (classes, properties) are not entities either.
"""

from __future__ import annotations

import json
import re
import xml.sax
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from kgpipe.corpus import utf8_error_position
from kgpipe.errors import InputError

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

    def entity(self, iri: str) -> SeedEntity:
        if iri not in self.entities:
            self.entities[iri] = SeedEntity(iri)
        return self.entities[iri]

    def stats(self) -> dict[str, object]:
        return {"source": self.source, "format": self.format, "statements_read": self.statements_read,
                "entities": len(self.entities), "triples": len(self.triples),
                "relations": len({r for _, r, _ in self.triples}), "attributes": len(self.attributes),
                "blank_node_statements_skipped": self.blank_node_statements,
                "schema_statements_skipped": self.schema_statements}


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


def _nt_error_line(path: Path) -> int | None:
    """rdflib's N-Triples errors carry no line number: find the first line that fails on its own."""
    import rdflib

    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                rdflib.Graph().parse(data=line, format="nt")
            except Exception:  # any parser complaint marks the line
                return number
    return None


def _parse_rdf(path: Path, fmt: str, source: str):
    import rdflib
    from rdflib.plugins.parsers.notation3 import BadSyntax

    graph = rdflib.Graph()
    hint = "fix the syntax at that line (the file was not loaded)"
    try:
        graph.parse(path, format=fmt)
    except BadSyntax as exc:
        # str(exc) is 'at line N of <>:\nBad syntax (...) at ^ in:\n<context>': keep the middle line
        lines = str(exc).splitlines()
        raise InputError(f"{fmt} syntax error: {lines[1] if len(lines) > 1 else exc}",
                         file=source, line=exc.lines + 1, hint=hint) from None
    except xml.sax.SAXParseException as exc:
        raise InputError(f"RDF/XML error: {exc.getMessage()}", file=source, line=exc.getLineNumber(),
                         hint=hint) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"JSON-LD is not valid JSON: {exc.msg}", file=source, line=exc.lineno, hint=hint) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid UTF-8 at byte {exc.start}", file=source, hint="re-encode the file as UTF-8") from None
    except Exception as exc:  # rdflib raises many parser-specific types; all are input errors here
        line, why = (_nt_error_line(path) if fmt == "nt" else None), str(exc)
        if fmt == "xml" and (where := _RDFXML_ERROR.match(why)):
            line, why = int(where["line"]), where["why"]
        raise InputError(f"{fmt} parse error: {why}", file=source, line=line, hint=hint) from None
    return graph


def read_rdf(path: Path, fmt: str, source: str, options: SeedOptions) -> SeedGraph:
    from rdflib import BNode, Literal, URIRef

    graph = _parse_rdf(path, fmt, source)
    seed = SeedGraph(source, fmt)
    label_rank = {p: i for i, p in enumerate(options.label_properties)}
    aliases = set(options.alias_properties)
    languages = set(options.languages)

    schema_terms = {str(s) for s, o in graph.subject_objects(URIRef(RDF_TYPE)) if str(o) in SCHEMA_TYPES}
    schema_terms |= {str(p) for p in graph.predicates()}
    class_terms = {str(o) for o in graph.objects(None, URIRef(RDF_TYPE))}
    labels: dict[str, list[tuple[int, int, str]]] = {}

    for subject, predicate, obj in graph:
        seed.statements_read += 1
        if isinstance(subject, BNode) or isinstance(obj, BNode):
            seed.blank_node_statements += 1
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
    return seed


# --- TSV ---------------------------------------------------------------------------------------------


def _tsv_iri(token: str, namespace: str) -> str:
    if token.startswith("<") and token.endswith(">"):
        return token[1:-1]
    if "://" in token or token.startswith("urn:"):
        return token
    return namespace + quote(token.replace(" ", "_"), safe="_-.~()',")


def read_tsv(path: Path, source: str, options: SeedOptions) -> SeedGraph:
    seed = SeedGraph(source, "tsv")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, start = utf8_error_position(data, exc)
        raise InputError(f"invalid UTF-8 at byte {start}", file=source, line=line,
                         hint="re-encode the file as UTF-8") from None
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
        seed.triples.append((head, relation, tail))
        seed.entity(head)
        seed.entity(tail)
    return seed


def read_seed(path: Path, source: str, fmt: str, options: SeedOptions) -> SeedGraph:
    fmt = detect_format(path, source) if fmt == "auto" else fmt
    if not path.exists():
        raise InputError("seed KG file not found", file=source, hint="check the 'seeds' dep in the pipeline file")
    if fmt == "tsv":
        return read_tsv(path, source, options)
    return read_rdf(path, fmt, source, options)


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
