"""Resolution step 1: records become nodes (records no signal can tell apart) with global ids in content
order, and candidate name pairs become node pairs.

Node ids are positions in the sorted list of node keys, so they do not depend on input order or on how the
records are partitioned; every later step (features, blocking, scoring, clustering) speaks in these ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


_EMPTY_CONTEXT: frozenset[str] = frozenset()
_NO_ATTRIBUTES: Mapping[str, Any] = {}  # shared, never written: millions of nodes without attributes hold one


@dataclass(frozen=True)
class RecordColumns:
    """Records as columns, what the resolution steps read: a column that is None is empty for every record
    (no source, type, anchor, attributes or context). Millions of records as Record objects cost about
    250 bytes each; as columns, the names and little else."""

    ids: Sequence[str]
    names: Sequence[str]
    sources: Sequence[str] | None = None
    types: Sequence[str | None] | None = None
    anchors: Sequence[str | None] | None = None
    attributes: Sequence[Mapping[str, Any]] | None = None
    contexts: Sequence[frozenset[str]] | None = None

    def __post_init__(self) -> None:
        for name in ("sources", "types", "anchors", "attributes", "contexts"):
            column = getattr(self, name)
            if column is not None and len(column) != len(self.names):
                raise ValueError(f"record columns: {name} has {len(column)} rows, names {len(self.names)}")
        if len(self.ids) != len(self.names):
            raise ValueError(f"record columns: ids has {len(self.ids)} rows, names {len(self.names)}")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def of(cls, records: Iterable[Record]) -> RecordColumns:
        """The columns of Record objects (a column nobody sets stays None)."""
        records = list(records)

        def column(name: str, empty: Any) -> list[Any] | None:
            values = [getattr(r, name) for r in records]
            return values if any(v != empty for v in values) else None

        return cls([r.id for r in records], [r.name for r in records], column("source", ""), column("type", None),
                   column("anchor", None), column("attributes", {}), column("context", frozenset()))


def _ranks(values: Sequence[Any]) -> np.ndarray:
    """Each value's rank among the distinct values in sorted order (equal values, equal ranks)."""
    distinct = sorted(set(values))
    rank = {v: i for i, v in enumerate(distinct)}
    return np.fromiter((rank[v] for v in values), dtype=np.int64, count=len(values))


def _last_of_each(node_of: np.ndarray, n_nodes: int) -> np.ndarray:
    """The last record of each node (records in input order)."""
    order = np.argsort(node_of, kind="stable")
    ends = np.cumsum(np.bincount(node_of, minlength=n_nodes)) - 1
    return order[ends]


