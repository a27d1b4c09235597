"""The embed stage: the fused graph (or any triples table, TSV, split folder or PyKEEN dataset) in; PyKEEN
entity and relation embeddings, the trained model, test metrics and the training curve out.

Thin glue over kgpipe.embed: params become a TrainingConfig (kgpipe's per-model defaults plus what the
pipeline sets), checked by validate() before any stage runs; checkpoints (safetensors + JSON) live in the
stage's scratch folder so an interrupted run resumes. Equal inputs and seeds give byte-identical outputs:
what differs run to run (timings, device, a resume) goes into the returned summary (the lock entry).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from kgpipe.stage import InputSpec, OutputSpec, StageContext, StageParams, StageType, ValidationContext

if TYPE_CHECKING:
    from kgpipe.config import Stage
    from kgpipe.lockfile import LockEntry
    from kgpipe.summary import StageSummary

Kwargs = dict[str, Any]


class EarlyStoppingParams(StageParams):
    metric: str | None = Field(None, description="PyKEEN rank-based metric on validation (default mrr)")
    frequency: int | None = Field(None, ge=1, description="evaluate every N epochs")
    patience: int | None = Field(None, ge=0, description="evaluations without improvement before stopping")
    relative_delta: float | None = Field(None, ge=0, description="smallest relative improvement that counts")


class EmbedParams(StageParams):
    dataset: str | None = Field(None, description="a PyKEEN dataset by name (e.g. Nations), instead of deps.triples")
    validation_fraction: float = Field(0.1, ge=0, lt=1, description="share of the triples held out for early "
                                       "stopping when no validation split is given (0: none)")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="share held out for the test metrics when no "
                                 "testing split is given")
    model: str = Field("ComplEx", description="any PyKEEN model name")
    defaults: Literal["kgpipe", "pykeen"] = Field("kgpipe", description="what unset training settings default "
                                                  "to: kgpipe's tuned per-model values, or PyKEEN's pipeline()")
    model_kwargs: Kwargs = Field(default_factory=dict)
    embedding_dim: int | None = Field(None, ge=1, description="default: kgpipe's per-model default")
    loss: str | None = None
    loss_kwargs: Kwargs = Field(default_factory=dict)
    regularizer: str | None = None
    regularizer_kwargs: Kwargs = Field(default_factory=dict)
    training_loop: str | None = Field(None, description="sLCWA, LCWA or SymmetricLCWA")
    training_loop_kwargs: Kwargs = Field(default_factory=dict)
    negative_sampler: str | None = Field(None, description="sLCWA only: basic, bernoulli, pseudotyped")
    negative_sampler_kwargs: Kwargs = Field(default_factory=dict)
    optimizer: str | None = None
    optimizer_kwargs: Kwargs = Field(default_factory=dict)
    learning_rate: float | None = Field(None, gt=0)
    label_smoothing: float | None = Field(None, ge=0, lt=1)
    inverse_triples: bool | None = Field(None, description="train reciprocal relations (head prediction as "
                                         "tail prediction on the inverse relation)")
    epochs: int | None = Field(None, ge=1, description="the most epochs; early stopping may end sooner")
    batch_size: int | None = Field(None, ge=1, description="pinned (never searched), for reproducibility")
    seed: int = 42
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda, cuda:N")
    early_stopping: EarlyStoppingParams | None = Field(
        default_factory=EarlyStoppingParams,
        description="false (off), true (per-model defaults) or {metric, frequency, patience, relative_delta}")
    evaluation_batch_size: int | None = Field(None, ge=1)
    checkpoint_minutes: int = Field(1, ge=0, description="minutes between checkpoints (0: every epoch)")
    split: Literal["pykeen", "hash"] | None = Field(
        None, description="how missing validation/testing splits are carved: pykeen (PyKEEN's seeded random "
        "splitter) or hash (each triple's split from a hash of the triple and the seed: a triple keeps its split "
        "when triples are added); default: hash with warm_start, else pykeen")
    warm_start: bool = Field(False, description="start persisting entities and relations from the vectors of the "
                             "stage's previous model (same model and model_kwargs), new ones as usual")
    warm_epochs: int | None = Field(None, ge=1, description="the most epochs of a warm-started run (default: a "
                                    "quarter of epochs, at least one early-stopping interval)")

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _early_stopping_switch(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @model_validator(mode="after")
    def _fractions_leave_training(self) -> EmbedParams:
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("validation_fraction + test_fraction must leave triples for training (sum < 1)")
        return self

    @model_validator(mode="after")
    def _warm_start_settings(self) -> EmbedParams:
        if self.warm_epochs is not None and not self.warm_start:
            raise ValueError("warm_epochs applies only with warm_start: true")
        if self.warm_start and self.split == "pykeen":
            raise ValueError("warm_start with split: pykeen would test on triples the previous model trained on "
                             "(PyKEEN's splitter reshuffles when triples change); use split: hash, the default "
                             "with warm_start")
        return self

    @property
    def split_method(self) -> Literal["pykeen", "hash"]:
        """split as set, else hash with warm_start (a stable split), else PyKEEN's splitter (as before)."""
        if self.split is not None:
            return self.split
        return "hash" if self.warm_start else "pykeen"

    def overrides(self) -> dict[str, Any]:
        """The training settings this pipeline sets (unset ones come from kgpipe's defaults for the model)."""
        names = ("model_kwargs", "embedding_dim", "loss", "loss_kwargs", "regularizer", "regularizer_kwargs",
                 "training_loop", "training_loop_kwargs", "negative_sampler", "negative_sampler_kwargs",
                 "optimizer", "optimizer_kwargs", "learning_rate", "label_smoothing", "inverse_triples",
                 "epochs", "batch_size", "seed", "device", "evaluation_batch_size")
        values = {name: getattr(self, name) for name in names if name in self.model_fields_set}
        values.setdefault("seed", self.seed)
        values.setdefault("device", self.device)
        if "early_stopping" in self.model_fields_set:
            values["early_stopping"] = (False if self.early_stopping is None
                                        else self.early_stopping.model_dump(exclude_none=True))
        return values


