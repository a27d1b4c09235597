"""The export stage: embeddings and the fused graph in the formats downstream tools read, in one folder."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType

EMBEDDING_FORMAT_NAMES = ("npy", "safetensors", "parquet", "word2vec", "projector", "torch", "int8")
GRAPH_FORMAT_NAMES = ("turtle", "ntriples", "graphml", "neo4j")


class ExportParams(StageParams):
    formats: list[str] = Field(list(EMBEDDING_FORMAT_NAMES + GRAPH_FORMAT_NAMES),
                               description="embedding formats: " + ", ".join(EMBEDDING_FORMAT_NAMES)
                               + "; graph formats: " + ", ".join(GRAPH_FORMAT_NAMES))

    @field_validator("formats")
    @classmethod
    def _known(cls, formats: list[str]) -> list[str]:
        unknown = [f for f in formats if f not in EMBEDDING_FORMAT_NAMES + GRAPH_FORMAT_NAMES]
        if unknown:
            raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from "
                             + ", ".join(EMBEDDING_FORMAT_NAMES + GRAPH_FORMAT_NAMES))
        return formats


class ExportStage(StageType):
    name = "export"
    version = 3   # 2: reciprocal relations' rows get unique ids (IRI + "_inverse"); 3: text through
    # export.safe_text (word2vec keys percent-encoded), safetensors headers sorted
    description = "write embeddings and the fused graph in the formats downstream tools read"
    Params = ExportParams
    inputs = (
        InputSpec("embeddings", required=False, doc="embed's entity_embeddings.parquet"),
        InputSpec("relation_embeddings", required=False, doc="embed's relation_embeddings.parquet"),
        InputSpec("entities", required=False, doc="fuse's entities.parquet (types for the projector, nodes)"),
        InputSpec("triples", required=False, doc="fuse's triples.parquet"),
        InputSpec("graph", required=False, doc="fuse's graph.ttl (keeps owl:sameAs links)"),
    )
    outputs = (OutputSpec("export", "export", folder=True),)

    def run(self, ctx: StageContext) -> dict[str, Any]:
        return export_all(ctx.params.formats, ctx.output("export"), embeddings=ctx.input("embeddings"),
                          relation_embeddings=ctx.input("relation_embeddings"), entities=ctx.input("entities"),
                          triples=ctx.input("triples"), graph=ctx.input("graph"))


def export_all(formats: list[str], folder: Any, *, embeddings: Any = None, relation_embeddings: Any = None,
               entities: Any = None, triples: Any = None, graph: Any = None) -> dict[str, Any]:
    """Write every requested format into folder (entities/ relations/ graph/); returns file counts."""
    from kgpipe.artifacts import ENTITIES, TRIPLES, read_table
    from kgpipe.errors import KgpipeError
    from kgpipe.export.embeddings import load_embeddings
    from kgpipe.export.formats import export_embeddings
    from kgpipe.export.graph import GRAPH_FORMATS

    wanted_embeddings = [f for f in formats if f in EMBEDDING_FORMAT_NAMES]
    wanted_graph = [f for f in formats if f in GRAPH_FORMAT_NAMES]
    entity_table = read_table(entities, ENTITIES) if entities is not None else None
    written: dict[str, int] = {}
    if wanted_embeddings:
        if embeddings is None:
            raise KgpipeError(f"formats {', '.join(wanted_embeddings)} need embeddings",
                              hint="give the export stage an `embeddings` dep (embed's entity_embeddings.parquet)")
        emb = load_embeddings(embeddings)
        if entity_table is not None:
            type_of = dict(zip(entity_table["id"], entity_table["type"], strict=True))
            emb = emb.with_types([t if isinstance(t, str) else None for t in map(type_of.get, emb.ids)])
        for name, paths in export_embeddings(emb, folder / "entities", wanted_embeddings).items():
            written[name] = len(paths)
        if relation_embeddings is not None:
            for name, paths in export_embeddings(load_embeddings(relation_embeddings), folder / "relations",
                                                 wanted_embeddings).items():
                written[name] += len(paths)
    if wanted_graph:
        if entity_table is None or triples is None:
            raise KgpipeError(f"formats {', '.join(wanted_graph)} need the fused graph",
                              hint="give the export stage `entities` and `triples` deps (fuse's outputs)")
        triple_table = read_table(triples, TRIPLES)
        (folder / "graph").mkdir(parents=True, exist_ok=True)
        for name in wanted_graph:
            written[name] = len(GRAPH_FORMATS[name](entity_table, triple_table, graph, folder / "graph"))
    return {"formats": len(written), "files": sum(written.values())}
