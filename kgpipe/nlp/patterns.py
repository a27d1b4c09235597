"""Relation pattern files: YAML lists of spaCy DependencyMatcher or Matcher patterns, each with an id, the
relation it yields, which anchors are subject and object, and the entity labels allowed on each side.

    patterns:
      - id: born_in.passive
        relation: born_in
        confidence: 0.9
        subject: {anchor: person, labels: [PERSON]}
        object: {anchor: place, labels: [GPE, LOC]}
        dependency:                      # spaCy DependencyMatcher format; anchors are RIGHT_IDs
          - {RIGHT_ID: verb, RIGHT_ATTRS: {LEMMA: bear}}
          - {LEFT_ID: verb, REL_OP: ">", RIGHT_ID: person, RIGHT_ATTRS: {DEP: nsubjpass}}
          - {LEFT_ID: verb, REL_OP: ">", RIGHT_ID: in, RIGHT_ATTRS: {LOWER: in}}
          - {LEFT_ID: in, REL_OP: ">", RIGHT_ID: place, RIGHT_ATTRS: {DEP: pobj}}
        examples:
          - {text: "Ada was born in London.", subject: Ada, object: London}

A `tokens:` pattern (spaCy Matcher format) instead of `dependency:` names its anchors by element index.
Errors name the file, the line, the pattern id and the field at fault.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kgpipe.errors import InputError

if TYPE_CHECKING:
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

PATTERN_SUFFIXES = (".yaml", ".yml")
DEPENDENCY_KEYS = ("RIGHT_ID", "RIGHT_ATTRS", "LEFT_ID", "REL_OP")


class Side(BaseModel):
    """One end of the relation: the pattern node it is read from, and the entity labels it may have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    anchor: str | int
    labels: tuple[str, ...] = Field((), description="allowed entity labels; empty allows any entity")


class PatternExample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    subject: str
    object: str


class RelationPattern(BaseModel):
    """One pattern as written in a pattern file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    relation: str = Field(min_length=1)
    subject: Side
    object: Side
    confidence: float = Field(0.7, ge=0.0, le=1.0)
    dependency: tuple[dict[str, Any], ...] | None = None
    tokens: tuple[dict[str, Any], ...] | None = None
    description: str | None = None
    examples: tuple[PatternExample, ...] = ()
    stats: dict[str, Any] | None = None  # learned patterns: support and training precision

    @property
    def kind(self) -> str:
        return "dependency" if self.dependency is not None else "tokens"


@dataclass(frozen=True)
class LoadedPattern:
    pattern: RelationPattern
    file: str
    line: int | None


class PatternLibrary:
    """Patterns from one or more files, ids unique across them."""

    def __init__(self, patterns: Sequence[LoadedPattern] = ()) -> None:
        self.loaded = list(patterns)
        self.by_id = {p.pattern.id: p for p in self.loaded}

    @property
    def patterns(self) -> list[RelationPattern]:
        return [p.pattern for p in self.loaded]

    def __len__(self) -> int:
        return len(self.loaded)

    @property
    def relations(self) -> list[str]:
        return sorted({p.pattern.relation for p in self.loaded})

    def uses_attribute(self, attr: str) -> bool:
        """Whether any pattern constrains tokens by attr (e.g. LEMMA, so the lemmatizer is needed)."""
        for p in self.patterns:
            nodes = [d.get("RIGHT_ATTRS", {}) for d in p.dependency] if p.dependency else list(p.tokens or ())
            if any(attr in node for node in nodes):
                return True
        return False


# --- loading and validation -------------------------------------------------------------------------


def pattern_files(paths: Iterable[Path]) -> list[Path]:
    """Pattern files from a list of files and folders (folders: every *.yaml / *.yml inside, sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in PATTERN_SUFFIXES and p.is_file()))
        else:
            files.append(path)
    return files


def load_patterns(paths: Iterable[Path], *, display: Any = str) -> PatternLibrary:
    """Load and validate pattern files and folders; `display(path)` is how a file is named in errors."""
    loaded: list[LoadedPattern] = []
    seen: dict[str, LoadedPattern] = {}
    for path in pattern_files(paths):
        for item in load_pattern_file(path, display=display(path)):
            first = seen.get(item.pattern.id)
            if first is not None:
                raise InputError(f"pattern '{item.pattern.id}': field 'id': duplicate id "
                                 f"(first defined in {first.file}:{first.line})", file=item.file,
                                 line=item.line, hint="give every pattern a unique id")
            seen[item.pattern.id] = item
            loaded.append(item)
    return PatternLibrary(loaded)


