"""Training curves (loss and validation Dice per epoch) from the logs of bundle training runs, as CSV and PNG.

Usage (from the repository root)::

    python -m scripts.training_curves --logs stage1=RUN/logs/stage1.log,brainstem=RUN/logs/stage2_brainstem.log \\
        --out bundles/head_neck_two_stage_unet/docs/training_curves

Reads what MONAI's ``StatsHandler`` prints during ``python -m monai.bundle run`` (the lines
``Epoch: 3/25, Iter: 17/153 -- train_loss: 0.6268`` and ``Epoch[4] Metrics -- val_mean_dice: 0.3849``) and
writes ``<out>.csv`` (``run, epoch, train_loss, val_mean_dice``: the mean loss of the epoch's iterations, and the
validation Dice where the epoch ended with a validation, else empty) and ``<out>.png`` (one panel each, one line
per run). A resumed run logs the epochs after its checkpoint again: the last value logged for an epoch is kept.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import fire

ITERATION = re.compile(r"Epoch: (\d+)/\d+, Iter: (\d+)/\d+ -- train_loss: ([0-9.eE+-]+|nan)")
VALIDATION = re.compile(r"Epoch\[(\d+)\] Metrics -- val_mean_dice: ([0-9.eE+-]+|nan)")


def read_log(path: str | Path) -> list[dict]:
    """``[{"epoch", "train_loss", "val_mean_dice"}]`` of one training log, in epoch order."""
    losses: dict[int, dict[int, float]] = {}
    dice: dict[int, float] = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if m := ITERATION.search(line):
            losses.setdefault(int(m.group(1)), {})[int(m.group(2))] = float(m.group(3))
        elif m := VALIDATION.search(line):
            dice[int(m.group(1))] = float(m.group(2))
    if not losses:
        raise ValueError(f"{path} has no MONAI StatsHandler 'Epoch: e/E, Iter: i/N -- train_loss: x' lines")
    return [
        {"epoch": e, "train_loss": sum(v.values()) / len(v), "val_mean_dice": dice.get(e)}
        for e, v in sorted(losses.items())
    ]


def write_curves(logs: dict[str, str | Path], out: str | Path) -> tuple[Path, Path]:
    """Write ``<out>.csv`` and ``<out>.png`` for ``{run name: log file}``; returns both paths."""
    from custom_networks.extras import require

    matplotlib = require("matplotlib", "The training-curve figure")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {name: read_log(path) for name, path in logs.items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out.with_suffix(".csv"), out.with_suffix(".png")
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "epoch", "train_loss", "val_mean_dice"])
        for name, rows in runs.items():
            for r in rows:
                dice = "" if r["val_mean_dice"] is None else f"{r['val_mean_dice']:.4f}"
                writer.writerow([name, r["epoch"], f"{r['train_loss']:.4f}", dice])
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in runs.items():
        ax_loss.plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], label=name)
        validated = [r for r in rows if r["val_mean_dice"] is not None]
        ax_dice.plot([r["epoch"] for r in validated], [r["val_mean_dice"] for r in validated], marker=".", label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss (epoch mean)", title="loss")
    ax_dice.set(xlabel="epoch", ylabel="validation mean Dice", title="validation Dice (model selection)", ylim=(0, 1))
    ax_dice.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return csv_path, png_path


def main(logs: str, out: str) -> None:
    """CLI: ``--logs name=path,name=path --out PREFIX`` (writes PREFIX.csv and PREFIX.png)."""
    pairs = dict(item.split("=", 1) for item in (logs if isinstance(logs, str) else ",".join(logs)).split(",") if item)
    try:
        for path in write_curves(pairs, out):
            print(path)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    fire.Fire(main)
