"""Train and evaluate one model: PyKEEN's model, loss, optimizer, training loop and evaluator, built by its
resolvers as pykeen.pipeline.pipeline builds them, driven by kgpipe so that kgpipe owns the checkpoints.

PyKEEN's own checkpoints, its early stopper's best-model file and its resume path all use pickle
(full torch.load, not weights only): a planted file would run code. kgpipe passes PyKEEN no checkpoint
name, directory or best-model path; its callbacks keep the state in kgpipe.embed.checkpoint's format
(safetensors + JSON) in a work folder, and a damaged checkpoint is discarded with a warning. The trained
model is saved in the work folder as soon as training and evaluation end, so a failure after training
(exporting, plotting) never trains again.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgpipe.atomic import atomic_write_text
from kgpipe.embed.checkpoint import (
    Checkpoint,
    CheckpointRejected,
    capture_rng,
    discard,
    read_checkpoint,
    restore_rng,
    write_checkpoint,
)
from kgpipe.embed.config import TrainingConfig, resolver
from kgpipe.embed.data import GraphData
from kgpipe.embed.runtime import resolve_device
from kgpipe.embed.stopping import BestWeightsStopper
from kgpipe.errors import ArtifactError, KgpipeError

if TYPE_CHECKING:
    from kgpipe.embed.warm_start import PreviousModel

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
TRAINED = "trained"
OUTCOME = "outcome.json"

# metrics.json names -> PyKEEN metric names (realistic ranks: the mean of optimistic and pessimistic)
METRICS = {"mrr": "inverse_harmonic_mean_rank", "hits_at_1": "hits_at_1", "hits_at_3": "hits_at_3",
           "hits_at_10": "hits_at_10", "mean_rank": "arithmetic_mean_rank",
           "amri": "adjusted_arithmetic_mean_rank_index"}
EpochCallback = Callable[[int, int, float], None]  # (epoch, of epochs, loss)


class TrainingFailed(KgpipeError):
    """Training stopped on a problem the user can fix (NaN loss, out of memory)."""

    exit_code = 4


@dataclass
class Outcome:
    """What training and evaluation produced, apart from the model itself (kept as outcome.json)."""

    losses: list[float]
    validation: list[dict[str, float]]        # [{"epoch": 5, "mrr": 0.31}, ...]
    best_epoch: int | None
    stopped_early: bool
    metrics: dict[str, Any]
    training_seconds: float
    evaluation_seconds: float
    device: str
    resumed_from_epoch: int | None = None
    early_stopping: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)          # about the data and config: the same every run
    checkpoint_discarded: str | None = None                 # why a damaged checkpoint was not used
    identity: dict[str, Any] | None = None                  # the config and data it was trained on
    warm_start: dict[str, int] | None = None                # rows copied from the previous model, rows drawn new

    @property
    def epochs_trained(self) -> int:
        return len(self.losses)


@dataclass
class Trained:
    model: Any
    outcome: Outcome
    folder: Path  # the saved model (model_io format), to copy into the stage's output


@dataclass
class _Parts:
    """One training run's PyKEEN objects."""

    model: Any
    loop: Any
    evaluator: Any
    stopper: BestWeightsStopper | None


def summarize_metrics(results: Any) -> dict[str, Any]:
    """Filtered rank-based metrics, realistic ranks: both sides at the top level, then per side."""
    def side(name: str) -> dict[str, float]:
        return {key: float(results.get_metric(f"{name}.realistic.{metric}")) for key, metric in METRICS.items()}

    return {**side("both"), "head": side("head"), "tail": side("tail"), "rank_type": "realistic",
            "filtered": True}


