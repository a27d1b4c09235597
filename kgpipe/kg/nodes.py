"""Resolution step 1: records become nodes (records no signal can tell apart) with global ids in content
order, and candidate name pairs become node pairs.

Node ids are positions in the sorted list of node keys, so they do not depend on input order or on how the
records are partitioned; every later step (features, blocking, scoring, clustering) speaks in these ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kgpipe.kg.normalize import NormalizeOptions, acronyms_used, is_acronym_like, normalize_name
from kgpipe.kg.resolution_config import ResolutionConfig

if TYPE_CHECKING:
    from kgpipe.kg.resolve import Record


@dataclass(frozen=True)
class Nodes:
    """Records reduced to nodes. Per record: `node_of`. Per node (id = position): its normalised name, type,
    anchor, source, pooled context and attributes, and its name's index. Per unique name (sorted): the
    normalised key and one original spelling (for acronym casing)."""

    node_of: np.ndarray                      # int64 node id per record
    keys: tuple[str, ...]                    # normalised name per node
    name_of_node: np.ndarray                 # int64 index into `names` per node
    names: tuple[str, ...]                   # unique normalised names, sorted
    spellings: tuple[str, ...]               # one original spelling per name
    types: tuple[str | None, ...]
    anchors: tuple[str | None, ...]
    sources: tuple[str, ...]
    contexts: tuple[frozenset[str], ...]
    attributes: tuple[Mapping[str, Any], ...]

    def __len__(self) -> int:
        return len(self.keys)

    def nodes_of_name(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.names]
        for node, name in enumerate(self.name_of_node.tolist()):
            out[name].append(node)
        return out

    def anchor_ids(self) -> np.ndarray:
        """An int id per node's anchor (ids in anchor order), -1 where it has none."""
        anchor_names = sorted({a for a in self.anchors if a})
        anchor_id = {a: i for i, a in enumerate(anchor_names)}
        return np.array([anchor_id[a] if a else -1 for a in self.anchors], dtype=np.int64)


def name_keys(texts: Sequence[str], options: NormalizeOptions) -> list[str]:
    """Normalised key of each text (a map: the same spelling recurs, so each is normalised once)."""
    cache: dict[str, str] = {}
    return [cache[t] if t in cache else cache.setdefault(t, normalize_name(t, options)) for t in texts]


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, float) and value != value:
        return None
    return value


def build_nodes(records: Sequence[Record], keys: Sequence[str], config: ResolutionConfig,
                one_to_one_sources: tuple[str, str] | None = None) -> Nodes:
    """Records with the same normalised name (`keys`, one per record), type, anchor and attributes form one
    node (contexts pooled); under one-to-one linkage every record is a node of its own. Nodes are numbered
    in the order of their keys, names in sorted order."""
    options = config.normalize.options()
    attr_names = sorted(config.attributes)
    node_key_of: list[tuple[str, ...]] = []
    for record, key in zip(records, keys, strict=True):
        attrs = repr(tuple(_freeze(record.attributes.get(a)) for a in attr_names)) if attr_names else ""
        node_key: tuple[str, ...] = (key, record.type or "", record.anchor or "", attrs)
        if one_to_one_sources is not None:  # linkage keeps every record apart within its source
            node_key += (record.source, record.id)
        node_key_of.append(node_key)
    unique_keys = sorted(set(node_key_of))  # strings only: content order
    node_index = {k: i for i, k in enumerate(unique_keys)}
    node_of = np.array([node_index[k] for k in node_key_of], dtype=np.int64)
    n_nodes = len(unique_keys)
    contexts: list[set[str]] = [set() for _ in range(n_nodes)]
    node_attrs: list[Mapping[str, Any]] = [{} for _ in range(n_nodes)]
    node_type: list[str | None] = [None] * n_nodes
    node_anchor: list[str | None] = [None] * n_nodes
    node_source = [""] * n_nodes
    spellings: dict[str, set[str]] = {}
    for record, node, key in zip(records, node_of.tolist(), keys, strict=True):
        contexts[node] |= record.context
        node_attrs[node] = record.attributes
        node_type[node] = record.type
        node_anchor[node] = record.anchor
        node_source[node] = record.source
        spellings.setdefault(key, set()).add(record.name)
    # one spelling per name, chosen by content (not input order): the one with most acronyms written as
    # such wins, since acronym detection needs the capitals ('MIT', not 'Mit')
    raw_of_name = {key: next(iter(texts)) if len(texts) == 1 else min(
        texts, key=lambda t: (-is_acronym_like(t), -len(acronyms_used(t, options)), t))
        for key, texts in spellings.items()}
    names = sorted(raw_of_name)
    name_index = {k: i for i, k in enumerate(names)}
    name_of_node = np.array([name_index[k[0]] for k in unique_keys], dtype=np.int64)
    return Nodes(node_of, tuple(k[0] for k in unique_keys), name_of_node, tuple(names),
                 tuple(raw_of_name[k] for k in names), tuple(node_type), tuple(node_anchor), tuple(node_source),
                 tuple(frozenset(c) for c in contexts), tuple(node_attrs))


def node_pairs(name_pairs: np.ndarray, nodes_of_name: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Expand name pairs ((m, 2) name indices) to node pairs, and add pairs of nodes that share a name."""
    single = np.array([len(ns) == 1 for ns in nodes_of_name], dtype=bool)
    first = np.array([ns[0] for ns in nodes_of_name], dtype=np.int64)
    u, v = name_pairs[:, 0], name_pairs[:, 1]
    simple = single[u] & single[v]
    left = [first[u[simple]]]
    right = [first[v[simple]]]
    extra_l: list[int] = []
    extra_r: list[int] = []
    for a, b in zip(u[~simple].tolist(), v[~simple].tolist(), strict=True):
        for x in nodes_of_name[a]:
            for y in nodes_of_name[b]:
                extra_l.append(x)
                extra_r.append(y)
    for name_nodes in nodes_of_name:
        for i, x in enumerate(name_nodes):
            for y in name_nodes[i + 1:]:
                extra_l.append(x)
                extra_r.append(y)
    left.append(np.asarray(extra_l, dtype=np.int64))
    right.append(np.asarray(extra_r, dtype=np.int64))
    return np.concatenate(left), np.concatenate(right)


def source_sides(sources: Sequence[str], one_to_one_sources: tuple[str, str]) -> np.ndarray:
    """0 for nodes of the first source, 1 for the others (one-to-one linkage)."""
    return np.array([0 if s == one_to_one_sources[0] else 1 for s in sources], dtype=np.int64)