def build_nodes(records: RecordColumns, keys: Sequence[str], config: ResolutionConfig,
                one_to_one_sources: tuple[str, str] | None = None) -> Nodes:
    """Records with the same normalised name (`keys`, one per record), type, anchor and attributes form one
    node (contexts pooled); under one-to-one linkage every record is a node of its own. Nodes are numbered
    in the order of their keys (key, type, anchor, attributes[, source, id]), names in sorted order; a node's
    source and attributes are those of its last record.

    Columnar: each key column becomes ranks, and the nodes are the distinct rows of ranks, sorted; no tuple
    per record."""
    options = config.normalize.options()
    attr_names = sorted(config.attributes)
    n = len(records)
    columns = [_ranks(keys)]
    if records.types is not None:
        columns.append(_ranks([t or "" for t in records.types]))
    if records.anchors is not None:
        columns.append(_ranks([a or "" for a in records.anchors]))
    if attr_names and records.attributes is not None:
        columns.append(_ranks([repr(tuple(_freeze(attrs.get(a)) for a in attr_names))
                               for attrs in records.attributes]))
    if one_to_one_sources is not None:  # linkage keeps every record apart within its source
        columns.append(_ranks(records.sources if records.sources is not None else [""] * n))
        columns.append(_ranks(records.ids))
    if len(columns) == 1:
        first_key, node_of = np.unique(columns[0], return_index=True, return_inverse=True)[1:]
    else:
        first_key, node_of = np.unique(np.stack(columns, axis=1), axis=0, return_index=True,
                                       return_inverse=True)[1:]
    node_of = node_of.astype(np.int64).ravel()
    n_nodes = len(first_key)
    last = _last_of_each(node_of, n_nodes).tolist()
    node_keys = [keys[i] for i in first_key.tolist()]

    def per_node(column: Sequence[Any] | None, empty: Any) -> tuple[Any, ...]:
        return (empty,) * n_nodes if column is None else tuple(column[i] for i in last)

    contexts: tuple[frozenset[str], ...] = (_EMPTY_CONTEXT,) * n_nodes
    if records.contexts is not None:
        pooled: dict[int, set[str]] = {}
        for node, context in zip(node_of.tolist(), records.contexts, strict=True):
            if context:
                pooled.setdefault(node, set()).update(context)
        contexts = tuple(frozenset(pooled[i]) if i in pooled else _EMPTY_CONTEXT for i in range(n_nodes))
    spellings: dict[str, set[str]] = {}
    for name, key in dict(zip(records.names, keys, strict=True)).items():  # each distinct spelling once
        spellings.setdefault(key, set()).add(name)
    # one spelling per name, chosen by content (not input order): the one with most acronyms written as
    # such wins, since acronym detection needs the capitals ('MIT', not 'Mit')
    raw_of_name = {key: next(iter(texts)) if len(texts) == 1 else min(
        texts, key=lambda t: (-is_acronym_like(t), -len(acronyms_used(t, options)), t))
        for key, texts in spellings.items()}
    names = sorted(raw_of_name)
    name_index = {k: i for i, k in enumerate(names)}
    name_of_node = np.array([name_index[k] for k in node_keys], dtype=np.int64)
    return Nodes(node_of, tuple(node_keys), name_of_node, tuple(names), tuple(raw_of_name[k] for k in names),
                 per_node(records.types, None), per_node(records.anchors, None), per_node(records.sources, ""),
                 contexts, per_node(records.attributes, _NO_ATTRIBUTES))


def node_pairs(name_pairs: np.ndarray, name_of_node: np.ndarray, n_names: int) -> tuple[np.ndarray, np.ndarray]:
    """Expand name pairs ((m, 2) name indices) to node pairs, and add pairs of nodes that share a name.

    In order: the pairs of names with one node each (the common case, and at scale nearly all), then each other
    name pair's nodes crossed, then each name's own node pairs; nodes in ascending order within a name. Arrays
    throughout, no list per name: at 10M mentions there are millions of names."""
    name_of_node = np.asarray(name_of_node, dtype=np.int64)
    by_name = np.argsort(name_of_node, kind="stable")           # nodes grouped by name, ascending within one
    count = np.bincount(name_of_node, minlength=n_names)
    start = np.r_[0, np.cumsum(count)[:-1]]
    first = by_name[np.minimum(start, len(by_name) - 1)] if len(by_name) else start
    u, v = name_pairs[:, 0], name_pairs[:, 1]
    simple = (count[u] == 1) & (count[v] == 1)
    cu, cv = u[~simple], v[~simple]
    crossed = count[cu] * count[cv]                            # node pairs per other name pair, a's nodes outer
    k = np.arange(int(crossed.sum())) - np.repeat(np.cumsum(crossed) - crossed, crossed)
    inner = np.repeat(count[cv], crossed)
    cross_l = by_name[np.repeat(start[cu], crossed) + k // inner] if len(k) else k
    cross_r = by_name[np.repeat(start[cv], crossed) + k % inner] if len(k) else k
    own_l, own_r = [], []
    for name in np.flatnonzero(count > 1).tolist():              # names with several nodes: few
        nodes = by_name[start[name]:start[name] + count[name]]
        i, j = np.triu_indices(len(nodes), 1)
        own_l.append(nodes[i])
        own_r.append(nodes[j])
    return (np.concatenate([first[u[simple]], cross_l, *own_l]).astype(np.int64),
            np.concatenate([first[v[simple]], cross_r, *own_r]).astype(np.int64))


def source_sides(sources: Sequence[str], one_to_one_sources: tuple[str, str]) -> np.ndarray:
    """0 for nodes of the first source, 1 for the others (one-to-one linkage)."""
    return np.array([0 if s == one_to_one_sources[0] else 1 for s in sources], dtype=np.int64)