def train_and_evaluate(graph: GraphData, config: TrainingConfig, *, workdir: Path,
                       on_epoch: EpochCallback | None = None, checkpoint_minutes: int = 1,
                       warm_start: PreviousModel | None = None) -> Trained:
    """Train config's model on graph.training, early-stopping on graph.validation, and evaluate on testing.

    workdir keeps checkpoints: calling again with the same graph and config after an interruption continues
    from the last checkpoint and ends with the same model as an uninterrupted run. warm_start: a previous model
    whose vectors the persisting entities and relations start from (kgpipe.embed.warm_start; checked to fit
    config by the caller).
    """
    from kgpipe.embed.model_io import load_model

    workdir.mkdir(parents=True, exist_ok=True)
    trained = workdir / TRAINED
    identity = _identity(graph, config)
    if warm_start is not None:  # an input like the triples: a checkpoint of another start is not this run's
        identity["warm_started_from"] = warm_start.sha256
    if (trained / OUTCOME).exists():
        try:
            outcome = Outcome(**json.loads((trained / OUTCOME).read_text(encoding="utf-8")))
            if outcome.identity != json.loads(json.dumps(identity)):
                raise ValueError("it was trained with another config or on other triples")
            model, _, _ = load_model(trained, device=resolve_device(config.device))
            log.info("training already finished in %s; using its model", trained)
            return Trained(model=model, outcome=outcome, folder=trained)
        except (ArtifactError, OSError, ValueError, TypeError, RecursionError) as exc:
            log.warning("the trained model in %s is damaged or not this run's (%s); training again", trained, exc)
            shutil.rmtree(trained, ignore_errors=True)

    model, outcome = _train(graph, config, identity, workdir / CHECKPOINTS, on_epoch, checkpoint_minutes,
                            warm_start)
    _save(trained, model, graph, config, outcome)
    return Trained(model=model, outcome=outcome, folder=trained)


def _identity(graph: GraphData, config: TrainingConfig) -> dict[str, Any]:
    """What a checkpoint or a trained model must belong to: this config, these training and validation
    triples."""
    def digest(factory: Any) -> str | None:
        if factory is None:
            return None
        return hashlib.sha256(factory.mapped_triples.detach().cpu().numpy().tobytes()).hexdigest()

    # validation decides early stopping; the test triples only the metrics, which are computed anew
    return {"config": config.as_dict(), "entities": int(graph.training.num_entities),
            "relations": int(graph.training.num_relations), "training_sha256": digest(graph.training),
            "validation_sha256": digest(graph.validation)}


def _build(graph: GraphData, config: TrainingConfig, device: str, stopping: Any,
           warm_start: PreviousModel | None = None) -> _Parts:
    """Seed, then model, optimizer, training loop and evaluator, in pipeline()'s order (each consumes random
    numbers: the same order gives pipeline()'s results). A model a warm start cannot copy into is refused here,
    before any epoch; the copy itself comes after PyKEEN's reset of the weights (_callbacks)."""
    from pykeen.evaluation import evaluator_resolver
    from pykeen.training import SLCWATrainingLoop
    from pykeen.utils import set_random_seed

    from kgpipe.embed.model_io import build_model

    set_random_seed(config.seed)
    model = build_model(config.as_dict(), graph.training, random_seed=config.seed).to(device)
    if warm_start is not None:
        from kgpipe.embed.warm_start import check_copyable

        check_copyable(model)
    optimizer = resolver("optimizer").make(config.optimizer, dict(config.optimizer_kwargs),
                                           params=model.get_grad_params())
    loop_cls = resolver("training_loop").lookup(config.training_loop)
    loop_kwargs: dict[str, Any] = {"automatic_memory_optimization": device.startswith("cuda"),
                                   **config.training_loop_kwargs}
    if config.negative_sampler is not None:
        loop_kwargs.update(negative_sampler=resolver("negative_sampler").lookup(config.negative_sampler),
                           negative_sampler_kwargs=dict(config.negative_sampler_kwargs) or None)
    elif config.negative_sampler_kwargs and issubclass(loop_cls, SLCWATrainingLoop):
        loop_kwargs["negative_sampler_kwargs"] = dict(config.negative_sampler_kwargs)
    loop = loop_cls(model=model, triples_factory=graph.training, optimizer=optimizer, lr_scheduler=None,
                    **loop_kwargs)
    evaluator = evaluator_resolver.make("rankbased", {"filtered": True,
                                                      "batch_size": config.evaluation_batch_size})
    stopper = None
    if stopping is not None:
        stopper = BestWeightsStopper(stopping, model=model, evaluator=evaluator, training=graph.training,
                                     validation=graph.validation,
                                     evaluation_batch_size=config.evaluation_batch_size)
    return _Parts(model=model, loop=loop, evaluator=evaluator, stopper=stopper)


