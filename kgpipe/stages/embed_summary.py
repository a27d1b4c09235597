"""The embed stage's summary: the model and its size, training length and time (from the lock entry: it varies
run to run), the test metrics on both sides, the loss curve and the metrics file's warnings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kgpipe.summary import Curve, Series, StageSummary, SummaryImage, SummaryTable, json_output, scalar

if TYPE_CHECKING:
    from kgpipe.config import Stage
    from kgpipe.lockfile import LockEntry


def summarise(stage: Stage, entry: LockEntry | None) -> StageSummary | None:
    metrics = json_output(stage.outs, "metrics")
    if metrics is None:
        return None
    summary = StageSummary("Embedding metrics", "embedding-metrics")
    data, training, config = metrics.get("data", {}), metrics.get("training", {}), metrics.get("config", {})
    for name, value in (("entities", data.get("entities")), ("training_triples", data.get("training_triples")),
                        ("epochs", training.get("epochs"))):
        if isinstance(value, int):
            summary.counts[name] = value
    timings = entry.summary.get("timings") if entry is not None else None
    seconds = timings.get("training_seconds") if isinstance(timings, dict) else None
    summary.metrics.update(model=scalar(config.get("model", "")),
                           dimensions=scalar(config.get("model_kwargs", {}).get("embedding_dim", "")),
                           stopped_early="yes" if training.get("stopped_early") else "no")
    if seconds is not None:
        summary.metrics["training_seconds"] = scalar(seconds)
    test = metrics.get("test", {})
    summary.tables.append(_test_table(test))
    plot = stage.outs.get("loss_plot")
    if plot is not None and plot.exists():  # the stage's own plot of the same curve
        summary.images.append(SummaryImage("embedding loss curve", plot))
    else:
        curve = _loss_curve(metrics)
        if curve is not None:
            summary.curves.append(curve)
    summary.warnings += [str(w) for w in metrics.get("warnings", [])]
    return summary


def _test_table(test: dict[str, Any]) -> SummaryTable:
    sides = [side for side in ("head", "tail") if isinstance(test.get(side), dict)]
    names = [k for k, v in test.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return SummaryTable("", ("test metric", "both sides", *sides),
                        [(name, test[name], *(test[side].get(name) for side in sides)) for name in names], digits=4)


def _loss_curve(metrics: dict[str, Any]) -> Curve | None:
    from kgpipe.explore import training_history

    history = training_history(metrics)
    if not len(history):
        return None
    metric = str(history.columns[-1])
    validated = history.dropna(subset=[metric])
    series = [Series("training loss", history["epoch"].astype(float).tolist(), history["loss"].astype(float).tolist())]
    if len(validated):
        series.append(Series(metric.replace("_", " "), validated["epoch"].astype(float).tolist(),
                             validated[metric].astype(float).tolist(), secondary=True))
    return Curve("loss curve", "epoch", series)
