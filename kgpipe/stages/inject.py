"""The inject stage: fused entities and their KG embeddings in; a knowledge model folder out (a
KnowledgeEnhancedEncoder with the E-BERT align map, or gated fusion trained on a task file) and metrics.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType, ValidationContext

if TYPE_CHECKING:
    from kgpipe.config import Stage
    from kgpipe.lockfile import LockEntry
    from kgpipe.summary import StageSummary


class InjectParams(StageParams):
    base_model: str = Field("all-MiniLM-L6-v2", description="a BERT-family encoder (name, or folder), or a decoder: "
                            "'smollm2', a .gguf file or a causal-LM folder")
    mode: Literal["align", "fusion", "prefix"] = Field("align", description="align (encoders and decoders), fusion "
                                                       "(encoders), prefix (decoders)")
    combine: Literal["add", "replace"] = Field("add", description="align: add to or replace input embeddings")
    orthogonal: bool = Field(False, description="align: orthogonal (Procrustes) map instead of least squares")
    ridge: float = Field(1e-2, ge=0)
    layers: list[int] = Field([-1], description="fusion: encoder layers that receive knowledge")
    freeze_base: bool = True
    prefix_layers: int = Field(4, ge=1, description="prefix: the top layers that get knowledge key/value slots")
    max_entities: int = Field(4, ge=1, description="prefix: entity slots per text (linked entities in text order)")
    adapter_hidden: int = Field(256, ge=8, description="prefix: the adapter's hidden width")
    lora_rank: int = Field(0, ge=0, description="prefix: LoRA rank on the top layers' q/v projections (0: none)")
    objective: Literal["generation", "task"] = Field(
        "generation", description="prefix: train on the graph's verbalised triples (deps.triples) for generation, "
        "or on the task file (deps.task) for classification")
    storage: Literal["float32", "float16", "int8"] = "float32"
    max_length: int = Field(128, ge=16)
    fuzzy_cutoff: float = Field(88.0, ge=0, le=100)
    nil_threshold: float = Field(0.6, ge=0)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(2e-3, gt=0)
    seed: int = 42


class InjectStage(StageType):
    name = "inject"
    remote = True  # one training process; on the Ray engine a task on a node with the stage's resources
    version = 3   # 3: decoder bases (prefix, align); 2: the model config names its embeddings without an absolute path
    description = "map KG embeddings into a language model's token representations (encoders: align or gated " \
        "fusion; decoders: knowledge prefix or align)"
    Params = InjectParams
    inputs = (
        InputSpec("entities", doc="fuse's entities.parquet (ids, labels, aliases, types)"),
        InputSpec("embeddings", doc="embed's entity_embeddings.parquet"),
        InputSpec("task", required=False, doc="fusion, prefix with objective task: JSON lines {text, subject, object, "
                  "label}"),
        InputSpec("triples", required=False, doc="prefix with objective generation: fuse's triples.parquet"),
        InputSpec("relation_embeddings", required=False, doc="prefix: embed's relation_embeddings.parquet (a "
                  "relation slot for examples that name a relation)"),
    )
    outputs = (
        OutputSpec("model", "knowledge_model", folder=True, role="knowledge_model"),
        OutputSpec("metrics", "inject_metrics.json", role="inject_metrics"),
    )

    def validate(self, ctx: ValidationContext) -> None:
        """The base model must be loadable offline (the packaged encoder or decoder installed, a local folder with
        a config.json, a .gguf file, or a model already in the Hugging Face cache: nothing is downloaded at run
        time), and the mode must suit it."""
        from kgpipe.lm.decoders import decoder_source, resolve_decoder

        p: InjectParams = ctx.params
        decoder = decoder_source(p.base_model, ctx.root)
        if decoder is not None:
            if p.mode == "fusion":
                raise ctx.error("fusion is for BERT-family encoders; a decoder takes mode prefix or align",
                                param="mode")
            resolve_decoder(decoder)  # DependencyMissingError / InputError name what is missing
            needed = "triples" if p.objective == "generation" else "task"
            if p.mode == "prefix" and ctx.input(needed) is None:
                raise ctx.error(f"mode prefix with objective {p.objective} trains on deps.{needed}, which is not given",
                                param="objective", hint="add `triples: artifacts/fuse/triples.parquet` (generation) "
                                "or `task: <file.jsonl>` (task) under the stage's deps")
            return
        if p.mode == "prefix":
            raise ctx.error(f"mode prefix is for decoders; '{p.base_model}' is not one", param="mode",
                            hint="use base_model: smollm2 (or a .gguf file, or a causal-LM folder), or mode "
                            "align/fusion")
        self._validate_encoder(ctx)

    def _validate_encoder(self, ctx: ValidationContext) -> None:
        from pathlib import Path

        from kgpipe.errors import DependencyMissingError
        from kgpipe.lm.encoder import DEFAULT_BASE_MODEL, require_default_model

        name = ctx.params.base_model
        if name in (DEFAULT_BASE_MODEL, "default"):
            require_default_model()
            return
        if any((folder / "config.json").is_file() for folder in (ctx.root / name, Path(name).expanduser())):
            return
        from huggingface_hub import try_to_load_from_cache

        try:
            if isinstance(try_to_load_from_cache(name, "config.json"), str):
                return
        except ValueError:  # not even a valid hub name (HFValidationError): a folder that does not exist
            pass
        raise DependencyMissingError(
            f"stage '{ctx.stage}': params.base_model '{name}' is neither a model folder (no config.json) nor in "
            "the Hugging Face cache, and kgpipe downloads nothing at run time",
            hint=f"point base_model at a local model folder, or use the packaged default {DEFAULT_BASE_MODEL} "
            f"({ctx.pipeline_file.name}, line {ctx.line_of('stages', ctx.stage, 'params', 'base_model')})")

    @classmethod
    def summarise(cls, stage: Stage, entry: LockEntry | None) -> StageSummary | None:
        from kgpipe.stages.inject_summary import summarise

        return summarise(stage)

    def run(self, ctx: StageContext) -> dict[str, Any]:
        import torch

        from kgpipe.artifacts import ENTITIES, read_table
        from kgpipe.atomic import atomic_write_text
        from kgpipe.export.embeddings import load_embeddings
        from kgpipe.lm.decoders import decoder_source
        from kgpipe.lm.knowledge_model import knowledge_for, save_linker_table

        p: InjectParams = ctx.params
        torch.manual_seed(p.seed)
        entities = read_table(ctx.input("entities"), ENTITIES)
        found = knowledge_for(entities, load_embeddings(ctx.input("embeddings")), p.storage)
        knowledge = found.table
        folder = ctx.output("model")
        metrics: dict[str, Any] = {"mode": p.mode, "entities": len(entities), "entities_with_vectors": len(knowledge),
                                   "kg_dim": knowledge.dim, "knowledge_bytes": knowledge.nbytes,
                                   "storage": p.storage}
        if len(found.trained) < len(knowledge):  # the vectors stage's table: some rows predicted from text
            metrics["inductive_vectors"] = len(knowledge) - len(found.trained)
        save_linker_table(entities, folder)
        decoder = decoder_source(p.base_model, ctx.root)
        if decoder is None:
            metrics.update(_run_encoder(ctx, found))
        else:
            metrics["base"] = "decoder"
            metrics.update(_run_decoder(ctx, decoder, found, entities))
        # metrics hold only what the data and seed decide (no timings), so a rerun writes the same bytes
        atomic_write_text(ctx.output("metrics"), json.dumps(metrics, indent=2) + "\n")
        return {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}


def _embedding_source(ctx: StageContext) -> tuple[str, str | None]:
    """Where the KG vectors came from (a portable path) and their hash, for the saved model's config."""
    from kgpipe.hashing import path_hash

    path = ctx.input("embeddings")
    return ctx.portable_path(path, "model", within=True), path_hash(path)


