"""The training curve as a PNG: loss per epoch, and the validation metric when early stopping evaluated it.

Drawn with matplotlib's Agg canvas directly (no pyplot), so it works headless and leaves the caller's
matplotlib backend alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from kgpipe.atomic import atomic_path


def plot_training(path: Path, losses: Sequence[float], validation: Sequence[Mapping[str, float]] = (),
                  *, metric: str = "mrr", best_epoch: int | None = None, title: str = "") -> None:
    """Write the loss curve (and validation metric on a second axis) to path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot(1, 1, 1)
    epochs = list(range(1, len(losses) + 1))
    axis.plot(epochs, losses, color="tab:blue", label="training loss")
    axis.set_xlabel("epoch")
    axis.set_ylabel("training loss", color="tab:blue")
    handles, labels = axis.get_legend_handles_labels()
    if validation:
        second = axis.twinx()
        second.plot([v["epoch"] for v in validation], [v[metric] for v in validation], "o-", color="tab:orange",
                    label=f"validation {metric}")
        second.set_ylabel(f"validation {metric}", color="tab:orange")
        if best_epoch is not None:
            second.axvline(best_epoch, color="tab:gray", linestyle="--", label=f"best epoch ({best_epoch})")
        more_handles, more_labels = second.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small", frameon=False)
    if title:
        axis.set_title(title)
    figure.subplots_adjust(left=0.11, right=0.88, bottom=0.2, top=0.9)  # fixed: tight_layout costs ~0.2 s
    with atomic_path(path) as tmp:
        # no timestamps in the file, so the same curve gives the same bytes
        figure.savefig(tmp, format="png", metadata={"Software": None})
