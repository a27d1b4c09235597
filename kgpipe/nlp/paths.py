"""Matching path-shaped dependency patterns by walking the parse between candidate anchors.

A DependencyMatcher pattern whose nodes all hang off each other by `>` (direct head-to-child) and all lie on
the way from the subject anchor to the object anchor describes one path of the parse tree: up from the
subject to a top node, down to the object. Learned patterns are all of this shape, and so are most
hand-written ones. spaCy's DependencyMatcher finds matches by combining the candidate tokens of every node,
pattern by pattern, which with some thousand learned back-off patterns (nodes constrained by a dependency
label alone) costs hundreds of milliseconds a sentence. In a tree there is only one path between two tokens,
so here the work is turned around: each distinct node constraint is tested once per Doc (those made of plain
values and IN lists by table lookup on `Doc.to_array`, any other through one spaCy Matcher holding a
single-token pattern per constraint), and for every ordered pair of tokens that can be anchors the path
between them is looked up in a trie of the patterns' constraints.

Matches are those of the DependencyMatcher with distinct tokens per node (the path is simple, its top node
the lowest common ancestor of the anchors); `tests/test_extract_patterns.py` checks that both agree.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spacy.tokens import Doc
    from spacy.vocab import Vocab


def path_of(nodes: Sequence[Mapping[str, Any]], subject: Any, obj: Any) -> tuple[Any, list[Any], list[Any]] | None:
    """(top node id, node ids from below the top down to the subject, the same to the object) when the
    pattern is a path between its anchors joined by `>` only; None for any other shape (extra nodes off the
    path, other operators), which stays with spaCy's DependencyMatcher."""
    if not nodes or "LEFT_ID" in nodes[0]:
        return None
    top = nodes[0]["RIGHT_ID"]
    parent: dict[Any, Any] = {}
    for node in nodes[1:]:
        if node.get("REL_OP") != ">" or node["RIGHT_ID"] in parent or node["RIGHT_ID"] == top:
            return None
        parent[node["RIGHT_ID"]] = node["LEFT_ID"]

    def down_to(anchor: Any) -> list[Any] | None:
        chain: list[Any] = []
        while anchor != top:
            if anchor not in parent or len(chain) > len(nodes):
                return None
            chain.append(anchor)
            anchor = parent[anchor]
        return chain[::-1]

    to_subject, to_object = down_to(subject), down_to(obj)
    if to_subject is None or to_object is None or subject == obj:
        return None
    on_path = {top, *to_subject, *to_object}
    if len(on_path) != len(nodes) or len(on_path) != 1 + len(to_subject) + len(to_object):
        return None  # a node off the path, or both branches through the same child of the top
    return top, to_subject, to_object


LEAF = -1  # the key under which a trie node keeps the patterns that end there
ENT_ANY = "ENT_ANY"  # pseudo-attribute of the constraint ENT_TYPE NOT_IN [""]: the token is inside an entity
EQUALITY_ATTRS = frozenset({"ORTH", "LOWER", "NORM", "LEMMA", "POS", "TAG", "DEP", "ENT_TYPE"})


def _equalities(attrs: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]] | None:
    """A node constraint as (attribute, allowed values) pairs when every attribute is one of EQUALITY_ATTRS
    with a string or an IN list of strings (or ENT_TYPE NOT_IN [""]); None otherwise."""
    items = []
    for attr, value in sorted(attrs.items()):
        if attr not in EQUALITY_ATTRS:
            return None
        if isinstance(value, str):
            items.append((attr, (value,)))
        elif isinstance(value, dict) and set(value) == {"IN"} and all(isinstance(v, str) for v in value["IN"]):
            items.append((attr, tuple(value["IN"])))
        elif attr == "ENT_TYPE" and value == {"NOT_IN": [""]}:
            items.append((ENT_ANY, ("",)))
        else:
            return None
    return sorted(items)


