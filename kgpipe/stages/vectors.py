"""The vectors stage: every entity of the fused graph gets a vector. embed's rows are copied as they are; an
entity that occurs in no triple gets one predicted from its text (kgpipe.embed.inductive), flagged inductive.

A stage of its own, so that extraction changes never retrain PyKEEN and embed's rows keep matching its model.
Its table reads like embed's (load_embeddings), so inject and export take it as their `embeddings` dep.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType, ValidationContext

TEXT_INPUTS = ("mentions", "mention_entities", "documents")


class VectorsParams(StageParams):
    encoder: str = Field("all-MiniLM-L6-v2", description="sentence encoder for labels and contexts (a packaged "
                         "name or a model folder); mean pooling over tokens")
    ridge: float = Field(3.0, gt=0, description="ridge penalty of the closed-form map from text to KG space")
    holdout: float = Field(0.1, ge=0, lt=1, description="share of anchors held out to measure the fit (the "
                           "final map is fitted on all of them)")
    max_names: int = Field(8, ge=1, description="label plus at most this many - 1 aliases per entity")
    max_contexts: int = Field(32, ge=0, description="sentences per entity whose mean encoding is its context")
    batch_size: int = Field(64, ge=1)
    max_length: int = Field(128, ge=8, description="tokens per text")
    seed: int = 42


class VectorsStage(StageType):
    name = "vectors"
    remote = True  # one encoder process; on the Ray engine a task on a node with the stage's resources
    version = 1
    description = "a vector for every entity: embed's rows, and a text-predicted (inductive) one for the rest"
    Params = VectorsParams
    inputs = (
        InputSpec("entities", doc="fuse's entities.parquet (ids, labels, aliases)"),
        InputSpec("embeddings", doc="embed's entity_embeddings.parquet"),
        InputSpec("mentions", required=False, doc="extract's mentions.parquet (with mention_entities and "
                  "documents: the sentences that give an entity its context)"),
        InputSpec("mention_entities", required=False, doc="fuse's mention_entities.parquet"),
        InputSpec("documents", required=False, doc="ingest's documents.parquet"),
    )
    outputs = (
        OutputSpec("entity_vectors", "entity_vectors.parquet", role="entity_vectors", doc="id, label, vector, "
                   "inductive; embed's rows first, in its order"),
        OutputSpec("metrics", "vectors_metrics.json", doc="anchors, held-out fit, counts (no timings)"),
    )

    def validate(self, ctx: ValidationContext) -> None:
        """Text context needs all three text inputs; the encoder must be loadable offline."""
        from kgpipe.errors import DependencyMissingError
        from kgpipe.lm.encoder import DEFAULT_BASE_MODEL, require_default_model

        given = [name for name in TEXT_INPUTS if ctx.input(name) is not None]
        if given and len(given) != len(TEXT_INPUTS):
            missing = [name for name in TEXT_INPUTS if name not in given]
            raise ctx.error(f"deps {', '.join(given)} need {', '.join(missing)} too (mentions, mention_entities "
                            "and documents together give an entity its sentences)",
                            hint="add the missing deps, or drop all three for label-only vectors")
        name = ctx.params.encoder
        if name in (DEFAULT_BASE_MODEL, "default"):
            require_default_model("sentence encoder")
            return
        if not any((folder / "config.json").is_file() for folder in (ctx.root / name, Path(name).expanduser())):
            raise DependencyMissingError(
                f"stage '{ctx.stage}': params.encoder '{name}' is not a model folder (no config.json)",
                hint=f"point encoder at a local model folder, or use the packaged {DEFAULT_BASE_MODEL} "
                f"({ctx.pipeline_file.name}, line {ctx.line_of('stages', ctx.stage, 'params', 'encoder')})")

    def run(self, ctx: StageContext) -> dict[str, Any]:
        import torch

        from kgpipe.atomic import atomic_write_text
        from kgpipe.embed.inductive import entity_texts, fit_inductive_map, predict, text_features
        from kgpipe.embed.vector_table import read_inputs, write_vectors
        from kgpipe.lm.sentence_encoder import SentenceEncoder

        p: VectorsParams = ctx.params
        started = time.perf_counter()
        inputs = read_inputs(ctx.input("entities"), ctx.input("embeddings"), ctx.input("mentions"),
                             ctx.input("mention_entities"), ctx.input("documents"), shown=ctx.relpath)
        texts = entity_texts(inputs.entities, inputs.mentions, inputs.documents, max_names=p.max_names,
                             max_contexts=p.max_contexts)
        trained = inputs.embedded
        anchors = [i for i, t in enumerate(texts) if t.entity_id in trained]
        missing = [i for i, t in enumerate(texts) if t.entity_id not in trained]

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the same floats on any machine, and the other core left to other work
        try:
            torch.manual_seed(p.seed)
            encoder = SentenceEncoder.load(p.encoder, root=ctx.root, batch_size=p.batch_size,
                                           max_length=p.max_length)
            encoded_at = time.perf_counter()
            features = text_features(texts, lambda strings: encoder.encode(
                strings, progress=lambda done, total: ctx.report("encode texts", done, total)))
            encoded_s = time.perf_counter() - encoded_at
            targets = inputs.vectors[[trained[texts[i].entity_id] for i in anchors]].astype("float64")
            linear, report = fit_inductive_map(features[anchors], targets, ridge=p.ridge, holdout=p.holdout,
                                               seed=p.seed)
            predicted = predict(linear, features[missing]) if missing else None
        finally:
            torch.set_num_threads(threads)

        with_context = sum(1 for i in missing if texts[i].contexts)
        metrics = {**report.as_dict(), "entities": len(texts), "embedded": len(inputs.ids),
                   "inductive": len(missing), "inductive_with_context": with_context,
                   "encoder": p.encoder, "feature_dim": int(features.shape[1])}
        write_vectors(ctx.output("entity_vectors"), inputs, [texts[i] for i in missing], predicted,
                      {"inductive_encoder": p.encoder, "inductive_ridge": repr(p.ridge),
                       "inductive_rows": str(len(missing))})
        atomic_write_text(ctx.output("metrics"), json.dumps(metrics, indent=2) + "\n")
        summary: dict[str, Any] = {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
        summary["timings"] = {"encode_seconds": round(encoded_s, 2),
                              "total_seconds": round(time.perf_counter() - started, 2)}
        return summary
