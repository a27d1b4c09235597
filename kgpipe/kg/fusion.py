"""Fusion: mentions and relations from text, plus seed KGs, become one graph of canonical entities.

Steps: mentions get document context and, where their name is a seed label or alias, a seed anchor
(kgpipe.kg.link); `resolve` clusters them; clusters link to seed entities (anchor, else similarity) or get a
minted id; relations and seed triples are rewritten onto the entity ids and merged (kgpipe.kg.merge); the
report counts what happened and how much the source graphs overlap.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kgpipe.kg.resolution_config import ResolutionConfig

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int | None], None]


class FusionConfig(BaseModel):
    """How the fuse stage resolves, links and merges (the stage's params)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolution: ResolutionConfig = ResolutionConfig()
    context: Literal["document", "none"] = Field(
        "document", description="a mention's context: the names of the other mentions in its document")
    link_threshold: float = Field(0.8, gt=0, le=1, description=(
        "resolution score at which a cluster that no exact name linked is linked to a seed entity"))
    namespace: str = Field("http://kgpipe.org/entity/", description="namespace of minted entity ids")
    link_seed_graphs: bool = Field(True, description=(
        "entities of different seed files with the same label and compatible types are one (owl:sameAs)"))
    align_relations: bool = Field(True, description=(
        "relations with the same name (worksFor, works_for) share one IRI, the seed KG's where it has one"))
    relation_aliases: dict[str, str] = Field(default_factory=dict, description="relation IRI -> IRI, applied first")
    functional_relations: list[str] = Field(default_factory=lambda: ["born_in"], description=(
        "relations (names or IRIs) with one value per head; more than one is reported as a conflict"))
    label_map: dict[str, str] | None = Field(None, description="NER label -> type, for mentions without kg_type")
    type_parents: dict[str, str] | None = Field(None, description="type hierarchy (default: kgpipe.vocab's)")
    report_clusters: int = Field(10, ge=0, description="largest clusters listed in the report")
    text_graph: str = Field("extract", description="name of the graph extracted from text in the report")


# resolution statistics that measure the run rather than the data (see FusionResult.timings)
RUN_DEPENDENT_STATS = ("seconds", "peak_mb_after")


@dataclass
class FusionResult:
    entities: list[dict[str, Any]]
    triples: list[dict[str, Any]]
    same_as: dict[str, list[str]] = field(default_factory=dict)
    types: dict[str, list[str]] = field(default_factory=dict)     # every type of an entity, for RDF
    mention_entity: dict[str, str] = field(default_factory=dict)  # mention_id -> entity id
    report: dict[str, Any] = field(default_factory=dict)
    # seconds and peak memory per resolution step: they change from run to run, so they stay out of the
    # report file (same inputs, same bytes) and go into the stage's summary in the lock file
    timings: dict[str, Any] = field(default_factory=dict)


def _plain_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, float) and value != value:
        return []
    return list(value)


def _text_or_none(value) -> str | None:
    return value if isinstance(value, str) and value else None


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


def _specific_type(candidates: list[str], mention_type: str | None, compatible, ancestors) -> str | None:
    """The seed type to show: compatible with what the text says, the most specific, then alphabetical."""
    if not candidates:
        return mention_type
    fitting = [t for t in candidates if mention_type is None or compatible(t, mention_type)] or candidates
    return min(fitting, key=lambda t: (-len(ancestors(t)), t))


def _proximity_context(row: dict, doc_rows: list[dict], scale: float = 200.0) -> dict[str, float]:
    """Names around a mention in its document, weighted by exp(-distance / scale) in characters: evidence
    fades with distance (about a sentence), so 'the Cavendish Laboratory in Cambridge' outweighs a Harvard
    named earlier in the sentence."""
    out: dict[str, float] = {}
    for other in doc_rows:
        if other["key"] == row["key"]:
            continue
        weight = math.exp(-abs(int(other["start_char"]) - int(row["start_char"])) / scale)
        out[other["key"]] = max(out.get(other["key"], 0.0), weight)
    return out


