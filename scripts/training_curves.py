"""Training curves (loss and validation Dice per epoch) from the logs of bundle training runs, as CSV and PNG.

Usage (from the repository root)::

    python -m scripts.training_curves --logs stage1=RUN/logs/stage1.log,brainstem=RUN/logs/stage2_brainstem.log \\
        --out bundles/head_neck_two_stage_unet/docs/training_curves \\
        [--cpu stage1=RUN/stage1/cpu_curve.csv,brainstem=RUN/brainstem/cpu_curve_brainstem.csv]

Reads what MONAI's ``StatsHandler`` prints during ``python -m monai.bundle run`` (the lines
``Epoch: 3/25, Iter: 17/153 -- train_loss: 0.6268`` and ``Epoch[4] Metrics -- val_mean_dice: 0.3849``) and
writes ``<out>.csv`` (``run, epoch, train_loss, val_mean_dice``: the mean loss of the epoch's iterations, and the
validation Dice where the epoch ended with a validation, else empty) and ``<out>.png`` (one panel each, one line
per run). A resumed run logs the epochs after its checkpoint again: the last value logged for an epoch is kept.
With ``--cpu``, each run's CPU-seconds per epoch (the ``cpu_curve*.csv`` that the head-and-neck bundle's ``CpuClock``
writes) add a ``cpu_hours`` column, and the Dice panel is drawn against CPU-hours instead of epochs.
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


def read_cpu_curve(path: str | Path) -> dict[int, float]:
    """``{epoch: CPU-hours at its end}`` from a ``CpuClock`` CSV (``epoch, cpu_s, ...``)."""
    with open(path) as f:
        return {int(r["epoch"]): float(r["cpu_s"]) / 3600 for r in csv.DictReader(f)}


def write_curves(
    logs: dict[str, str | Path], out: str | Path, cpu: dict[str, str | Path] | None = None
) -> tuple[Path, Path]:
    """Write ``<out>.csv`` and ``<out>.png`` for ``{run name: log file}`` (and ``{run name: CpuClock CSV}``);
    returns both paths."""
    from custom_networks.extras import require

    matplotlib = require("matplotlib", "The training-curve figure")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {name: read_log(path) for name, path in logs.items()}
    hours = {name: read_cpu_curve(path) for name, path in (cpu or {}).items()}
    if set(hours) - set(runs):
        raise ValueError(f"--cpu names runs that --logs does not: {sorted(set(hours) - set(runs))}")
    for name, rows in runs.items():
        for r in rows:
            r["cpu_hours"] = hours.get(name, {}).get(r["epoch"])
    by_cpu = bool(hours) and set(hours) == set(runs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out.with_suffix(".csv"), out.with_suffix(".png")
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "epoch", "train_loss", "val_mean_dice"] + (["cpu_hours"] if hours else []))
        for name, rows in runs.items():
            for r in rows:
                dice = "" if r["val_mean_dice"] is None else f"{r['val_mean_dice']:.4f}"
                cpu_cell = [] if not hours else ["" if r["cpu_hours"] is None else f"{r['cpu_hours']:.4f}"]
                writer.writerow([name, r["epoch"], f"{r['train_loss']:.4f}", dice] + cpu_cell)
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in runs.items():
        ax_loss.plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], label=name)
        x = "cpu_hours" if by_cpu else "epoch"
        validated = [r for r in rows if r["val_mean_dice"] is not None and r[x] is not None]
        ax_dice.plot([r[x] for r in validated], [r["val_mean_dice"] for r in validated], marker=".", label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss (epoch mean)", title="loss")
    ax_dice.set(xlabel="CPU-hours (user + system)" if by_cpu else "epoch", ylabel="validation mean Dice",
                title="validation Dice (model selection)", ylim=(0, 1))
    ax_dice.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return csv_path, png_path


def _pairs(value: str | tuple | None) -> dict[str, str]:
    """``name=path,name=path`` (a string, or the tuple fire makes of it) -> ``{name: path}``."""
    if not value:
        return {}
    return dict(item.split("=", 1) for item in (value if isinstance(value, str) else ",".join(value)).split(",") if item)


def main(logs: str, out: str, cpu: str | None = None) -> None:
    """CLI: ``--logs name=path,name=path --out PREFIX [--cpu name=cpu.csv,...]`` (writes PREFIX.csv and PREFIX.png)."""
    try:
        for path in write_curves(_pairs(logs), out, _pairs(cpu)):
            print(path)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    fire.Fire(main)
