"""The steps of fusion after and around `resolve`: mentions read, anchored to seed entities and made records;
clusters linked to seed ids or minted; entities, triples and the report built. `fuse_graph` calls them in order.

Each step takes and returns typed values (the rows of the entity and triple tables stay plain dicts: they
are the artifact rows). They run in the driver on every engine, except anchoring (a map over chunks of mentions
on the executor) and resolution.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from kgpipe.kg.normalize import NormalizeOptions, normalize_name

if TYPE_CHECKING:
    import pandas as pd

    from kgpipe.engine.base import Executor
    from kgpipe.kg.fusion import FusionConfig
    from kgpipe.kg.link import SeedIndex
    from kgpipe.kg.merge import RelationAligner, TripleMerge
    from kgpipe.kg.resolve import Record, Resolution

Progress = Callable[[str, int, int | None], None]
TypeCompat = Callable[[str | None, str | None], bool]


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def type_compat(parents: Mapping[str, str]) -> TypeCompat:
    """Whether two types are compatible under this hierarchy (a partial of kgpipe.vocab.compatible: it pickles)."""
    from kgpipe.vocab import compatible

    return partial(compatible, parents=parents)


def name_key(options: NormalizeOptions) -> Callable[[str], str]:
    return partial(normalize_name, options=options)


def canonical_label(texts: Counter, key_of: Callable[[str], str], determiners: tuple[str, ...] = ("the", "a", "an")
                    ) -> str:
    """The most frequent spelling of the most frequent normalised name (ties: longer, then alphabetical),
    without a leading determiner ('the Manhattan Project' -> 'Manhattan Project')."""
    by_key: Counter = Counter()
    for text, count in texts.items():
        by_key[key_of(text)] += count
    best_key = min(by_key, key=lambda k: (-by_key[k], -len(k), k))
    spellings = [t for t in texts if key_of(t) == best_key]
    label = min(spellings, key=lambda t: (-texts[t], -len(t), t))
    first, _, rest = label.partition(" ")
    return rest if rest and first.lower() in determiners else label


def _specific_type(candidates: list[str], mention_type: str | None, compatible: TypeCompat,
                   ancestors: Callable[[str], list[str]]) -> str | None:
    """The seed type to show: compatible with what the text says, the most specific, then alphabetical."""
    if not candidates:
        return mention_type
    fitting = [t for t in candidates if mention_type is None or compatible(t, mention_type)] or candidates
    return min(fitting, key=lambda t: (-len(ancestors(t)), t))


# --- mentions -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mention:
    """A mention with a name: its normalised key and its type (kg_type, else its NER label mapped)."""

    id: str
    doc_id: str
    text: str
    key: str
    kg_type: str | None
    start_char: int
    seed_iri: str | None   # chosen by the extractor's gazetteer


def read_mentions(mentions: pd.DataFrame, label_map: Mapping[str, str], options: NormalizeOptions
                  ) -> tuple[list[Mention], int]:
    """The mentions whose text has a normalised name, and how many had none."""
    out = []
    empty = 0
    for row in mentions.to_dict("records"):
        key = normalize_name(row["text"], options)
        if not key:
            empty += 1
            continue
        kg_type = _text_or_none(row.get("kg_type")) or label_map.get(row.get("label") or "")
        out.append(Mention(row["mention_id"], row["doc_id"], row["text"], key, kg_type,
                           int(row.get("start_char") or 0), _text_or_none(row.get("seed_iri"))))
    return out, empty


def document_keys(mentions: Sequence[Mention], context: str) -> dict[str, frozenset[str]]:
    """Names said in each document (context 'document'), else none."""
    keys: dict[str, set[str]] = defaultdict(set)
    if context == "document":
        for mention in mentions:
            keys[mention.doc_id].add(mention.key)
    return {doc: frozenset(k) for doc, k in keys.items()}


def _proximity_context(mention: Mention, doc_mentions: Sequence[Mention], scale: float = 200.0) -> dict[str, float]:
    """Names around a mention in its document, weighted by exp(-distance / scale) in characters: evidence
    fades with distance (about a sentence), so 'the Cavendish Laboratory in Cambridge' outweighs a Harvard
    named earlier in the sentence."""
    out: dict[str, float] = {}
    for other in doc_mentions:
        if other.key == mention.key:
            continue
        weight = math.exp(-abs(other.start_char - mention.start_char) / scale)
        out[other.key] = max(out.get(other.key, 0.0), weight)
    return out


@dataclass(frozen=True)
class MentionAnchors:
    """Per mention: the seed entity its exact name links it to (canonical across seed files), or None; and
    how each link was decided."""

    anchors: tuple[str | None, ...]
    how: dict[str, int]


def anchor_mentions(mentions: Sequence[Mention], index: SeedIndex | None, seed_canonical: Mapping[str, str],
                    compat: TypeCompat, progress: Progress | None = None, executor: Executor | None = None
                    ) -> MentionAnchors:
    """Exact-name links of mentions to seed entities (the gazetteer's choice first; context breaks ties): a map
    over chunks of mentions on the executor (default: this process), the seed index sent once; each chunk
    carries the mentions of its documents, the context a link looks at."""
    from kgpipe.engine.local import LocalExecutor
    from kgpipe.kg import chunking

    if index is None:
        return MentionAnchors((None,) * len(mentions), {})
    executor = executor or LocalExecutor.in_process("resolve")
    by_doc: dict[str, list[Mention]] = defaultdict(list)
    for mention in mentions:
        by_doc[mention.doc_id].append(mention)
    spans = chunking.spans(len(mentions), chunking.MENTIONS)
    items = ((mentions[s], {doc: by_doc[doc] for doc in dict.fromkeys(m.doc_id for m in mentions[s])})
             for s in spans)
    anchors: list[str | None] = []
    how: Counter = Counter()
    for span, (chunk_anchors, chunk_how) in zip(spans, executor.map_tasks(
            anchor_chunk, items, shared=(index, seed_canonical, compat), what="link names to the seed KG"),
            strict=True):
        anchors.extend(chunk_anchors)
        how.update(chunk_how)
        if progress:
            progress("link names to the seed KG", span.stop, len(mentions))
    return MentionAnchors(tuple(anchors), dict(how))


def anchor_chunk(index: SeedIndex, seed_canonical: Mapping[str, str], compat: TypeCompat,
                 chunk: tuple[Sequence[Mention], Mapping[str, Sequence[Mention]]]
                 ) -> tuple[list[str | None], Counter]:
    """The seed anchor of each mention of a chunk and how each link was decided; the chunk: its mentions and
    every mention of their documents (the context that breaks ties). Looks at nothing else, so any chunking
    gives the same anchors."""
    from kgpipe.kg.link import link_exact

    mentions, by_doc = chunk
    anchors: list[str | None] = []
    how: Counter = Counter()
    for mention in mentions:
        gazetteer = [mention.seed_iri] if mention.seed_iri else []
        context: dict[str, float] = {}
        if len(index.candidates(mention.key, mention.kg_type, compat)) > 1:
            context = _proximity_context(mention, by_doc[mention.doc_id])
        link = link_exact(mention.key, mention.kg_type, context, gazetteer, index, compat)
        anchors.append(seed_canonical.get(link.iri, link.iri) if link.iri else None)
        how[link.how] += 1
    return anchors, how


def mention_records(mentions: Sequence[Mention], anchors: Sequence[str | None],
                    doc_keys: Mapping[str, frozenset[str]]) -> list[Record]:
    """Resolution records: a mention's context is the other names of its document."""
    from kgpipe.kg.resolve import Record

    empty: frozenset[str] = frozenset()
    return [Record(m.id, m.text, source=m.doc_id, type=m.kg_type, context=doc_keys.get(m.doc_id, empty) - {m.key},
                   anchor=anchor) for m, anchor in zip(mentions, anchors, strict=True)]


def clusters_of(labels: np.ndarray) -> list[list[int]]:
    """Record positions per cluster label (labels 0..k-1), in record order."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels.tolist()):
        members[label].append(i)
    return [members[k] for k in sorted(members)]


# --- linking ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterLinks:
    """Per cluster: its entity id (a seed IRI or a minted one), its type and its spellings; how clusters were
    linked, and the ids minted."""

    entity_of_cluster: tuple[str, ...]
    cluster_type: tuple[str | None, ...]
    texts_of: tuple[Counter, ...]
    how: dict[str, int]
    minted: tuple[str, ...]


def link_clusters(clusters: Sequence[Sequence[int]], records: Sequence[Record], index: SeedIndex | None,
                  seed_canonical: Mapping[str, str], config: FusionConfig, parents: Mapping[str, str]
                  ) -> ClusterLinks:
    """A cluster's entity: the seed entity its anchor names, else the one it resembles (link_threshold), else a
    minted id from its canonical label."""
    from kgpipe.kg.link import link_by_similarity, mint_ids

    options = config.resolution.normalize.options()
    cluster_iri: list[str | None] = []
    for idx in clusters:
        cluster_anchors = {a for a in (records[i].anchor for i in idx) if a}
        cluster_iri.append(min(cluster_anchors) if cluster_anchors else None)  # the guard keeps one anchor per cluster
    open_clusters = [k for k, iri in enumerate(cluster_iri) if iri is None]
    cluster_type: list[str | None] = []
    for idx in clusters:
        types = Counter(records[i].type for i in idx if records[i].type)
        cluster_type.append(min(types, key=lambda t: (-types[t], t)) if types else None)
    how = Counter(exact=len(clusters) - len(open_clusters))
    if index is not None and open_clusters:
        cluster_names = [sorted({records[i].name for i in clusters[k]}) for k in open_clusters]
        contexts = [frozenset(c for i in clusters[k] for c in records[i].context) for k in open_clusters]
        similar = link_by_similarity(cluster_names, [cluster_type[k] for k in open_clusters], contexts, index,
                                     config.resolution, config.link_threshold, parents)
        for k, (iri, _) in zip(open_clusters, similar, strict=True):
            if iri is not None:
                cluster_iri[k] = seed_canonical.get(iri, iri)
                how["similarity"] += 1
    minted_clusters = [k for k, iri in enumerate(cluster_iri) if iri is None]
    how["minted"] = len(minted_clusters)
    texts_of = [Counter(records[i].name for i in idx) for idx in clusters]
    minted = mint_ids([(canonical_label(texts_of[k], name_key(options), options.determiners), cluster_type[k],
                        min(records[i].id for i in clusters[k])) for k in minted_clusters],
                      config.namespace, options)
    minted_of = dict(zip(minted_clusters, minted, strict=True))
    entity_of_cluster = [iri if iri is not None else minted_of[k] for k, iri in enumerate(cluster_iri)]
    return ClusterLinks(tuple(entity_of_cluster), tuple(cluster_type), tuple(texts_of), dict(how), tuple(minted))


# --- entities -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entities:
    """The entity rows (artifact rows, sorted by id after the triples add theirs), every type of an entity,
    owl:sameAs groups, the entity of each mention and the clusters of each entity."""

    rows: list[dict[str, Any]]
    types: dict[str, list[str]]
    same_as: dict[str, list[str]]
    mention_entity: dict[str, str]
    clusters_of_entity: dict[str, list[int]]


def build_entities(clusters: Sequence[Sequence[int]], records: Sequence[Record], links: ClusterLinks,
                   index: SeedIndex | None, seed_canonical: Mapping[str, str], options: NormalizeOptions,
                   parents: Mapping[str, str]) -> Entities:
    """One row per entity of a cluster or a seed group: label and type from the seed where there is one,
    else from the mentions; aliases by frequency; sources."""
    from kgpipe.vocab import ancestors

    compat = type_compat(parents)
    by_entity: dict[str, list[int]] = defaultdict(list)
    for k, entity_id in enumerate(links.entity_of_cluster):
        by_entity[entity_id].append(k)
    seed_groups: dict[str, list[str]] = defaultdict(list)
    if index is not None:
        for iri in index.entities:
            seed_groups[seed_canonical.get(iri, iri)].append(iri)
    rows: list[dict[str, Any]] = []
    all_types: dict[str, list[str]] = {}
    same_as: dict[str, list[str]] = {}
    mention_entity: dict[str, str] = {}
    for entity_id in sorted(set(by_entity) | set(seed_groups)):
        ks = by_entity.get(entity_id, [])
        texts: Counter = Counter()
        docs: set[str] = set()
        mention_types: Counter = Counter()
        for k in ks:
            texts.update(links.texts_of[k])
            for i in clusters[k]:
                docs.add(records[i].source)
                mention_entity[records[i].id] = entity_id
                if records[i].type:
                    mention_types[records[i].type] += 1
        mention_type = min(mention_types, key=lambda t: (-mention_types[t], t)) if mention_types else None
        seeds = [index.entities[iri] for iri in sorted(seed_groups.get(entity_id, []))] if index else []
        if seeds:
            primary = next((s for s in seeds if s.iri == entity_id), seeds[0])
            label = primary.label
            seed_types = sorted({t for s in seeds for t in s.types})
            kg_type = _specific_type(seed_types, mention_type, compat, partial(ancestors, parents=parents))
            names = [n for s in seeds for n in [s.label, *s.aliases]]
            sources = {src for s in seeds for src in s.sources}
            all_types[entity_id] = seed_types or ([mention_type] if mention_type else [])
            others = sorted(s.iri for s in seeds if s.iri != entity_id)
            if others:
                same_as[entity_id] = others
        else:
            label = canonical_label(texts, name_key(options), options.determiners)
            kg_type = mention_type
            names, sources = [], set()
        alias_counts = Counter({n: 0 for n in names})
        alias_counts.update(texts)
        aliases = sorted((a for a in alias_counts if a != label), key=lambda a: (-alias_counts[a], a))
        rows.append({"id": entity_id, "label": label, "type": kg_type, "aliases": aliases,
                     "seed_iri": entity_id if seeds else None, "mention_count": sum(texts.values()),
                     "sources": sorted(docs | sources)})
    return Entities(rows, all_types, same_as, mention_entity, dict(by_entity))


# --- triples ------------------------------------------------------------------------------------------------


def text_relation_iri(row: Mapping[str, Any]) -> str:
    """A text relation's IRI: the extractor's, else the default map's, else kgpipe's namespace."""
    from kgpipe.vocab import DEFAULT_RELATION_MAP, KGPIPE_RELATION

    return _text_or_none(row.get("relation_iri")) or DEFAULT_RELATION_MAP.get(
        row["relation"], KGPIPE_RELATION + row["relation"])


@dataclass
class MergedTriples:
    """The merged triples (artifact rows), the merge and relation aligner (for the report), text relations
    whose mentions have no entity, and entities only a seed triple names."""

    triples: list[dict[str, Any]]
    merge: TripleMerge
    aligner: RelationAligner
    unknown_mentions: int
    extra_entities: list[dict[str, Any]]


def merge_triples(relation_rows: Sequence[Mapping[str, Any]], seed_triple_rows: Sequence[Mapping[str, Any]],
                  mention_entity: Mapping[str, str], seed_entity_of: Mapping[str, str], known: Mapping[str, str],
                  config: FusionConfig) -> MergedTriples:
    """Text relations and seed triples rewritten onto entity ids, relations aligned, and merged. `known`:
    entity id -> label of the entities built so far; a triple's end outside them becomes an entity row."""
    from kgpipe.kg.merge import RelationAligner, TripleMerge
    from kgpipe.kg.seed import local_name_label

    aligner = RelationAligner({r["relation"] for r in seed_triple_rows},
                              {text_relation_iri(r) for r in relation_rows},
                              by_name=config.align_relations, aliases=config.relation_aliases)
    merge = TripleMerge()
    unknown_mentions = 0
    for row in relation_rows:
        head = mention_entity.get(row["subject_id"])
        tail = mention_entity.get(row["object_id"])
        if head is None or tail is None:
            unknown_mentions += 1
            continue
        merge.add(head, aligner(text_relation_iri(row)), tail, source=row["doc_id"], graph=config.text_graph,
                  confidence=row.get("confidence", 1.0))
    extra: set[str] = set()
    for row in seed_triple_rows:
        head = seed_entity_of.get(row["head"], row["head"])
        tail = seed_entity_of.get(row["tail"], row["tail"])
        extra.update(iri for iri in (head, tail) if iri not in known)
        merge.add(head, aligner(row["relation"]), tail, source=row["source"], graph=row["source"], confidence=1.0)
    extra_rows: list[dict[str, Any]] = [
        {"id": iri, "label": local_name_label(iri), "type": None, "aliases": [], "seed_iri": iri, "mention_count": 0,
         "sources": []} for iri in sorted(extra)]
    return MergedTriples(merge.rows(), merge, aligner, unknown_mentions, extra_rows)


# --- report -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FusionInputs:
    """Counts of what fusion read, and the rows the report looks at again."""

    mentions: int
    mentions_without_name: int
    documents: int
    relation_rows: Sequence[Mapping[str, Any]]
    seed_rows: Sequence[Mapping[str, Any]]
    seed_triple_rows: Sequence[Mapping[str, Any]]


def fusion_report(inputs: FusionInputs, resolution: Resolution, anchors: MentionAnchors, links: ClusterLinks,
                  clusters: Sequence[Sequence[int]], records: Sequence[Record], entities: Entities,
                  rows: Sequence[Mapping[str, Any]], merged: MergedTriples, index: SeedIndex | None,
                  seed_canonical: Mapping[str, str], seed_entity_of: Mapping[str, str], config: FusionConfig,
                  run_dependent: Sequence[str]) -> dict[str, Any]:
    """The fusion report: inputs, resolution statistics (without timings), linking, entities, merges,
    triples, overlap of the source graphs, functional conflicts and owl:sameAs groups. rows: every entity row."""
    from kgpipe.kg.merge import functional_conflicts, graph_overlaps, relation_key

    merge, triples = merged.merge, merged.triples
    labels = {e["id"]: e["label"] for e in rows}
    graph_nodes: dict[str, set[str]] = defaultdict(set)
    graph_nodes[config.text_graph] = {e for e, ks in entities.clusters_of_entity.items() if ks}
    for iri, info in (index.entities.items() if index else []):
        for src in info.sources:
            graph_nodes[src].add(seed_entity_of[iri])
    for row in inputs.seed_triple_rows:
        graph_nodes[row["source"]] |= {seed_entity_of.get(row["head"], row["head"]),
                                       seed_entity_of.get(row["tail"], row["tail"])}
    graph_edges = {g: merge.edges_of(g) for g in graph_nodes}
    wanted = {relation_key(r) for r in config.functional_relations}
    functional = {r for r in {t["relation"] for t in triples} if relation_key(r) in wanted}
    merged_clusters = [k for k, idx in enumerate(clusters) if len({records[i].name for i in idx}) > 1]
    entity_of_cluster, texts_of = links.entity_of_cluster, links.texts_of
    largest = sorted(range(len(clusters)), key=lambda k: (-len(clusters[k]), entity_of_cluster[k]))
    relation_rows, seed_triple_rows = inputs.relation_rows, inputs.seed_triple_rows
    counts = {
        "mentions": inputs.mentions, "mentions_without_name": inputs.mentions_without_name,
        "documents": inputs.documents, "relations": len(relation_rows),
        "seed_entities": len(inputs.seed_rows), "seed_triples": len(seed_triple_rows),
    }
    return {
        "inputs": counts,
        "resolution": {k: v for k, v in resolution.stats.items() if k not in run_dependent},
        "linking": {"names_to_seed": dict(sorted(anchors.how.items())),
                    "clusters": dict(sorted(links.how.items())),
                    "seed_entities_merged_across_files": len(seed_canonical),
                    "relations_aligned": merged.aligner.mapping(
                        [r["relation"] for r in seed_triple_rows] + [text_relation_iri(r) for r in relation_rows])},
        "entities": {"total": len(rows), "from_text": sum(1 for e in rows if e["mention_count"]),
                     "linked_to_seed": sum(1 for e in rows if e["mention_count"] and e["seed_iri"]),
                     "seed_only": sum(1 for e in rows if not e["mention_count"]),
                     "minted": len(links.minted)},
        "merges": {"clusters": len(clusters), "clusters_with_several_names": len(merged_clusters),
                   "mentions_merged": sum(len(clusters[k]) for k in merged_clusters),
                   "largest": [{"id": entity_of_cluster[k], "label": labels.get(entity_of_cluster[k]),
                                "mentions": len(clusters[k]),
                                "names": [{"text": t, "count": c} for t, c in sorted(
                                    texts_of[k].items(), key=lambda x: (-x[1], x[0]))[:20]]}
                               for k in largest[:config.report_clusters]]},
        "triples": {"total": len(triples), "from_text": len(merge.edges_of(config.text_graph)),
                    "self_loops_dropped": merge.self_loops,
                    "relations_with_unknown_mention": merged.unknown_mentions},
        "overlap": graph_overlaps(graph_nodes, graph_edges),
        "conflicts": functional_conflicts(merge, functional, labels),
        "same_as": entities.same_as,
    }