class EmbedStage(StageType):
    name = "embed"
    remote = True  # one training process; on the Ray engine a task on a node with the stage's resources
    # 2: TransE's default is at most 24 epochs (was 30); 3: ComplEx's defaults (onevsall, N3 0.2);
    # 4: metrics.json without timings, device or resume (they went to the summary), safetensors checkpoints
    version = 4
    description = "learn entity and relation embeddings with PyKEEN; evaluate, export, save the model"
    Params = EmbedParams
    inputs = (
        InputSpec("triples", required=False, doc="fuse's triples.parquet, any head/relation/tail table, a TSV "
                  "file, or a folder of train/valid/test files"),
        InputSpec("entities", required=False, doc="fuse's entities.parquet: labels for the entity ids"),
        InputSpec("validation", required=False, doc="validation triples (else a validation_fraction of triples)"),
        InputSpec("testing", required=False, doc="test triples (else a test_fraction of triples)"),
        InputSpec("known", required=False, doc="further true triples, neither trained on nor tested, filtered "
                  "from the test ranking (e.g. the test split while deps.testing is the validation split)"),
    )
    outputs = (
        OutputSpec("entity_embeddings", "entity_embeddings.parquet", role="entity_embeddings", doc="id, label, vector"),
        OutputSpec("relation_embeddings", "relation_embeddings.parquet", role="relation_embeddings",
                   doc="id, label, vector, inverse"),
        OutputSpec("embeddings", "embeddings.safetensors", doc="both matrices, id maps and layouts as metadata"),
        OutputSpec("model", "model", folder=True, role="model", doc="model.safetensors, "
                   "training_triples.safetensors, model.json (no pickle)"),
        OutputSpec("metrics", "metrics.json", role="embed_metrics", doc="test metrics, config, seed, versions, "
                   "losses (timings are in the lock entry's summary)"),
        OutputSpec("loss_plot", "training_loss.png", role="loss_plot"),
    )

    def validate(self, ctx: ValidationContext) -> None:
        """Every PyKEEN name (model, loss, regularizer, optimizer, negative sampler, training loop, early-stopping
        metric, dataset) resolves, every *_kwargs key is one its class takes, and the device is here. Params
        that passed once are remembered (kgpipe.embed.validation), so a no-op run does not import PyKEEN."""
        from kgpipe.embed.runtime import use_workspace_pystow

        home = use_workspace_pystow(ctx.root)  # before PyKEEN is imported
        from kgpipe.embed.config import ConfigError
        from kgpipe.embed.validation import PassedParams, check_names, needs_device_check, params_key
        from kgpipe.errors import DependencyMissingError

        p: EmbedParams = ctx.params
        passed = PassedParams(home / "kgpipe" / "validated-embed.json")
        key = params_key(p.model_dump(mode="json"))
        try:
            if key not in passed:
                check_names(p)
            if needs_device_check(p.device):
                from kgpipe.embed.runtime import resolve_device

                resolve_device(p.device)
        except ConfigError as exc:
            raise ctx.error(exc.detail, param=exc.param, hint=exc.hint) from None
        except DependencyMissingError as exc:
            line = ctx.line_of("stages", ctx.stage, "params", "device")
            where = f"{ctx.pipeline_file}:{line}: " if line else f"{ctx.pipeline_file}: "
            raise DependencyMissingError(f"{where}stage '{ctx.stage}': {exc.message}", hint=exc.hint) from None
        if key not in passed:
            passed.add(key)

    @classmethod
    def summarise(cls, stage: Stage, entry: LockEntry | None) -> StageSummary | None:
        from kgpipe.stages.embed_summary import summarise

        return summarise(stage, entry)

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from kgpipe.embed.runtime import use_workspace_pystow

        use_workspace_pystow(ctx.root)  # before PyKEEN is imported: it writes under PYSTOW_HOME on import
        from kgpipe.embed.config import validate
        from kgpipe.embed.data import load_graph
        from kgpipe.embed.defaults import training_config
        from kgpipe.embed.export import export_embeddings
        from kgpipe.embed.plot import plot_training
        from kgpipe.embed.runtime import versions
        from kgpipe.embed.train import train_and_evaluate

        p: EmbedParams = ctx.params
        config, defaults_note = training_config(p.model, p.overrides(), defaults=p.defaults)
        validate(config)
        previous, not_warm = None, None
        if p.warm_start:
            from kgpipe.embed.warm_start import plan_warm_start, warm_config

            plan = plan_warm_start(ctx.previous_output("model"), config)
            previous, not_warm = plan.previous, plan.reason
            if previous is None:
                ctx.log.info("warm start: training from scratch: %s", not_warm)
            else:
                config = warm_config(config, p.warm_epochs)
        graph = load_graph(triples=ctx.input("triples"), entities=ctx.input("entities"),
                           validation=ctx.input("validation"), testing=ctx.input("testing"),
                           known=ctx.input("known"), dataset=p.dataset,
                           validation_fraction=p.validation_fraction, test_fraction=p.test_fraction,
                           seed=config.seed, inverse_triples=config.inverse_triples, split=p.split_method,
                           keep_in_training=previous.training_triples if previous is not None else (),
                           shown=ctx.relpath)
        # error messages name files as the user sees them; the artifacts name them portably (no absolute path)
        graph = replace(graph, origin={split: ctx.portable_path(where, "metrics") if Path(where).is_absolute()
                                       else where for split, where in graph.origin.items()})

        trained = train_and_evaluate(
            graph, config, workdir=ctx.scratch(), checkpoint_minutes=p.checkpoint_minutes,
            on_epoch=lambda epoch, total, loss: ctx.report("train epochs", epoch, total), warm_start=previous)
        outcome = trained.outcome
        for name in sorted(path.name for path in trained.folder.iterdir() if path.name != "outcome.json"):
            shutil.copyfile(trained.folder / name, ctx.output("model") / name)

        entity_ids, relation_ids = graph.entity_ids, graph.relation_ids
        exported = export_embeddings(
            trained.model, entity_ids=entity_ids, entity_labels=[graph.entity_labels[e] for e in entity_ids],
            relation_ids=relation_ids, relation_labels=[graph.relation_labels[r] for r in relation_ids],
            inverse_triples=config.inverse_triples, entity_table=ctx.output("entity_embeddings"),
            relation_table=ctx.output("relation_embeddings"), tensors=ctx.output("embeddings"),
            metadata={"model": config.model, "model_config": "model/model.json"})
        metric = config.early_stopping.metric if config.early_stopping else "mrr"
        plot_training(ctx.output("loss_plot"), outcome.losses, outcome.validation, metric=metric,
                      best_epoch=outcome.best_epoch, title=f"{config.model} on {graph.origin['training']}")

        metrics = {
            "test": outcome.metrics,
            "training": {"epochs": outcome.epochs_trained, "best_epoch": outcome.best_epoch,
                         "stopped_early": outcome.stopped_early, "losses": outcome.losses,
                         "validation": outcome.validation, "early_stopping": outcome.early_stopping},
            "config": config.as_dict(), "defaults": defaults_note, "seed": config.seed,
            "versions": versions(), "data": graph.stats(),
            "embeddings": {"entity_layout": exported["entity_layout"],
                           "relation_layout": exported["relation_layout"],
                           "other_representations": exported["other_representations"]},
            "warnings": [*graph.warnings, *outcome.notes],
        }
        if p.warm_start:  # the previous model is an input: its hash, as the lock file records the model out
            metrics["warm_start"] = ({"from": None, "reason": not_warm} if previous is None
                                     else {"from": previous.sha256, **(outcome.warm_start or {})})
        ctx.output("metrics").write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
        # what varies run to run lives here (the lock entry), so that the artifacts do not
        summary = {"entities": graph.training.num_entities, "relations": len(relation_ids),
                   "training_triples": graph.training.num_triples, "epochs": outcome.epochs_trained,
                   "mrr": round(outcome.metrics["mrr"], 4), "hits_at_10": round(outcome.metrics["hits_at_10"], 4),
                   "device": outcome.device,
                   "timings": {"training_seconds": outcome.training_seconds,
                               "evaluation_seconds": outcome.evaluation_seconds}}
        if outcome.resumed_from_epoch:
            summary["resumed_from_epoch"] = outcome.resumed_from_epoch
        if outcome.checkpoint_discarded:
            summary["checkpoint_discarded"] = outcome.checkpoint_discarded
        if previous is not None:
            summary["warm_started_from"] = previous.sha256
            summary["warm_start"] = outcome.warm_start or {}
        elif p.warm_start:
            summary["warm_start_skipped"] = not_warm
        return summary