def load_pattern_file(path: Path, *, display: str | None = None) -> list[LoadedPattern]:
    from kgpipe.config import PATTERN_FILE_LIMITS, read_yaml_with_lines

    name = display or str(path)
    data, lines = read_yaml_with_lines(path, what="pattern file", error=InputError, display=name,
                                       not_found_hint="check the patterns dep of the extract stage",
                                       limits=PATTERN_FILE_LIMITS)
    if data is None:
        return []
    if isinstance(data, list):  # a bare list of patterns is accepted too
        data, lines = {"patterns": data}, {("patterns", *k): v for k, v in lines.items()}
    if not isinstance(data, dict) or not isinstance(data.get("patterns", []), list):
        raise InputError("a pattern file is a mapping with a 'patterns:' list", file=name, line=1)
    unknown = sorted(set(data) - {"patterns", "version", "description"})
    if unknown:
        raise InputError(f"unknown top-level key '{unknown[0]}' (expected patterns, version, description)",
                         file=name, line=lines.get((unknown[0],)))
    result = []
    for index, raw in enumerate(data.get("patterns") or []):
        line = lines.get(("patterns", index))
        pattern_id: str = raw["id"] if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"#{index + 1}"

        def fail(field: str, message: str, loc: tuple[Any, ...] = (), *, _id: str = pattern_id,
                 _index: int = index, _line: int | None = line) -> InputError:
            where = next((lines[("patterns", _index, *loc[:n])] for n in range(len(loc), 0, -1)
                          if ("patterns", _index, *loc[:n]) in lines), _line)
            return InputError(f"pattern '{_id}': field '{field}': {message}", file=name, line=where,
                              hint="see kgpipe/nlp/patterns.py or pipelines/patterns/ for the format")

        if not isinstance(raw, dict):
            raise fail("(pattern)", "each pattern is a mapping with id, relation, subject, object and "
                                    "dependency or tokens")
        try:
            pattern = RelationPattern.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = tuple(error["loc"])
            raise fail(_field_name(loc), error["msg"], loc) from None
        check_pattern(pattern, fail)
        result.append(LoadedPattern(pattern, name, line))
    return result