def _restore(parts: _Parts, checkpoint: Checkpoint) -> None:
    """Put a checked checkpoint's state into freshly built parts; RNG states last, just before training."""
    parts.model.load_state_dict(checkpoint.model)
    parts.loop.optimizer.load_state_dict(checkpoint.optimizer)
    if not parts.loop.optimizer.state:
        # an optimizer without state (plain SGD) would make PyKEEN refuse to continue training; an empty
        # entry for a parameter is what the optimizer itself would create on its next step
        first = next(p for group in parts.loop.optimizer.param_groups for p in group["params"])
        parts.loop.optimizer.state[first] = {}
    parts.loop._epoch = checkpoint.epoch
    parts.loop.losses_per_epochs = list(checkpoint.losses)
    if parts.stopper is not None:
        state, settings = checkpoint.stopper, parts.stopper.settings
        if state is None:
            raise CheckpointRejected("it has no early-stopping state, and early stopping is on")
        if len(state.results) != checkpoint.epoch // settings.frequency:
            raise CheckpointRejected(f"it has {len(state.results)} validation results after epoch "
                                     f"{checkpoint.epoch}, evaluating every {settings.frequency}")
        if state.best_epoch is not None and not state.stopped and checkpoint.best is None:
            raise CheckpointRejected("its best epoch's weights are missing")
        parts.stopper.restore(state, checkpoint.best)
    elif checkpoint.stopper is not None:
        raise CheckpointRejected("it has an early-stopping state, and early stopping is off")
    restore_rng(checkpoint.rng)


def _resume(folder: Path, identity: dict[str, Any], build: Callable[[], _Parts]) -> tuple[_Parts, Checkpoint | None,
                                                                                        str | None]:
    """Fresh parts with the checkpoint's state (or none); a checkpoint that does not fit is discarded with a
    warning, and the parts are built again so that the run is a clean run."""
    parts = build()
    try:
        checkpoint = read_checkpoint(folder, identity, parts.model, parts.loop.optimizer)
        if checkpoint is None:
            return parts, None, None
        _restore(parts, checkpoint)
        log.info("resuming training from the checkpoint after epoch %d", checkpoint.epoch)
        return parts, checkpoint, None
    except CheckpointRejected as exc:
        reason = f"the checkpoint in {folder} was discarded: {exc}; training starts over"
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # torch refused a checked state after all
        reason = f"the checkpoint in {folder} was discarded: {type(exc).__name__}: {exc}; training starts over"
    log.warning(reason)
    discard(folder)
    return build(), None, reason


