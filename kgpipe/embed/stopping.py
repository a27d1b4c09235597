"""Early stopping on the validation split, as PyKEEN's EarlyStopper decides it, with the best epoch's weights
kept as a state_dict copy in memory (PyKEEN's stopper pickles them to a file and reloads them with pickle).

The decision (PyKEEN's EarlyStoppingLogic), the evaluation (filtered, on the validation triples, training
triples filtered) and the weights the run ends with are PyKEEN's: the best epoch's when it stops early,
the last epoch's when the epochs run out.
"""

from __future__ import annotations

import logging
from typing import Any

from kgpipe.embed.checkpoint import StopperState
from kgpipe.embed.config import EarlyStopping

log = logging.getLogger(__name__)


def weights_copy(model: Any) -> dict[str, Any]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


class BestWeightsStopper:
    """Evaluate every `frequency` epochs; stop after `patience` evaluations without a relative improvement of
    `relative_delta`, putting the best epoch's weights back into the model."""

    def __init__(self, settings: EarlyStopping, *, model: Any, evaluator: Any, training: Any, validation: Any,
                 evaluation_batch_size: int | None) -> None:
        from pykeen.stoppers.early_stopping import EarlyStoppingLogic

        self.settings = settings
        self.model, self.evaluator = model, evaluator
        self.training, self.validation = training, validation
        self.batch_size: int | None = evaluation_batch_size
        self.slice_size: int | None = None
        # PyKEEN's EarlyStopper as kgpipe's pipeline() call built it: larger is better for every metric
        self.logic = EarlyStoppingLogic(patience=settings.patience, relative_delta=settings.relative_delta,
                                        larger_is_better=True)
        self.results: list[float] = []
        self.stopped = False
        self.best_weights: dict[str, Any] | None = None

    @property
    def best_epoch(self) -> int | None:
        return self.logic.best_epoch

    def should_evaluate(self, epoch: int) -> bool:
        return epoch > 0 and epoch % self.settings.frequency == 0

    def evaluate(self, epoch: int) -> bool:
        """Evaluate on validation after `epoch`; True when training should stop (the model then holds the
        best epoch's weights)."""
        found = self.evaluator.evaluate(
            model=self.model, additional_filter_triples=self.training.mapped_triples,
            mapped_triples=self.validation.mapped_triples, use_tqdm=False, tqdm_kwargs={},
            batch_size=self.batch_size, slice_size=self.slice_size,
            do_time_consuming_checks=self.batch_size is None)
        # as PyKEEN's stopper: the sizes the evaluator settled on are reused
        self.batch_size, self.slice_size = self.evaluator.batch_size, self.evaluator.slice_size
        value = float(found.get_metric(self.settings.metric))
        self.results.append(value)
        self.stopped = self.logic.report_result(metric=value, epoch=epoch)
        if self.stopped:
            log.info("stopping early after epoch %d; the best %s (%.4f) was after epoch %d", epoch,
                     self.settings.metric, self.logic.best_metric, self.logic.best_epoch)
            if self.logic.best_epoch != epoch and self.best_weights is not None:
                self.model.load_state_dict(self.best_weights)
            return True
        if self.logic.best_epoch == epoch:
            self.best_weights = weights_copy(self.model)
        return False

    def state(self) -> StopperState:
        best = self.logic.best_epoch
        return StopperState(results=list(self.results), best_epoch=best,
                            best_metric=None if best is None else float(self.logic.best_metric),
                            remaining_patience=int(self.logic.remaining_patience), stopped=self.stopped)

    def restore(self, state: StopperState, best_weights: dict[str, Any] | None) -> None:
        self.results = list(state.results)
        self.stopped = state.stopped
        self.logic.best_epoch = state.best_epoch
        if state.best_metric is not None:
            self.logic.best_metric = state.best_metric
        self.logic.remaining_patience = state.remaining_patience
        self.best_weights = best_weights