def _field_name(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(pattern)"


def check_pattern(pattern: RelationPattern, fail: Any) -> None:
    """Structural checks beyond the schema; `fail(field, message, loc)` returns the error to raise."""
    from spacy.schemas import validate_token_pattern

    if (pattern.dependency is None) == (pattern.tokens is None):
        raise fail("dependency", "give exactly one of 'dependency' (DependencyMatcher) or 'tokens' (Matcher)")
    if pattern.subject.anchor == pattern.object.anchor:
        raise fail("object.anchor", "subject and object must be different anchors", ("object", "anchor"))
    if pattern.dependency is not None:
        if not pattern.dependency:
            raise fail("dependency", "empty pattern", ("dependency",))
        valid_ops = _dependency_operators()
        declared: list[str] = []
        for j, node in enumerate(pattern.dependency):
            loc = ("dependency", j)
            unknown = sorted(set(node) - set(DEPENDENCY_KEYS))
            if unknown:
                raise fail(f"dependency[{j}].{unknown[0]}", f"unknown key (expected {', '.join(DEPENDENCY_KEYS)})",
                           (*loc, unknown[0]))
            right = node.get("RIGHT_ID")
            if not isinstance(right, str) or not right:
                raise fail(f"dependency[{j}].RIGHT_ID", "missing or not a string", loc)
            if right in declared:
                raise fail(f"dependency[{j}].RIGHT_ID", f"'{right}' is declared twice", (*loc, "RIGHT_ID"))
            if j == 0:
                if "LEFT_ID" in node or "REL_OP" in node:
                    raise fail("dependency[0]", "the first node is the root: RIGHT_ID and RIGHT_ATTRS only", loc)
            else:
                left = node.get("LEFT_ID")
                if left not in declared:
                    raise fail(f"dependency[{j}].LEFT_ID", f"'{left}' is not the RIGHT_ID of an earlier node",
                               (*loc, "LEFT_ID"))
                if node.get("REL_OP") not in valid_ops:
                    raise fail(f"dependency[{j}].REL_OP", f"'{node.get('REL_OP')}' is not one of "
                               f"{' '.join(valid_ops)}", (*loc, "REL_OP"))
            attrs = node.get("RIGHT_ATTRS", {})
            if not isinstance(attrs, dict):
                raise fail(f"dependency[{j}].RIGHT_ATTRS", "must be a mapping of token attributes",
                           (*loc, "RIGHT_ATTRS"))
            errors = _node_errors(json.dumps(attrs, sort_keys=True))
            if errors:
                raise fail(f"dependency[{j}].RIGHT_ATTRS{_spacy_field(errors[0], skip_index=True)}",
                           _spacy_message(errors[0]), (*loc, "RIGHT_ATTRS"))
            declared.append(right)
        for side in ("subject", "object"):
            anchor = getattr(pattern, side).anchor
            if anchor not in declared:
                raise fail(f"{side}.anchor", f"'{anchor}' is not a RIGHT_ID of the dependency pattern "
                           f"({', '.join(declared)})", (side, "anchor"))
    else:
        tokens = pattern.tokens or ()
        if not tokens:
            raise fail("tokens", "empty pattern", ("tokens",))
        errors = validate_token_pattern(list(tokens))
        if errors:
            raise fail(f"tokens{_spacy_field(errors[0])}", _spacy_message(errors[0]), ("tokens",))
        for side in ("subject", "object"):
            anchor = getattr(pattern, side).anchor
            if not isinstance(anchor, int) or not 0 <= anchor < len(tokens):
                raise fail(f"{side}.anchor", f"'{anchor}' is not an index of the tokens pattern "
                           f"(0 to {len(tokens) - 1})", (side, "anchor"))


@functools.lru_cache(maxsize=4096)
def _node_errors(attrs_json: str) -> list[str]:
    """spaCy's validation of one node's token attributes (learned libraries repeat the same few hundred)."""
    from spacy.schemas import validate_token_pattern

    return validate_token_pattern([json.loads(attrs_json)])


_SPACY_LOC = re.compile(r"^\[pattern -> (\d+)((?: -> [^\]]+)*)\]\s*(.*)$")


def _spacy_field(error: str, *, skip_index: bool = False) -> str:
    match = _SPACY_LOC.match(error)
    if not match:
        return ""
    parts = [p for p in match.group(2).split(" -> ") if p]
    keys = "".join(f".{p}" for p in parts[:1])  # the attribute; deeper parts are pydantic internals
    return keys if skip_index else f"[{match.group(1)}]{keys}"


def _spacy_message(error: str) -> str:
    match = _SPACY_LOC.match(error)
    return match.group(3) if match else error


@functools.lru_cache(maxsize=1)
def _dependency_operators() -> tuple[str, ...]:
    from spacy.matcher import DependencyMatcher
    from spacy.vocab import Vocab

    return tuple(DependencyMatcher(Vocab())._ops)


def dump_patterns(patterns: Iterable[RelationPattern], path: Path, *, header: str = "") -> None:
    """Write a pattern file (used by `kgpipe patterns learn`)."""
    from kgpipe.atomic import atomic_write_text

    items = [p.model_dump(mode="json", exclude_none=True, exclude_defaults=False) for p in patterns]
    for item in items:
        if not item.get("examples"):
            item.pop("examples", None)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    body = yaml.safe_dump({"version": 1, "patterns": items}, sort_keys=False, allow_unicode=True, width=120)
    atomic_write_text(path, comment + body)


# --- matching -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatternMatch:
    """A pattern fired: the tokens read as its subject and object anchors."""

    pattern: RelationPattern
    subject_token: int
    object_token: int


class RelationMatcher:
    """A library compiled into a path index, spaCy DependencyMatchers and one Matcher over a vocab.

    Dependency patterns shaped as a path between their anchors go to a PathIndex (kgpipe.nlp.paths),
    which tests each node constraint once per Doc and walks the parse between candidate anchors; the
    others (extra nodes off the path, operators other than `>`) go to DependencyMatchers as follows.

    spaCy's DependencyMatcher costs time per pattern node and token, whether or not the pattern can
    match. So dependency patterns are indexed by a word they require (the rarest LEMMA/LOWER/ORTH
    constraint of any node: "bear" for born_in, "capital" for capital_of), one DependencyMatcher per
    trigger, and a Doc is only shown to the matchers whose trigger words it contains. Patterns without
    any word constraint (learned back-off patterns) are grouped by the set of dependency labels they
    require and run only on Docs that have all of them; the variants binding an anchor to a relative pronoun run only
    on Docs with a relative clause whose subject is a relative pronoun.
    """

    def __init__(self, vocab: Vocab, library: PatternLibrary, stop_words: Iterable[str] = (), *,
                 path_index: bool = True) -> None:
        from spacy.matcher import DependencyMatcher, Matcher

        from kgpipe.nlp.paths import PathIndex, path_of

        self.library = library
        # path-shaped patterns (all learned ones, most hand-written ones) are matched by walking the parse
        # between candidate anchors (kgpipe.nlp.paths); path_index=False leaves every pattern to spaCy's
        # DependencyMatcher (the tests compare both)
        self.paths = PathIndex(vocab)
        stop = frozenset(w.lower() for w in stop_words)
        # (trigger word constraint or None, relative-pronoun variants?) -> a DependencyMatcher
        self.triggered: dict[tuple[tuple[str, frozenset[str]] | None, bool], Any] = {}
        self.token_matcher = Matcher(vocab)
        self.by_key: dict[int, tuple[RelationPattern, int, int]] = {}
        for index, pattern in enumerate(library.patterns):
            key = vocab.strings.add(f"kgpipe_pattern_{index}")
            if pattern.dependency is not None:
                ids = [node["RIGHT_ID"] for node in pattern.dependency]
                anchors = {pattern.subject.anchor, pattern.object.anchor}
                variants = _anchor_variants(pattern.dependency, anchors)
                self.by_key[key] = (pattern, ids.index(pattern.subject.anchor), ids.index(pattern.object.anchor))
                if path_index and path_of(pattern.dependency, pattern.subject.anchor, pattern.object.anchor):
                    for variant in variants:  # the variants differ in node attributes only
                        self.paths.add(variant, pattern.subject.anchor, pattern.object.anchor, key)
                    continue
                trigger = _trigger(pattern.dependency, stop) or _required_deps(pattern.dependency)
                # the relative-pronoun variants only run on Docs that have a relative pronoun
                for group, group_variants in (((trigger, False), variants[:1]), ((trigger, True), variants[1:])):
                    if group_variants:
                        if group not in self.triggered:
                            self.triggered[group] = DependencyMatcher(vocab)
                        self.triggered[group].add(key, group_variants)
            else:
                self.token_matcher.add(key, [list(pattern.tokens or ())], greedy="LONGEST")
                self.by_key[key] = (pattern, int(pattern.subject.anchor), int(pattern.object.anchor))
        strings = vocab.strings
        self._hashes = {trigger: frozenset(strings.add(v) for v in trigger[1])
                        for trigger, _ in self.triggered if trigger is not None}
        self._pronoun_tags = frozenset(strings.add(t) for t in RELATIVE_PRONOUN["TAG"]["IN"])
        self._subject_deps = frozenset(strings.add(d) for d in SUBJECT_DEPS)
        self._relcl = strings.add("relcl")

    def _has_relative_clause_subject(self, table: Any) -> bool:
        """Whether a relative pronoun is the subject of a relative clause (columns TAG, DEP, HEAD at 3-5)."""
        import numpy as np

        candidates = np.isin(table[:, 3], list(self._pronoun_tags)) & np.isin(table[:, 4], list(self._subject_deps))
        for i in np.flatnonzero(candidates).tolist():
            head_index = i + int(table[i, 5].astype(np.int64))  # HEAD is a signed offset stored as uint64
            if 0 <= head_index < len(table) and table[head_index, 4] == self._relcl:
                return True
        return False

    def __call__(self, doc: Doc) -> list[PatternMatch]:
        """Matches in doc: dependency anchors bound to entity tokens or relative pronouns."""
        found: list[PatternMatch] = []
        matchers = []
        if self.triggered and len(doc):
            # one C-level pass over the Doc: word hashes per attribute, and relative-clause subjects
            from spacy.attrs import DEP, HEAD, LEMMA, LOWER, ORTH, TAG

            table = doc.to_array([LEMMA, LOWER, ORTH, TAG, DEP, HEAD])
            words = {"LEMMA": set(table[:, 0].tolist()), "LOWER": set(table[:, 1].tolist()),
                     "ORTH": set(table[:, 2].tolist())}
            deps = set(table[:, 4].tolist())
            pronoun = self._has_relative_clause_subject(table)
            matchers = [m for (trigger, needs_pronoun), m in self.triggered.items()
                        if (trigger is None
                            or (self._hashes[trigger] <= deps if trigger[0] == ALL_DEPS
                                else not words[trigger[0]].isdisjoint(self._hashes[trigger])))
                        and (pronoun or not needs_pronoun)]
        for key, subject, obj in self.paths(doc):
            found.append(PatternMatch(self.by_key[key][0], subject, obj))
        for matcher in matchers:
            for key, token_ids in matcher(doc):
                pattern, s, o = self.by_key[key]
                found.append(PatternMatch(pattern, token_ids[s], token_ids[o]))
        if len(self.token_matcher):
            aligned: Any = self.token_matcher(doc, with_alignments=True)  # 4-tuples; the stubs say 3
            for key, start, _end, alignment in aligned:
                pattern, s, o = self.by_key[key]
                first = next((start + k for k, element in enumerate(alignment) if element == s), None)
                second = next((start + k for k, element in enumerate(alignment) if element == o), None)
                if first is not None and second is not None:
                    found.append(PatternMatch(pattern, first, second))
        return found


def _trigger(nodes: Sequence[dict[str, Any]], stop_words: frozenset[str]) -> tuple[str, frozenset[str]] | None:
    """The word constraint a pattern's match needs that is likely rarest in text: among the nodes'
    LEMMA/LOWER/ORTH constraints (a value or an IN list), the one with the smallest share of stop words,
    then the fewest values. None when no node constrains a word."""
    best: tuple[tuple[float, int], str, frozenset[str]] | None = None
    for node in nodes:
        attrs = node.get("RIGHT_ATTRS") or {}
        for attr in ("LEMMA", "LOWER", "ORTH"):
            value = attrs.get(attr)
            if isinstance(value, str):
                values = frozenset([value])
            elif isinstance(value, dict) and set(value) == {"IN"} and value["IN"]:
                values = frozenset(str(v) for v in value["IN"])
            else:
                continue
            rank = (sum(v.lower() in stop_words for v in values) / len(values), len(values))
            if best is None or rank < best[0]:
                best = (rank, attr, values)
    return None if best is None else (best[1], best[2])


ALL_DEPS = "DEP (all of)"


def _required_deps(nodes: Sequence[dict[str, Any]]) -> tuple[str, frozenset[str]] | None:
    """For a pattern without word constraints: the dependency labels its nodes require (single values),
    all of which a Doc must have for the pattern to match; None when there are none."""
    deps = frozenset(dep for node in nodes if isinstance(dep := (node.get("RIGHT_ATTRS") or {}).get("DEP"), str))
    return (ALL_DEPS, deps) if deps else None


RELATIVE_PRONOUN = {"TAG": {"IN": ["WP", "WDT"]}}
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})