class PathIndex:
    """Path-shaped dependency patterns, matched by the tree path between candidate anchor tokens.

    Patterns are kept in one trie per pair of branch lengths, keyed by the constraint ids of their nodes in
    the order subject anchor, object anchor, top, then the inner nodes of each branch: a path is looked up
    by walking the trie along the constraints its tokens satisfy, so that the anchors, the most selective
    nodes, rule out most patterns first and no pattern is tested on its own.
    """

    def __init__(self, vocab: Vocab) -> None:
        from spacy.matcher import Matcher

        self._vocab = vocab
        self._matcher = Matcher(vocab)
        self._constraints: dict[str, int] = {}     # canonical JSON of RIGHT_ATTRS -> constraint id
        self._match_keys: dict[int, int] = {}      # Matcher key -> constraint id
        # constraints that are equalities: attributes -> their values as Doc.to_array numbers -> constraint ids
        self._tables: dict[tuple[str, ...], dict[tuple[int, ...], list[int]]] = {}
        self._anchor_constraints: set[int] = set()
        self._tries: dict[tuple[int, int], dict[int, Any]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _constraint(self, attrs: Mapping[str, Any]) -> int:
        canonical = json.dumps(attrs, sort_keys=True)
        found = self._constraints.get(canonical)
        if found is None:
            found = self._constraints[canonical] = len(self._constraints)
            items = _equalities(attrs)
            if items is None:  # anything but plain values, IN lists and "is an entity": spaCy's Matcher
                key = self._vocab.strings.add(f"kgpipe_path_node_{found}")
                self._matcher.add(key, [[dict(attrs)]])
                self._match_keys[key] = found
            else:
                table = self._tables.setdefault(tuple(attr for attr, _ in items), defaultdict(list))
                for values in itertools.product(*(self._codes(attr, v) for attr, v in items)):
                    table[values].append(found)
        return found

    def _codes(self, attr: str, values: tuple[str, ...]) -> list[int]:
        """The numbers Doc.to_array gives for these values of attr (POS: the part-of-speech id, other string
        attributes: the string's hash; ENT_ANY: 1, a token inside an entity)."""
        if attr == ENT_ANY:
            return [1]
        if attr == "POS":
            from spacy.parts_of_speech import IDS

            return [IDS[v] for v in values if v in IDS]
        return [self._vocab.strings.add(v) for v in values]

    def _satisfied(self, doc: Doc) -> tuple[dict[int, set[int]], list[int]]:
        """token -> the constraint ids it satisfies, and every token's head index."""
        import numpy as np
        from spacy.attrs import HEAD, IDS

        columns = sorted({a for signature in self._tables for a in signature if a != ENT_ANY} | {"ENT_TYPE"})
        array = doc.to_array([IDS[a] for a in columns] + [HEAD])  # uint64: string hashes as the StringStore's
        values = {a: array[:, k].tolist() for k, a in enumerate(columns)}
        values[ENT_ANY] = (array[:, columns.index("ENT_TYPE")] != 0).astype(np.int64).tolist()
        heads = (np.arange(len(doc)) + array[:, -1].astype(np.int64)).tolist()  # HEAD: signed offset to the head
        satisfies: dict[int, set[int]] = defaultdict(set)
        for signature, table in self._tables.items():
            keys = zip(*(values[a] for a in signature), strict=True) if signature else [()] * len(doc)
            for i, key in enumerate(keys):
                ids = table.get(key)
                if ids:
                    satisfies[i].update(ids)
        if len(self._matcher):
            for match_key, start, _end in self._matcher(doc):
                satisfies[start].add(self._match_keys[match_key])
        return satisfies, heads

    @staticmethod
    def _order(top: Any, to_subject: Sequence[Any], to_object: Sequence[Any]) -> list[Any]:
        """Nodes (or tokens) of a path in trie order: subject anchor, object anchor, top, inner nodes."""
        return [to_subject[-1] if to_subject else top, to_object[-1] if to_object else top, top,
                *to_subject[:-1], *to_object[:-1]]

    def add(self, nodes: Sequence[Mapping[str, Any]], subject: Any, obj: Any, payload: Any) -> bool:
        """Index one pattern (a list of DependencyMatcher nodes) if it is path-shaped; False if it is not."""
        shape = path_of(nodes, subject, obj)
        if shape is None:
            return False
        attrs = {node["RIGHT_ID"]: node.get("RIGHT_ATTRS") or {} for node in nodes}
        top, to_subject, to_object = shape
        ids = [self._constraint(attrs[n]) for n in self._order(top, to_subject, to_object)]
        self._anchor_constraints.update(ids[:2])
        trie = self._tries.setdefault((len(to_subject), len(to_object)), {})
        for constraint in ids:
            trie = trie.setdefault(constraint, {})
        trie.setdefault(LEAF, []).append(payload)
        self._size += 1
        return True

    def __call__(self, doc: Doc) -> Iterator[tuple[Any, int, int]]:
        """(payload, subject token index, object token index) for every pattern matched in doc."""
        if not self._tries or not len(doc):
            return
        satisfies, heads = self._satisfied(doc)
        anchors = sorted(t for t, held in satisfies.items() if not held.isdisjoint(self._anchor_constraints))
        # No pattern's branch is longer than these, so an anchor's ancestors further up cannot be the top
        # of a match: walking only that far keeps a deep parse (a hostile run-on "sentence") linear.
        up_limit = max(n for n, _ in self._tries)
        down_limit = max(n for _, n in self._tries)
        chains = {}
        below: dict[int, list[tuple[int, int]]] = defaultdict(list)  # top -> (anchor, its depth under top)
        for i in anchors:
            chain = [i]
            while len(chain) <= max(up_limit, down_limit) and heads[chain[-1]] != chain[-1]:
                chain.append(heads[chain[-1]])
            chains[i] = chain
            for depth, top in enumerate(chain[:down_limit + 1]):
                below[top].append((i, depth))
        for s in anchors:
            up = chains[s]
            pairs = []
            for up_depth, top in enumerate(up[:up_limit + 1]):
                for o, down_depth in below.get(top, ()):
                    # top is the lowest common ancestor: the branches leave it through different children
                    if o == s or (up_depth and down_depth and up[up_depth - 1] == chains[o][down_depth - 1]):
                        continue
                    pairs.append((o, up_depth, down_depth))
            for o, up_depth, down_depth in sorted(pairs):
                trie = self._tries.get((up_depth, down_depth))
                if trie is not None:
                    top = up[up_depth]
                    to_subject = up[:up_depth][::-1]
                    to_object = chains[o][:down_depth][::-1]
                    held = [satisfies.get(t, ()) for t in self._order(top, to_subject, to_object)]
                    for payload in _walk(trie, held):
                        yield payload, s, o


def _walk(trie: dict[int, Any], held: list[Any]) -> Iterator[Any]:
    """The payloads at the end of every trie path whose k-th key is among held[k]."""
    frontier = [trie]
    for constraints in held:
        frontier = [child for node in frontier for c in constraints if (child := node.get(c)) is not None]
        if not frontier:
            return
    for node in frontier:
        yield from node.get(LEAF, ())
