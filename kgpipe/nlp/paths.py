"""Matching path-shaped dependency patterns by walking the parse between candidate anchors.

A DependencyMatcher pattern whose nodes all hang off each other by `>` (direct head-to-child) and all lie on
the way from the subject anchor to the object anchor describes one path of the parse tree: up from the
subject to a top node, down to the object. Learned patterns are all of this shape, and so are most
hand-written ones. spaCy's DependencyMatcher finds matches by combining the candidate tokens of every node,
pattern by pattern, which with some thousand learned back-off patterns (nodes constrained by a dependency
label alone) costs hundreds of milliseconds a sentence. In a tree there is only one path between two tokens,
so here the work is turned around: each node constraint is tested once per Doc (one spaCy Matcher holding a
single-token pattern per distinct constraint), and for every ordered pair of tokens that can be anchors the
path between them is looked up among the patterns of the same branch lengths, node by node.

Matches are those of the DependencyMatcher with distinct tokens per node (the path is simple, its top node
the lowest common ancestor of the anchors); `tests/test_extract_patterns.py` checks that both agree.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spacy.tokens import Doc
    from spacy.vocab import Vocab


@dataclass(frozen=True)
class PathShape:
    """A path pattern as constraint ids: the top node, then each branch from below the top down to its
    anchor (empty when that anchor is the top node itself)."""

    top: int
    subject: tuple[int, ...]
    object: tuple[int, ...]


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
        chain = []
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


class PathIndex:
    """Path-shaped dependency patterns, matched by the tree path between candidate anchor tokens."""

    def __init__(self, vocab: Vocab) -> None:
        from spacy.matcher import Matcher

        self._vocab = vocab
        self._matcher = Matcher(vocab)
        self._constraints: dict[str, int] = {}     # canonical JSON of RIGHT_ATTRS -> constraint id
        self._match_keys: dict[int, int] = {}      # Matcher key -> constraint id
        self._anchor_constraints: set[int] = set()
        self._by_lengths: dict[tuple[int, int], list[tuple[PathShape, Any]]] = defaultdict(list)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_lengths.values())

    def _constraint(self, attrs: Mapping[str, Any]) -> int:
        canonical = json.dumps(attrs, sort_keys=True)
        found = self._constraints.get(canonical)
        if found is None:
            found = self._constraints[canonical] = len(self._constraints)
            key = self._vocab.strings.add(f"kgpipe_path_node_{found}")
            self._matcher.add(key, [[dict(attrs)]])
            self._match_keys[key] = found
        return found

    def add(self, nodes: Sequence[Mapping[str, Any]], subject: Any, obj: Any, payload: Any) -> bool:
        """Index one pattern (a list of DependencyMatcher nodes) if it is path-shaped; False if it is not."""
        shape = path_of(nodes, subject, obj)
        if shape is None:
            return False
        attrs = {node["RIGHT_ID"]: node.get("RIGHT_ATTRS") or {} for node in nodes}
        top, to_subject, to_object = shape
        path = PathShape(self._constraint(attrs[top]), tuple(self._constraint(attrs[n]) for n in to_subject),
                         tuple(self._constraint(attrs[n]) for n in to_object))
        self._anchor_constraints.add(path.subject[-1] if path.subject else path.top)
        self._anchor_constraints.add(path.object[-1] if path.object else path.top)
        self._by_lengths[(len(path.subject), len(path.object))].append((path, payload))
        return True

    def __call__(self, doc: Doc) -> Iterator[tuple[Any, int, int]]:
        """(payload, subject token index, object token index) for every pattern matched in doc."""
        if not self._by_lengths or not len(doc):
            return
        holds: dict[int, set[int]] = defaultdict(set)   # constraint id -> tokens that satisfy it
        for key, start, _end in self._matcher(doc):
            holds[self._match_keys[key]].add(start)
        anchors = sorted(set().union(*(holds.get(c, set()) for c in self._anchor_constraints)))
        heads = [token.head.i for token in doc]
        chains, positions = {}, {}
        for i in anchors:
            chain = [i]
            while heads[chain[-1]] != chain[-1]:
                chain.append(heads[chain[-1]])
            chains[i] = chain
            positions[i] = {t: k for k, t in enumerate(chain)}

        def satisfied(ids: tuple[int, ...], tokens: list[int]) -> bool:
            return all(token in holds.get(c, ()) for c, token in zip(ids, tokens, strict=True))

        for s in anchors:
            up = chains[s]
            for o in anchors:
                if o == s:
                    continue
                position = positions[o]
                depth = next((k for k, t in enumerate(up) if t in position), None)
                if depth is None:
                    continue  # different sentences
                top = up[depth]
                to_subject = up[:depth][::-1]
                to_object = chains[o][:position[top]][::-1]
                for path, payload in self._by_lengths.get((len(to_subject), len(to_object)), ()):
                    if (top in holds.get(path.top, ()) and satisfied(path.subject, to_subject)
                            and satisfied(path.object, to_object)):
                        yield payload, s, o
