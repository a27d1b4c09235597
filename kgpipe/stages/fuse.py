"""The fuse stage: extracted mentions and relations plus the seed KG in; canonical entities, merged triples,
graph.ttl, graph.graphml and fusion_report.json out (the same bytes for the same inputs: timings and memory
go into the returned summary, which the runner keeps in the lock entry; what changed against the previous
run's outputs goes into the run history, kgpipe.stages.fuse_delta).

Thin glue around kgpipe.kg.fusion.fuse_graph (resolution, seed linking, merge); see its modules for how.

Learned weights (`resolution.learn: em`): the first run learns the match weights and writes them to
learned_weights.json; later runs read that file as the previous run left it (StageContext.previous_output) and
reuse the weights, so that a grown corpus does not move the scores of pairs it already had, nor the entity ids
they decide. This makes fuse's outputs depend on a previous output, not only on its deps and params: two
workspaces with the same inputs can differ if one learned on a smaller corpus first. The summary and the lock
entry say which happened (`learned_weights: learned | reused | given`, with the reused file's SHA-256 as
`learned_weights_from`); `resolution.relearn: true`, or deleting the file, learns them again from the current
corpus (kgpipe.kg.stored_weights). With learn fixed (the default) the file holds a note and no weights, and
every other output is what it was before this file existed.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from kgpipe.kg.fusion import FusionConfig
from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType

if TYPE_CHECKING:
    from pathlib import Path

    from kgpipe.config import Stage
    from kgpipe.delta import StageDelta
    from kgpipe.lockfile import LockEntry
    from kgpipe.summary import StageSummary


class FuseParams(FusionConfig, StageParams):
    """Params of the fuse stage: FusionConfig's fields (resolution settings nested under `resolution`)."""