def _align_metrics(fit: Any) -> dict[str, Any]:
    return {"anchors": fit.anchors, "map_train_r2": round(fit.train_r2, 4),
            "map_heldout_cosine": round(fit.heldout_cosine, 4)}


def _run_encoder(ctx: StageContext, found: Any) -> dict[str, Any]:
    from transformers import AutoModel, AutoTokenizer

    from kgpipe.lm.encoder import InjectionConfig, KnowledgeEnhancedEncoder, resolve_base_model
    from kgpipe.lm.knowledge_model import fit_align_map

    p: InjectParams = ctx.params
    knowledge = found.table
    # a relative folder is the pipeline root's, as every other path in a pipeline file
    in_root = ctx.root / p.base_model
    base_path = str(in_root) if (in_root / "config.json").is_file() else resolve_base_model(p.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    base = AutoModel.from_pretrained(base_path)
    config = InjectionConfig(mode=p.mode, base_model=p.base_model, combine=p.combine,  # type: ignore[arg-type]
                             layers=list(p.layers), freeze_base=p.freeze_base, storage=p.storage)
    config.embedding_artifact, config.embedding_sha256 = _embedding_source(ctx)
    metrics: dict[str, Any] = {}
    linear_map = None
    if p.mode == "align":
        fit = fit_align_map(knowledge, found.labels, tokenizer, base, orthogonal=p.orthogonal, ridge=p.ridge,
                            seed=p.seed, anchors=found.trained)
        linear_map = fit.map
        metrics.update(_align_metrics(fit))
    encoder = KnowledgeEnhancedEncoder(base, knowledge, config, linear_map)
    if p.mode == "fusion":
        metrics.update(_train_task(ctx, encoder, tokenizer, knowledge, base.config.hidden_size, "cls"))
    encoder.save_pretrained(ctx.output("model"), tokenizer=tokenizer)
    return metrics


def _run_decoder(ctx: StageContext, source: str, found: Any, entities: Any) -> dict[str, Any]:
    from kgpipe.lm.decoder_model import DecoderInjectionConfig, KnowledgeDecoder
    from kgpipe.lm.decoders import load_decoder, resolve_decoder
    from kgpipe.lm.knowledge_model import fit_align_map, relation_knowledge

    p: InjectParams = ctx.params
    knowledge = found.table
    base = resolve_decoder(source)
    lm, tokenizer = load_decoder(base)
    config = DecoderInjectionConfig(mode=p.mode, prefix_layers=p.prefix_layers,  # type: ignore[arg-type]
                                    max_entities=p.max_entities, adapter_hidden=p.adapter_hidden,
                                    lora_rank=p.lora_rank, combine=p.combine)
    config.embedding_artifact, config.embedding_sha256 = _embedding_source(ctx)
    metrics: dict[str, Any] = {}
    if p.mode == "align":
        fit = fit_align_map(knowledge, found.labels, tokenizer, lm, orthogonal=p.orthogonal, ridge=p.ridge,
                            seed=p.seed, anchors=found.trained)
        metrics.update(_align_metrics(fit))
        decoder = KnowledgeDecoder(lm, knowledge, config, linear_map=fit.map)
    else:
        path = ctx.input("relation_embeddings")
        relations = relation_knowledge(path, p.storage) if path is not None else None
        decoder = KnowledgeDecoder(lm, knowledge, config, relations=relations)
        if relations is not None:
            metrics["relations_with_vectors"] = len(relations)
        if p.objective == "task":
            metrics.update(_train_task(ctx, decoder, tokenizer, knowledge, lm.config.hidden_size, "between",
                                       relations))
        else:
            metrics.update(_train_generation(ctx, decoder, tokenizer, knowledge, relations, entities))
    decoder.save_pretrained(ctx.output("model"), base=base)
    return metrics


def _row_of(table: Any) -> Any:
    return lambda key: table.index.get(key, -1) if key else -1


def _train_generation(ctx: StageContext, decoder: Any, tokenizer: Any, knowledge: Any, relations: Any,
                      entities: Any) -> dict[str, Any]:
    from kgpipe.artifacts import TRIPLES, read_table
    from kgpipe.lm.generation import encode_generation, train_generation, verbalise
    from kgpipe.lm.task import TrainConfig

    p: InjectParams = ctx.params
    triples = read_table(ctx.input("triples"), TRIPLES)
    label_of = dict(zip(entities["id"], entities["label"], strict=True))
    examples = verbalise(zip(triples["head"], triples["relation"], triples["tail"], strict=True), label_of)
    items = encode_generation(tokenizer, examples, _row_of(knowledge),
                              _row_of(relations) if relations is not None else None, max_length=p.max_length)
    if not items:
        from kgpipe.errors import InputError

        raise InputError(f"no triple of {ctx.relpath(ctx.input('triples'))} fits in max_length {p.max_length} "
                         "tokens with labels from the entities table", hint="raise params.max_length")
    losses = train_generation(decoder, items, TrainConfig(p.epochs, p.batch_size, p.learning_rate, seed=p.seed),
                              progress=lambda done, total: ctx.report("train prefix", done, total))
    return {"objective": "generation", "generation_examples": len(items),
            "train_loss": [round(x, 4) for x in losses]}


def _train_task(ctx: StageContext, encoder: Any, tokenizer: Any, knowledge: Any, hidden_size: int, context: str,
                relations: Any = None) -> dict[str, Any]:
    """Train the knowledge modules with the span-pair head on the task file (fusion, or prefix/task)."""
    from kgpipe.errors import KgpipeError
    from kgpipe.lm.knowledge_model import load_linker, save_head
    from kgpipe.lm.task import SpanPairClassifier, TrainConfig, encode_examples, read_examples, train_classifier

    p: InjectParams = ctx.params
    task = ctx.input("task")
    if task is None:
        raise KgpipeError(f"mode '{p.mode}' trains on a task file, and none is given",
                          hint="add `task: <file.jsonl>` under the inject stage's deps, or use mode: align")
    examples = read_examples(task)
    linker = load_linker(ctx.output("model"), fuzzy_cutoff=p.fuzzy_cutoff, nil_threshold=p.nil_threshold)
    linked = 0
    for ex in examples:
        for side, attr in ((ex.subject, "subject_entity"), (ex.object, "object_entity")):
            if getattr(ex, attr) is None:
                best = linker.link(ex.text[side[0]:side[1]])
                setattr(ex, attr, best.entity_id if best else None)
            linked += getattr(ex, attr) in knowledge.index
    task_labels = sorted({ex.label for ex in examples})
    items = encode_examples(tokenizer, examples, task_labels, _row_of(knowledge), max_length=p.max_length,
                            relation_row=_row_of(relations) if relations is not None else None)
    model = SpanPairClassifier(encoder, hidden_size, len(task_labels), knowledge=True,
                               context=context)  # type: ignore[arg-type]
    losses = train_classifier(model, items, TrainConfig(p.epochs, p.batch_size, p.learning_rate, seed=p.seed),
                              progress=lambda done, total: ctx.report(f"train {p.mode}", done, total))
    save_head(model.head.classifier, task_labels, ctx.output("model"))
    return {"task_examples": len(examples), "task_mentions_linked": linked, "task_labels": len(task_labels),
            "train_loss": [round(x, 4) for x in losses]}