def _callbacks(parts: _Parts, folder: Path, identity: dict[str, Any], config: TrainingConfig,
               on_epoch: EpochCallback | None, checkpoint_minutes: int, seconds_before: float,
               warm_start: tuple[PreviousModel, GraphData] | None = None) -> Any:
    """PyKEEN training callbacks, in order: progress, early stopping, checkpoint (last, so that it saves the
    state every other callback left), and the warm start's copy (a run that resumes a checkpoint has none)."""
    from pykeen.training.callbacks import TrainingCallback

    started = time.perf_counter()

    class WarmStart(TrainingCallback):
        """The previous model's rows, copied before the first batch: after PyKEEN's training loop has reset
        every weight (as the initialiser draws them for a from-scratch run) and built its optimizer."""

        def __init__(self) -> None:
            super().__init__()
            self.pending = warm_start is not None

        def pre_batch(self, **kwargs: Any) -> None:
            if self.pending and warm_start is not None:
                from kgpipe.embed.warm_start import copy_vectors

                copy_vectors(self.model, *warm_start)
                self.pending = False

    class Progress(TrainingCallback):
        def __init__(self) -> None:
            super().__init__()
            self.last_epoch = parts.loop._epoch  # the last finished epoch, for error messages

        def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
            self.last_epoch = epoch
            if on_epoch is not None:
                on_epoch(epoch, config.epochs, epoch_loss)

    class Stopping(TrainingCallback):
        def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
            stopper = parts.stopper
            if stopper is not None and stopper.should_evaluate(epoch):
                if stopper.evaluate(epoch):
                    self.training_loop._should_stop = True
                self.model._free_graph_and_cache()

    class Checkpointing(TrainingCallback):
        def __init__(self) -> None:
            super().__init__()
            self.last = time.monotonic()

        def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
            due = time.monotonic() - self.last >= 60 * checkpoint_minutes
            if not (due or self.training_loop._should_stop or epoch == config.epochs):
                return
            stopper = parts.stopper
            write_checkpoint(folder, Checkpoint(
                epoch=epoch, losses=[float(x) for x in self.training_loop.losses_per_epochs],
                training_seconds=round(seconds_before + time.perf_counter() - started, 3),
                model=self.model.state_dict(), optimizer=self.training_loop.optimizer.state_dict(),
                rng=capture_rng(), stopper=None if stopper is None else stopper.state(),
                best=None if stopper is None else stopper.best_weights), identity)
            self.last = time.monotonic()

    return Progress(), Stopping(), Checkpointing(), WarmStart()