def fuse_graph(mentions, relations, seed_entities=None, seed_triples=None,
               config: FusionConfig | None = None, progress: Progress | None = None) -> FusionResult:
    """Fuse extracted mentions/relations (pandas DataFrames with the MENTIONS and RELATIONS columns) with seed
    entities and triples (SEED_ENTITIES, SEED_TRIPLES) into entities, triples and a report."""
    from kgpipe.kg.link import SeedIndex, link_by_similarity, link_exact, link_seed_graphs, mint_ids
    from kgpipe.kg.merge import RelationAligner, TripleMerge, functional_conflicts, graph_overlaps, relation_key
    from kgpipe.kg.normalize import normalize_name
    from kgpipe.kg.resolve import Record, resolve
    from kgpipe.vocab import (
        DEFAULT_LABEL_MAP,
        DEFAULT_RELATION_MAP,
        DEFAULT_TYPE_PARENTS,
        KGPIPE_RELATION,
        ancestors,
        compatible,
    )

    config = config or FusionConfig()
    options = config.resolution.normalize.options()
    parents = DEFAULT_TYPE_PARENTS if config.type_parents is None else config.type_parents
    label_map = DEFAULT_LABEL_MAP if config.label_map is None else config.label_map

    def compat(a, b):
        return compatible(a, b, parents)

    def key_of(text: str) -> str:
        return normalize_name(text, options)

    def report(what: str, done: int, total: int | None = None) -> None:
        if progress:
            progress(what, done, total)

    # --- mentions: type, key, document context ---------------------------------------------------------
    seed_rows = [] if seed_entities is None else seed_entities.to_dict("records")
    seed_triple_rows = [] if seed_triples is None else seed_triples.to_dict("records")
    rows = mentions.to_dict("records")
    for row in rows:
        row["kg_type"] = _text_or_none(row.get("kg_type")) or label_map.get(row.get("label") or "")
        row["key"] = key_of(row["text"])
    empty = [r for r in rows if not r["key"]]
    rows = [r for r in rows if r["key"]]
    doc_keys: dict[str, set[str]] = defaultdict(set)
    if config.context == "document":
        for row in rows:
            doc_keys[row["doc_id"]].add(row["key"])

    # --- seeds: index, cross-file identity, exact-name anchors -------------------------------------------
    index = SeedIndex(seed_rows, seed_triple_rows, options) if seed_rows else None
    seed_canonical = link_seed_graphs(index, compat) if index is not None and config.link_seed_graphs else {}
    anchor_how: Counter = Counter()
    anchors: list[str | None] = [None] * len(rows)
    by_doc: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_doc[row["doc_id"]].append(i)
    if index is not None:
        for n_done, row in enumerate(rows, 1):
            gazetteer = [row["seed_iri"]] if _text_or_none(row.get("seed_iri")) else []
            context: dict[str, float] = {}
            if len(index.candidates(row["key"], row["kg_type"], compat)) > 1:
                context = _proximity_context(row, [rows[j] for j in by_doc[row["doc_id"]]])
            link = link_exact(row["key"], row["kg_type"], context, gazetteer, index, compat)
            anchors[n_done - 1] = seed_canonical.get(link.iri, link.iri) if link.iri else None
            anchor_how[link.how] += 1
            if n_done % 1000 == 0:
                report("link names to the seed KG", n_done, len(rows))

    # --- resolution ---------------------------------------------------------------------------------------
    records = [Record(r["mention_id"], r["text"], source=r["doc_id"], type=r["kg_type"],
                      context=frozenset(doc_keys[r["doc_id"]] - {r["key"]}),
                      anchor=anchor) for r, anchor in zip(rows, anchors, strict=True)]
    resolution = resolve(records, config.resolution, type_parents=parents, progress=progress)
    members: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(resolution.labels.tolist()):
        members[label].append(i)
    clusters = [members[k] for k in sorted(members)]

    # --- link clusters: anchor, else similarity, else mint ---------------------------------------------
    cluster_iri: list[str | None] = []
    for idx in clusters:
        cluster_anchors = {a for a in (records[i].anchor for i in idx) if a}
        cluster_iri.append(min(cluster_anchors) if cluster_anchors else None)  # the guard keeps one anchor per cluster
    open_clusters = [k for k, iri in enumerate(cluster_iri) if iri is None]
    cluster_type: list[str | None] = []
    for idx in clusters:
        types = Counter(records[i].type for i in idx if records[i].type)
        cluster_type.append(min(types, key=lambda t: (-types[t], t)) if types else None)
    link_how = Counter(exact=len(clusters) - len(open_clusters))
    if index is not None and open_clusters:
        cluster_names = [sorted({records[i].name for i in clusters[k]}) for k in open_clusters]
        contexts = [frozenset(c for i in clusters[k] for c in records[i].context) for k in open_clusters]
        similar = link_by_similarity(cluster_names, [cluster_type[k] for k in open_clusters], contexts, index,
                                     config.resolution, config.link_threshold, parents)
        for k, (iri, _) in zip(open_clusters, similar, strict=True):
            if iri is not None:
                cluster_iri[k] = seed_canonical.get(iri, iri)
                link_how["similarity"] += 1
    minted_clusters = [k for k, iri in enumerate(cluster_iri) if iri is None]
    link_how["minted"] = len(minted_clusters)
    texts_of = [Counter(records[i].name for i in idx) for idx in clusters]
    minted = mint_ids([(canonical_label(texts_of[k], key_of, options.determiners), cluster_type[k],
                        min(records[i].id for i in clusters[k])) for k in minted_clusters],
                      config.namespace, options)
    minted_of = dict(zip(minted_clusters, minted, strict=True))
    entity_of_cluster = [iri if iri is not None else minted_of[k] for k, iri in enumerate(cluster_iri)]

    # --- entities ---------------------------------------------------------------------------------------
    by_entity: dict[str, list[int]] = defaultdict(list)
    for k, entity_id in enumerate(entity_of_cluster):
        by_entity[entity_id].append(k)
    seed_groups: dict[str, list[str]] = defaultdict(list)
    if index is not None:
        for iri in index.entities:
            seed_groups[seed_canonical.get(iri, iri)].append(iri)
    entities: list[dict[str, Any]] = []
    all_types: dict[str, list[str]] = {}
    same_as: dict[str, list[str]] = {}
    mention_entity: dict[str, str] = {}
    for entity_id in sorted(set(by_entity) | set(seed_groups)):
        ks = by_entity.get(entity_id, [])
        texts: Counter = Counter()
        docs: set[str] = set()
        mention_types: Counter = Counter()
        for k in ks:
            texts.update(texts_of[k])
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
            kg_type = _specific_type(seed_types, mention_type, compat, lambda t: ancestors(t, parents))
            names = [n for s in seeds for n in [s.label, *s.aliases]]
            sources = {src for s in seeds for src in s.sources}
            all_types[entity_id] = seed_types or ([mention_type] if mention_type else [])
            others = sorted(s.iri for s in seeds if s.iri != entity_id)
            if others:
                same_as[entity_id] = others
        else:
            label = canonical_label(texts, key_of, options.determiners)
            kg_type = mention_type
            names, sources = [], set()
        alias_counts = Counter({n: 0 for n in names})
        alias_counts.update(texts)
        aliases = sorted((a for a in alias_counts if a != label), key=lambda a: (-alias_counts[a], a))
        entities.append({"id": entity_id, "label": label, "type": kg_type, "aliases": aliases,
                         "seed_iri": entity_id if seeds else None, "mention_count": sum(texts.values()),
                         "sources": sorted(docs | sources)})
    labels = {e["id"]: e["label"] for e in entities}
    seed_entity_of = {iri: seed_canonical.get(iri, iri) for iri in (index.entities if index else {})}

    # --- triples --------------------------------------------------------------------------------------
    def text_relation_iri(row) -> str:
        return _text_or_none(row.get("relation_iri")) or DEFAULT_RELATION_MAP.get(
            row["relation"], KGPIPE_RELATION + row["relation"])

    relation_rows = relations.to_dict("records")
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
    extra_entities: set[str] = set()
    for row in seed_triple_rows:
        head = seed_entity_of.get(row["head"], row["head"])
        tail = seed_entity_of.get(row["tail"], row["tail"])
        for iri in (head, tail):
            if iri not in labels:
                extra_entities.add(iri)
        merge.add(head, aligner(row["relation"]), tail, source=row["source"], graph=row["source"],
                  confidence=1.0)
    for iri in sorted(extra_entities):  # a triple's end that the seed tables do not describe
        from kgpipe.kg.seed import local_name_label

        labels[iri] = local_name_label(iri)
        entities.append({"id": iri, "label": labels[iri], "type": None, "aliases": [], "seed_iri": iri,
                         "mention_count": 0, "sources": []})
    entities.sort(key=lambda e: e["id"])
    triples = merge.rows()

    # --- report ---------------------------------------------------------------------------------------
    graph_nodes: dict[str, set[str]] = defaultdict(set)
    graph_nodes[config.text_graph] = {e for e, ks in by_entity.items() if ks}
    for iri, info in (index.entities.items() if index else []):
        for src in info.sources:
            graph_nodes[src].add(seed_entity_of[iri])
    for row in seed_triple_rows:
        graph_nodes[row["source"]] |= {seed_entity_of.get(row["head"], row["head"]),
                                       seed_entity_of.get(row["tail"], row["tail"])}
    graph_edges = {g: merge.edges_of(g) for g in graph_nodes}
    wanted = {relation_key(r) for r in config.functional_relations}
    functional = {r for r in {t["relation"] for t in triples} if relation_key(r) in wanted}
    merged = [k for k, idx in enumerate(clusters) if len({records[i].name for i in idx}) > 1]
    largest = sorted(range(len(clusters)), key=lambda k: (-len(clusters[k]), entity_of_cluster[k]))
    counts = {
        "mentions": len(rows) + len(empty), "mentions_without_name": len(empty),
        "documents": len({r["doc_id"] for r in rows}), "relations": len(relation_rows),
        "seed_entities": len(seed_rows), "seed_triples": len(seed_triple_rows),
    }
    report_data = {
        "inputs": counts,
        "resolution": {k: v for k, v in resolution.stats.items() if k not in RUN_DEPENDENT_STATS},
        "linking": {"names_to_seed": dict(sorted(anchor_how.items())),
                    "clusters": dict(sorted(link_how.items())),
                    "seed_entities_merged_across_files": len(seed_canonical),
                    "relations_aligned": aligner.mapping(
                        [r["relation"] for r in seed_triple_rows] + [text_relation_iri(r) for r in relation_rows])},
        "entities": {"total": len(entities), "from_text": sum(1 for e in entities if e["mention_count"]),
                     "linked_to_seed": sum(1 for e in entities if e["mention_count"] and e["seed_iri"]),
                     "seed_only": sum(1 for e in entities if not e["mention_count"]),
                     "minted": len(minted)},
        "merges": {"clusters": len(clusters), "clusters_with_several_names": len(merged),
                   "mentions_merged": sum(len(clusters[k]) for k in merged),
                   "largest": [{"id": entity_of_cluster[k], "label": labels.get(entity_of_cluster[k]),
                                "mentions": len(clusters[k]),
                                "names": [{"text": t, "count": c} for t, c in sorted(
                                    texts_of[k].items(), key=lambda x: (-x[1], x[0]))[:20]]}
                               for k in largest[:config.report_clusters]]},
        "triples": {"total": len(triples), "from_text": len(merge.edges_of(config.text_graph)),
                    "self_loops_dropped": merge.self_loops, "relations_with_unknown_mention": unknown_mentions},
        "overlap": graph_overlaps(graph_nodes, graph_edges),
        "conflicts": functional_conflicts(merge, functional, labels),
        "same_as": same_as,
    }
    timings = {k: resolution.stats[k] for k in RUN_DEPENDENT_STATS if k in resolution.stats}
    return FusionResult(entities, triples, same_as, all_types, mention_entity, report_data, timings)
