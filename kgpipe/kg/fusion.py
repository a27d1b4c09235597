"""Fusion: mentions and relations from text, plus seed KGs, become one graph of canonical entities.

Steps: mentions get document context and, where their name is a seed label or alias, a seed anchor
(kgpipe.kg.link); `resolve` clusters them; clusters link to seed entities (anchor, else similarity) or get a
minted id; relations and seed triples are rewritten onto the entity ids and merged (kgpipe.kg.merge); the
report counts what happened and how much the source graphs overlap.

With `resolution.learn: em` mention pairs are scored by learned match weights (kgpipe.kg.learned_scoring), the
same machinery as the records API; of the graph's own signals, context (the names a mention's document says) is
a comparison with levels of its own (overlap >= 0.5, > 0, none; missing where a side has no context), learned
like the others, rather than the fixed scorer's boost, because its evidence both for and against a match is
what EM measures; type stays a rule (an incompatible pair's probability times `type_mismatch`, 0 by default),
as do anchors (seed entities: the guard never joins two, always joins one). `stored`: the weights a previous
run kept (kgpipe.kg.stored_weights), reused unless relearn is asked or they do not fit the settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kgpipe.kg.fusion_steps import canonical_label  # noqa: F401  (re-exported)
from kgpipe.kg.resolution_config import ResolutionConfig

if TYPE_CHECKING:
    from kgpipe.engine.base import Executor
    from kgpipe.kg.learned_weights import LearnedWeights
    from kgpipe.kg.stored_weights import StoredWeights, WeightsUse

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
RUN_DEPENDENT_STATS = ("seconds", "cpu_seconds", "peak_mb_after")


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
    learned: LearnedWeights | None = None   # the match weights scored with (learn=em)
    weights_use: WeightsUse | None = None   # how they came: learned, reused from the previous run or given


def fuse_graph(mentions, relations, seed_entities=None, seed_triples=None,
               config: FusionConfig | None = None, progress: Progress | None = None,
               executor: Executor | None = None, stored: StoredWeights | None = None) -> FusionResult:
    """Fuse extracted mentions/relations (pandas DataFrames with the MENTIONS and RELATIONS columns) with seed
    entities and triples (SEED_ENTITIES, SEED_TRIPLES) into entities, triples and a report. executor: the engine
    that runs the mapped steps of seed anchoring and resolution (default: this process); every engine gives the
    same result. stored: with learn=em, the weights a previous run stored (reused where they fit; see the module)."""
    from kgpipe.kg import fusion_steps as step
    from kgpipe.kg.link import SeedIndex, link_seed_graphs
    from kgpipe.kg.resolve import resolve
    from kgpipe.kg.stored_weights import choose_weights
    from kgpipe.vocab import DEFAULT_LABEL_MAP, DEFAULT_TYPE_PARENTS

    config = config or FusionConfig()
    options = config.resolution.normalize.options()
    parents = DEFAULT_TYPE_PARENTS if config.type_parents is None else config.type_parents
    compat = step.type_compat(parents)
    seed_rows = [] if seed_entities is None else seed_entities.to_dict("records")
    seed_triple_rows = [] if seed_triples is None else seed_triples.to_dict("records")
    relation_rows = relations.to_dict("records")

    found, empty = step.read_mentions(mentions, DEFAULT_LABEL_MAP if config.label_map is None else config.label_map,
                                      options)
    index = SeedIndex(seed_rows, seed_triple_rows, options) if seed_rows else None
    seed_canonical = link_seed_graphs(index, compat) if index is not None and config.link_seed_graphs else {}
    seed_entity_of = {iri: seed_canonical.get(iri, iri) for iri in (index.entities if index else {})}
    anchors = step.anchor_mentions(found, index, seed_canonical, compat, progress, executor)
    records = step.mention_records(found, anchors.anchors, step.document_keys(found, config.context))
    settings, weights_use = choose_weights(config.resolution, stored, any(r.context for r in records))
    resolution = resolve(records, settings, type_parents=parents, progress=progress, executor=executor)
    clusters = step.clusters_of(resolution.labels)
    links = step.link_clusters(clusters, records, index, seed_canonical, config, parents)
    entities = step.build_entities(clusters, records, links, index, seed_canonical, options, parents)
    merged = step.merge_triples(relation_rows, seed_triple_rows, entities.mention_entity, seed_entity_of,
                                {e["id"]: e["label"] for e in entities.rows}, config)
    rows = sorted(entities.rows + merged.extra_entities, key=lambda e: e["id"])
    inputs = step.FusionInputs(len(found) + empty, empty, len({m.doc_id for m in found}), relation_rows, seed_rows,
                               seed_triple_rows)
    report = step.fusion_report(inputs, resolution, anchors, links, clusters, records, entities, rows, merged,
                                index, seed_canonical, seed_entity_of, config, RUN_DEPENDENT_STATS)
    timings = {k: resolution.stats[k] for k in RUN_DEPENDENT_STATS if k in resolution.stats}
    return FusionResult(rows, merged.triples, entities.same_as, entities.types, entities.mention_entity, report,
                        timings, resolution.learned, weights_use)