def _train(graph: GraphData, config: TrainingConfig, identity: dict[str, Any], folder: Path,
           on_epoch: EpochCallback | None, checkpoint_minutes: int,
           warm_start: PreviousModel | None = None) -> tuple[Any, Outcome]:
    from pykeen.training.training_loop import NonFiniteLossError
    from torch_max_mem.api import is_oom_error

    device = resolve_device(config.device)
    notes: list[str] = []
    stopping = config.early_stopping
    if stopping is not None and graph.validation is None:
        notes.append("early stopping is off: there is no validation split (validation_fraction is 0)")
        log.warning(notes[-1])
        stopping = None
    # torch_max_mem warns at every evaluation that CPU memory is not probed; kgpipe pins batch sizes anyway
    quiet = logging.getLogger("torch_max_mem.api")
    level = quiet.level
    if not device.startswith("cuda"):
        quiet.setLevel(logging.ERROR)
    # PyKEEN runs a full gc.collect() after every epoch, which walks every Python object in the process
    # (torch, pandas, pyarrow, ...: ~0.3M objects, 0.2 s CPU and up to 0.8 s wall on a busy machine). Objects
    # alive before training are not garbage training makes: freeze them out of the collector's sight (any
    # garbage among them is collected after unfreeze). A caller that froze objects itself keeps them frozen.
    caller_froze = gc.get_freeze_count() > 0
    gc.freeze()
    progress = None
    try:
        parts, checkpoint, discarded = _resume(
            folder, identity, lambda: _build(graph, config, device, stopping, warm_start))
        seconds_before = checkpoint.training_seconds if checkpoint else 0.0
        progress, *others = _callbacks(parts, folder, identity, config, on_epoch, checkpoint_minutes,
                                       seconds_before, None if checkpoint or warm_start is None
                                       else (warm_start, graph))
        finished = checkpoint is not None and (checkpoint.epoch >= config.epochs
                                               or (checkpoint.stopper is not None and checkpoint.stopper.stopped))
        started = time.perf_counter()
        if not finished:
            parts.loop.train(
                triples_factory=graph.training, num_epochs=config.epochs, batch_size=config.batch_size,
                label_smoothing=config.label_smoothing, use_tqdm=False, continue_training=checkpoint is not None,
                callbacks=[progress, *others], pin_memory=device.startswith("cuda"), clear_optimizer=False)
        training_seconds = round(seconds_before + time.perf_counter() - started, 3)
        started = time.perf_counter()
        metric_results = _evaluate(parts, graph, config.evaluation_batch_size)
        evaluation_seconds = round(time.perf_counter() - started, 3)
    except NonFiniteLossError:
        lr = config.learning_rate
        epoch = (progress.last_epoch if progress else 0) + 1
        raise TrainingFailed(
            f"the training loss became NaN or infinite in epoch {epoch} (learning rate {lr:g})" if lr is not None
            else f"the training loss became NaN or infinite in epoch {epoch}",
            hint=f"lower the learning rate, e.g. learning_rate: {lr / 10:g}" if lr else "lower the learning rate",
        ) from None
    except (RuntimeError, MemoryError) as exc:
        if not is_oom_error(exc):
            raise
        smaller = max(1, config.batch_size // 2)
        last = progress.last_epoch if progress else 0
        where = f"training epoch {last + 1}" if last < config.epochs else "evaluation"
        raise TrainingFailed(
            f"out of memory on {device} during {where} with batch_size {config.batch_size}",
            hint=f"try batch_size: {smaller} (or a smaller evaluation_batch_size: "
                 f"{max(1, config.evaluation_batch_size // 2)}); checkpoints are kept",
        ) from None
    finally:
        if not caller_froze:
            gc.unfreeze()
        quiet.setLevel(level)

    stopper = parts.stopper
    validation, best_epoch, stopped = [], None, False
    if stopper is not None:
        settings = stopper.settings  # the `stopping` it was built with
        validation = [{"epoch": settings.frequency * (i + 1), settings.metric: float(value)}
                      for i, value in enumerate(stopper.results)]
        best_epoch, stopped = stopper.best_epoch, bool(stopper.stopped)
    outcome = Outcome(
        losses=[float(x) for x in parts.loop.losses_per_epochs], validation=validation, best_epoch=best_epoch,
        stopped_early=stopped, metrics={**summarize_metrics(metric_results),
                                        "triples": int(graph.testing.num_triples)},
        training_seconds=training_seconds, evaluation_seconds=evaluation_seconds, device=device,
        resumed_from_epoch=checkpoint.epoch if checkpoint else None,
        early_stopping=None if stopping is None else asdict(stopping), notes=notes,
        checkpoint_discarded=discarded, identity=identity,
        warm_start=None if warm_start is None else _warm_counts(warm_start, graph))
    log.info("trained %s for %d epochs in %.1fs", config.model, outcome.epochs_trained, outcome.training_seconds)
    return parts.model, outcome


def _warm_counts(warm_start: PreviousModel, graph: GraphData) -> dict[str, int]:
    from kgpipe.embed.warm_start import row_counts

    return row_counts(warm_start, graph).as_dict()


def _evaluate(parts: _Parts, graph: GraphData, batch_size: int | None) -> Any:
    """Filtered rank-based metrics on the test triples, filtering training, deps.known and validation
    triples, as pipeline() evaluates (and with the batch and slice sizes its evaluator settled on)."""
    evaluator = parts.evaluator
    filters = [graph.training.mapped_triples]
    if graph.known is not None:
        filters.append(graph.known.mapped_triples)
    if graph.validation is not None:
        filters.append(graph.validation.mapped_triples)
    kwargs: dict[str, Any] = {"batch_size": batch_size, "use_tqdm": False, "additional_filter_triples": filters}
    if evaluator.batch_size is not None:
        kwargs.update(batch_size=evaluator.batch_size, slice_size=evaluator.slice_size)
    return evaluator.evaluate(model=parts.model, mapped_triples=graph.testing.mapped_triples, **kwargs)


def _save(folder: Path, model: Any, graph: GraphData, config: TrainingConfig, outcome: Outcome) -> None:
    """The trained model and its outcome, written to a temporary folder and renamed into place."""
    from kgpipe.embed.model_io import save_model

    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    entity_ids, relation_ids = graph.entity_ids, graph.relation_ids
    save_model(staging, model, training_triples=graph.training.mapped_triples, config=config.as_dict(),
               entity_ids=entity_ids, entity_labels=[graph.entity_labels[e] for e in entity_ids],
               relation_ids=relation_ids, relation_labels=[graph.relation_labels[r] for r in relation_ids],
               extra={"training": config.as_dict()})
    atomic_write_text(staging / OUTCOME, json.dumps(asdict(outcome), indent=1) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


