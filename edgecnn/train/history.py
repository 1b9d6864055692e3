"""What a training run leaves for people: history.csv and history.png (report.json and the
confusion matrix are written with :mod:`edgecnn.tools.report_files` and
:mod:`edgecnn.tools.plots`)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from edgecnn.tools import plots

HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
)


def write_history_csv(path: Path, rows: Sequence[dict[str, float]]) -> None:
    """One row per epoch with the columns of :data:`HISTORY_COLUMNS`."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in HISTORY_COLUMNS})


def plot_history(path: Path, rows: Sequence[dict[str, float]], title: str) -> None:
    """Loss and accuracy curves, train vs validation, best validation epoch marked."""
    plt = plots.pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, [r.get(metric) for r in rows], "o-", label="train", markersize=3)
        if any("val_" + metric in r for r in rows):
            ax.plot(
                epochs,
                [r.get("val_" + metric) for r in rows],
                "o-",
                label="validation",
                markersize=3,
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plots.integer_ticks())  # epoch 1, 2, 3: never 1.5
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    plots.save(fig, path, dpi=100)
