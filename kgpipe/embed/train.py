"""Train and evaluate one model: a single typed wrapper around pykeen.pipeline.pipeline, with checkpoints in
a work folder (an interrupted run resumes), early stopping on validation, and failures turned into errors.

The trained model is saved in the work folder as soon as pipeline() returns, so a failure after training
(exporting, plotting) never trains again.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kgpipe.atomic import atomic_write_text
from kgpipe.embed.config import TrainingConfig, resolver
from kgpipe.embed.data import GraphData
from kgpipe.embed.runtime import resolve_device
from kgpipe.errors import KgpipeError

log = logging.getLogger(__name__)

CHECKPOINT = "training.pt"
BEST_WEIGHTS = "best-model.pt"
TRAINED = "trained"
OUTCOME = "outcome.json"
PROGRESS = "progress.json"

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
    notes: list[str] = field(default_factory=list)

    @property
    def epochs_trained(self) -> int:
        return len(self.losses)


@dataclass
class Trained:
    model: Any
    outcome: Outcome
    folder: Path  # the saved model (model_io format), to copy into the stage's output


def summarize_metrics(results: Any) -> dict[str, Any]:
    """Filtered rank-based metrics, realistic ranks: both sides at the top level, then per side."""
    def side(name: str) -> dict[str, float]:
        return {key: float(results.get_metric(f"{name}.realistic.{metric}")) for key, metric in METRICS.items()}

    return {**side("both"), "head": side("head"), "tail": side("tail"), "rank_type": "realistic",
            "filtered": True}


def train_and_evaluate(graph: GraphData, config: TrainingConfig, *, workdir: Path,
                       on_epoch: EpochCallback | None = None, checkpoint_minutes: int = 1) -> Trained:
    """Train config's model on graph.training, early-stopping on graph.validation, and evaluate on testing.

    workdir keeps checkpoints: calling again with the same graph and config after an interruption continues
    from the last checkpoint and ends with the same model as an uninterrupted run.
    """
    from kgpipe.embed.model_io import load_model

    workdir.mkdir(parents=True, exist_ok=True)
    trained = workdir / TRAINED
    if (trained / OUTCOME).exists():
        log.info("training already finished in %s; using its model", trained)
        model, _, _ = load_model(trained, device=resolve_device(config.device))
        outcome = Outcome(**json.loads((trained / OUTCOME).read_text(encoding="utf-8")))
        return Trained(model=model, outcome=outcome, folder=trained)

    result, outcome = _run_pipeline(graph, config, workdir, on_epoch, checkpoint_minutes)
    _save(trained, result.model, graph, config, outcome)
    return Trained(model=result.model, outcome=outcome, folder=trained)


def _run_pipeline(graph: GraphData, config: TrainingConfig, workdir: Path, on_epoch: EpochCallback | None,
                  checkpoint_minutes: int) -> tuple[Any, Outcome]:
    from pykeen.pipeline import pipeline
    from pykeen.training.training_loop import NonFiniteLossError
    from torch_max_mem.api import is_oom_error

    device = resolve_device(config.device)
    checkpoints = workdir / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    notes: list[str] = []
    stopping = config.early_stopping
    if stopping is not None and graph.validation is None:
        notes.append("early stopping is off: there is no validation split (validation_fraction is 0)")
        log.warning(notes[-1])
        stopping = None
    resumed_from, seconds_before = _resume_point(checkpoints, workdir / PROGRESS)
    progress = _progress_callback(workdir / PROGRESS, config.epochs, on_epoch, resumed_from, seconds_before)

    training_loop_kwargs = {"automatic_memory_optimization": device.startswith("cuda"),
                            **config.training_loop_kwargs}
    stopper_kwargs = None
    if stopping is not None:
        stopper_kwargs = {"metric": stopping.metric, "frequency": stopping.frequency,
                          "patience": stopping.patience, "relative_delta": stopping.relative_delta,
                          # in the work folder, not PyKEEN's home: a resumed run needs the same file
                          "best_model_path": checkpoints / BEST_WEIGHTS}
    started = time.perf_counter()
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
    try:
        result = pipeline(
            training=graph.training, validation=graph.validation, testing=graph.testing,
            model=config.model, model_kwargs=dict(config.model_kwargs),
            # the class, not the name: resolver() registers kgpipe's own losses (kgpipe.embed.extensions) first
            loss=resolver("loss").lookup(config.loss) if config.loss else None, loss_kwargs=dict(config.loss_kwargs),
            regularizer=config.regularizer, regularizer_kwargs=dict(config.regularizer_kwargs) or None,
            optimizer=config.optimizer, optimizer_kwargs=dict(config.optimizer_kwargs),
            training_loop=config.training_loop, training_loop_kwargs=training_loop_kwargs,
            negative_sampler=config.negative_sampler,
            negative_sampler_kwargs=dict(config.negative_sampler_kwargs) or None,
            epochs=config.epochs,
            training_kwargs={"batch_size": config.batch_size, "label_smoothing": config.label_smoothing,
                             "use_tqdm": False, "checkpoint_directory": str(checkpoints),
                             "checkpoint_name": CHECKPOINT, "checkpoint_frequency": checkpoint_minutes,
                             "callbacks": [progress], "pin_memory": device.startswith("cuda")},
            stopper="early" if stopping is not None else None, stopper_kwargs=stopper_kwargs,
            evaluator="rankbased", evaluator_kwargs={"filtered": True, "batch_size": config.evaluation_batch_size},
            evaluation_kwargs={"batch_size": config.evaluation_batch_size, "use_tqdm": False,
                               # training and validation are filtered by PyKEEN; deps.known besides
                               **({"additional_filter_triples": [graph.known.mapped_triples]}
                                  if graph.known is not None else {})},
            random_seed=config.seed, device=device, use_tqdm=False,
        )
    except NonFiniteLossError:
        lr = config.learning_rate
        raise TrainingFailed(
            f"the training loss became NaN or infinite in epoch {progress.last_epoch + 1} "
            f"(learning rate {lr:g})" if lr is not None else
            f"the training loss became NaN or infinite in epoch {progress.last_epoch + 1}",
            hint=f"lower the learning rate, e.g. learning_rate: {lr / 10:g}" if lr else "lower the learning rate",
        ) from None
    except (RuntimeError, MemoryError) as exc:
        if not is_oom_error(exc):
            raise
        smaller = max(1, config.batch_size // 2)
        where = (f"training epoch {progress.last_epoch + 1}" if progress.last_epoch < config.epochs
                 else "evaluation")
        raise TrainingFailed(
            f"out of memory on {device} during {where} with batch_size {config.batch_size}",
            hint=f"try batch_size: {smaller} (or a smaller evaluation_batch_size: "
                 f"{max(1, config.evaluation_batch_size // 2)}); checkpoints are kept",
        ) from None
    finally:
        if not caller_froze:
            gc.unfreeze()
        quiet.setLevel(level)
    wall = time.perf_counter() - started

    stopper = result.stopper
    validation, best_epoch, stopped = [], None, False
    if stopping is not None:
        validation = [{"epoch": stopping.frequency * (i + 1), stopping.metric: float(value)}
                      for i, value in enumerate(stopper.results)]
        best_epoch, stopped = stopper.best_epoch, bool(stopper.stopped)
    outcome = Outcome(
        losses=[float(x) for x in result.losses], validation=validation, best_epoch=best_epoch,
        stopped_early=stopped, metrics={**summarize_metrics(result.metric_results),
                                        "triples": int(graph.testing.num_triples)},
        training_seconds=round(seconds_before + float(result.train_seconds), 3),
        evaluation_seconds=round(float(result.evaluate_seconds), 3), device=device,
        resumed_from_epoch=resumed_from, early_stopping=None if stopping is None else asdict(stopping),
        notes=notes)
    log.info("trained %s for %d epochs in %.1fs (this attempt %.1fs)", config.model, outcome.epochs_trained,
             outcome.training_seconds, wall)
    return result, outcome


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


def _resume_point(checkpoints: Path, progress_file: Path) -> tuple[int | None, float]:
    """The epoch a checkpoint left off at (None: start fresh) and the training seconds spent before it."""
    import torch

    path = checkpoints / CHECKPOINT
    if not path.exists():
        return None, 0.0
    # our own file in the work folder; PyKEEN writes its checkpoints with torch.save
    state = torch.load(path, map_location="cpu", weights_only=False)
    if (state.get("stopper_dict") or {}).get("stopped"):
        # PyKEEN would resume this with the last epoch's weights instead of the best epoch's: start over
        log.warning("the checkpoint in %s is of a run that already stopped early; training again", checkpoints)
        shutil.rmtree(checkpoints)
        checkpoints.mkdir()
        progress_file.unlink(missing_ok=True)
        return None, 0.0
    epoch = int(state["epoch"])
    seconds = 0.0
    try:
        cumulative = json.loads(progress_file.read_text(encoding="utf-8"))["cumulative_seconds"]
        seconds = float(cumulative[epoch - 1]) if 0 < epoch <= len(cumulative) else 0.0
    except (OSError, ValueError, KeyError):
        pass
    log.info("resuming training from the checkpoint after epoch %d", epoch)
    return epoch, seconds


def _progress_callback(progress_file: Path, epochs: int, on_epoch: EpochCallback | None,
                       resumed_from: int | None, seconds_before: float) -> Any:
    """A PyKEEN training callback: reports each epoch, remembers the last finished one, and keeps the
    cumulative training time per epoch so a resumed run can report its total."""
    from pykeen.training.callbacks import TrainingCallback

    class EpochProgress(TrainingCallback):
        def __init__(self) -> None:
            super().__init__()
            self.last_epoch = resumed_from or 0
            self.cumulative: list[float] = []
            if resumed_from:
                try:
                    stored = json.loads(progress_file.read_text(encoding="utf-8"))["cumulative_seconds"]
                    self.cumulative = [float(s) for s in stored[:resumed_from]]
                except (OSError, ValueError, KeyError):
                    self.cumulative = []
            self.started = time.perf_counter() - seconds_before

        def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
            self.last_epoch = epoch
            self.cumulative.append(round(time.perf_counter() - self.started, 3))
            # replaced, not fsynced: a lost update costs only the resumed run's time report
            staging = progress_file.with_name(progress_file.name + ".tmp")
            staging.write_text(json.dumps({"cumulative_seconds": self.cumulative}), encoding="utf-8")
            os.replace(staging, progress_file)
            if on_epoch is not None:
                on_epoch(epoch, epochs, epoch_loss)

    return EpochProgress()