class FuseStage(StageType):
    name = "fuse"
    version = 6  # 3: unsaid name parts weigh less, LSH candidates capped per name; 4: institution phrases;
    # 5: timings in the summary, not the report; ids and text in graph files through export.safe_text;
    # 6: learned_weights.json (learn: em)
    description = "resolve mentions into canonical entities, link them to the seed KG, merge the graphs"
    Params = FuseParams
    inputs = (
        InputSpec("mentions", doc="mentions.parquet (MENTIONS) from extract"),
        InputSpec("relations", doc="relations.parquet (RELATIONS) from extract"),
        InputSpec("seed_entities", required=False, doc="seed_entities.parquet from ingest"),
        InputSpec("seed_triples", required=False, doc="seed_triples.parquet from ingest"),
    )
    outputs = (
        OutputSpec("entities", "entities.parquet", role="entities"),
        OutputSpec("triples", "triples.parquet", role="triples"),
        OutputSpec("graph_ttl", "graph.ttl", role="graph_ttl"),
        OutputSpec("graph_graphml", "graph.graphml", role="graph_graphml"),
        OutputSpec("report", "fusion_report.json", role="fusion_report"),
        OutputSpec("mention_entities", "mention_entities.parquet", role="mention_entities",
                   doc="mention_id -> entity_id: a text triple's way back to its sentences"),
        OutputSpec("learned_weights", "learned_weights.json", role="learned_weights",
                   doc="learn: em: the match weights (m, u per comparison level, the prior), reused by later runs "
                       "until resolution.relearn; learn: fixed: a note, no weights"),
    )

    @classmethod
    def summarise(cls, stage: Stage, entry: LockEntry | None) -> StageSummary | None:
        from kgpipe.stages.fuse_summary import summarise

        return summarise(stage, entry)

    @classmethod
    def delta(cls, old: dict[str, Path], new: dict[str, Path]) -> StageDelta | None:
        from kgpipe.stages.fuse_delta import fuse_delta

        return fuse_delta(old, new)

    def run(self, ctx: StageContext) -> dict[str, Any]:
        import pandas as pd

        from kgpipe.artifacts import (
            ENTITIES,
            MENTION_ENTITIES,
            MENTIONS,
            RELATIONS,
            SEED_ENTITIES,
            SEED_TRIPLES,
            TRIPLES,
            read_table,
            write_table,
        )
        from kgpipe.atomic import atomic_write_text
        from kgpipe.kg.fusion import fuse_graph
        from kgpipe.kg.graph_files import write_graphml, write_turtle
        from kgpipe.kg.stored_weights import read_stored, stored_text

        p: FuseParams = ctx.params
        mentions = read_table(ctx.input("mentions"), MENTIONS)
        relations = read_table(ctx.input("relations"), RELATIONS)
        seed_entities = read_table(ctx.input("seed_entities"), SEED_ENTITIES) if ctx.input("seed_entities") else None
        seed_triples = read_table(ctx.input("seed_triples"), SEED_TRIPLES) if ctx.input("seed_triples") else None
        _check_references(ctx, mentions, relations)

        stored = read_stored(ctx.previous_output("learned_weights")) if p.resolution.learn == "em" else None
        result = fuse_graph(mentions, relations, seed_entities, seed_triples, p,
                            progress=lambda what, done, total: ctx.report(what, done, total), executor=ctx.executor,
                            stored=stored)
        atomic_write_text(ctx.output("learned_weights"), stored_text(result.learned))
        n_entities = write_table(result.entities, ctx.output("entities"), ENTITIES)
        n_triples = write_table(result.triples, ctx.output("triples"), TRIPLES)
        write_table([{"mention_id": m, "entity_id": e} for m, e in sorted(result.mention_entity.items())],
                    ctx.output("mention_entities"), MENTION_ENTITIES)
        entities = pd.DataFrame(result.entities, columns=ENTITIES.column_names)
        triples = pd.DataFrame(result.triples, columns=TRIPLES.column_names)
        statements = write_turtle(entities, triples, ctx.output("graph_ttl"), result.same_as, result.types)
        write_graphml(entities, triples, ctx.output("graph_graphml"))
        atomic_write_text(ctx.output("report"),
                          json.dumps(result.report, indent=2, ensure_ascii=False, default=_json_default) + "\n")
        report = result.report
        timings: dict[str, Any] = {"resolution_seconds": result.timings.get("seconds", {}),
                                   "resolution_peak_mb_after": result.timings.get("peak_mb_after", {})}
        components = getattr(ctx.executor, "components_stats", None)  # the Ray engine's distributed components
        if components is not None:
            timings["components_ray"] = dataclasses.asdict(components)
        # seconds and peak MB per resolution step: in the lock entry, not the report file, so equal inputs give
        # equal artifacts (kgpipe report and kgpipe.explore.stage_timings read them)
        linked = report["linking"]["clusters"]
        summary: dict[str, Any] = {
            "entities": n_entities, "triples": n_triples, "rdf_statements": statements,
            "mentions": report["inputs"]["mentions"], "clusters": report["merges"]["clusters"],
            "linked_clusters": linked.get("exact", 0) + linked.get("similarity", 0),
            "minted": report["entities"]["minted"], "conflicts": len(report["conflicts"]), "timings": timings}
        use = result.weights_use
        if use is not None:  # learn: em
            summary["learned_weights"] = use.how
            if use.reused_sha256 is not None:  # the previous output read back: its hash, as an input's
                summary["learned_weights_from"] = use.reused_sha256
            if use.note is not None:
                summary["learned_weights_note"] = use.note
        return summary


def _json_default(value: Any) -> Any:
    """numpy scalars in the report's counts."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _check_references(ctx: StageContext, mentions, relations) -> None:
    """Relations must point at mentions that exist and mention ids must be unique (row numbers in errors)."""
    from kgpipe.errors import InputError

    duplicated = mentions["mention_id"].duplicated()
    if duplicated.any():
        row = int(duplicated.to_numpy().nonzero()[0][0])
        raise InputError(f"duplicate mention_id '{mentions['mention_id'].iat[row]}'",
                         file=ctx.relpath(ctx.input("mentions")), row=row + 1,
                         hint="mention ids must be unique; re-run the extract stage")
    known = set(mentions["mention_id"])
    for column in ("subject_id", "object_id"):
        missing = ~relations[column].isin(known)
        if missing.any():
            row = int(missing.to_numpy().nonzero()[0][0])
            raise InputError(f"{column} '{relations[column].iat[row]}' is not a mention in "
                             f"{ctx.relpath(ctx.input('mentions'))}", file=ctx.relpath(ctx.input("relations")),
                             row=row + 1, hint="mentions and relations must come from the same extract run")