def _anchor_variants(nodes: Sequence[dict[str, Any]], anchors: set[Any]) -> list[list[dict[str, Any]]]:
    """The pattern with its anchors bound to entity tokens, plus, for each subject-position anchor below
    the root, a variant where that anchor is a relative pronoun ("Einstein, who was born in Ulm"; the
    extractor resolves it to the noun the clause modifies).

    Anchors only ever bind to mention heads; saying so to the matcher matters for speed, as an anchor
    node without attributes would match every token.
    """
    def bound(node: dict[str, Any], constraint: dict[str, Any]) -> dict[str, Any]:
        attrs = dict(node.get("RIGHT_ATTRS") or {})
        if constraint is entity and "ENT_TYPE" in attrs:  # the pattern's own entity constraint stands
            return node
        return {**node, "RIGHT_ATTRS": {**attrs, **constraint}}

    entity = {"ENT_TYPE": {"NOT_IN": [""]}}
    variants = [[bound(n, entity) if n["RIGHT_ID"] in anchors else n for n in nodes]]
    for k, node in enumerate(nodes):
        attrs = node.get("RIGHT_ATTRS") or {}
        dep = attrs.get("DEP")
        deps = set(dep["IN"]) if isinstance(dep, dict) and "IN" in dep else {dep} if isinstance(dep, str) else set()
        if k > 0 and node["RIGHT_ID"] in anchors and "ENT_TYPE" not in attrs and (
                dep is None or deps & SUBJECT_DEPS):
            variants.append([bound(n, RELATIVE_PRONOUN if j == k else entity) if n["RIGHT_ID"] in anchors else n
                             for j, n in enumerate(nodes)])
    return variants


