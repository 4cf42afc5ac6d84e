"""Train and evaluate a bundle's ablation rows and baselines with one budget, as config overrides.

    python -m scripts.compare_models knee_eas_unet --data DIR --out DIR [--minutes 8] [--variants all]
    python -m scripts.compare_models lower_limb_afu_unet --data DIR --out DIR [--minutes 8]

Each variant is the bundle's own ``train.json`` + ``evaluate.json`` with a few overrides (no code
copies; the rows are the registry's, :func:`scripts.common.registry.variants`), trained on the same data
with the same budget of training-step time (``--minutes`` of
forward+backward+update, validation excluded; checked at the end of each epoch), validated every
``--val_interval`` epochs and once more at the end, and the best validation checkpoint is evaluated
on the datalist's ``testing`` split. On a 2-core CPU the networks differ up to 10x in step time, so a
fixed time budget (what a user with this machine has) gives the slow ones fewer iterations: the
tables report iterations beside the scores. Finished variants are skipped on a re-run (delete
``<out>/<bundle>/<variant>/result.json`` to redo one), so an interrupted comparison resumes. Writes
``<out>/<bundle>/results.md`` and ``results.json``.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import fire
import torch

from scripts.common import registry
from scripts.common.bundles import Bundle, as_list

METRICS = ["val_mean_dice", "val_precision", "val_recall", "val_hd_mm", "val_hd95_mm", "val_mean_iou"]


def _summary(eval_dir: Path, metric: str) -> dict[str, float]:
    """Mean over test cases per class from MONAI's ``<metric>_summary.csv``."""
    with open(eval_dir / f"{metric}_summary.csv") as f:
        return {row["class"]: float(row["mean"]) for row in csv.DictReader(f)}


def _stop_after(trainer, evaluator, step_times: list[float], seconds: float, val_interval: int) -> None:
    """End training at the first epoch end past ``seconds`` of step time, validating that epoch if needed."""
    from ignite.engine import Events

    @trainer.on(Events.EPOCH_COMPLETED)
    def _check(engine) -> None:
        if sum(step_times) < seconds:
            return
        if engine.state.epoch % val_interval:
            evaluator.run(engine.state.epoch)
        engine.terminate()


def run_variant(bundle: str, variant: str, data: str, out: Path, minutes: float, val_interval: int) -> dict:
    """Train then evaluate one variant; returns its result dict (also written to ``result.json``)."""
    vdir = out / variant
    done = vdir / "result.json"
    if done.is_file():
        print(f"[{variant}] already done, skipping ({done})")
        return json.loads(done.read_text())
    work = Bundle(bundle, {"dataset_dir": data, "ckpt_dir": str(vdir / "models"), **registry.variants(bundle)[variant]})
    # a time budget per variant: an unfinished one starts again
    train = work.workflow(["train.json"], "train", logging=False, output_dir=str(vdir / "train"), max_epochs=100000,
                          val_interval=val_interval, resume=False)
    train.initialize()
    trainer = train.parser.get_parsed_content("train#trainer")
    step_times: list[float] = []
    from ignite.engine import Events

    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: step_times.append(-time.perf_counter()))
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: step_times.__setitem__(-1, step_times[-1] + time.perf_counter()))
    evaluator = train.parser.get_parsed_content("validate#evaluator")
    _stop_after(trainer, evaluator, step_times, 60 * minutes, val_interval)
    start = time.perf_counter()
    train.run()
    train_seconds = time.perf_counter() - start
    best = {"val_mean_dice": float(evaluator.state.best_metric), "epoch": int(evaluator.state.best_metric_epoch)}
    final_loss = float(trainer.state.output[0]["loss"]) if isinstance(trainer.state.output, list) else float("nan")
    net = train.parser.get_parsed_content("network_def")
    params = sum(p.numel() for p in net.parameters())
    train.finalize()

    evaluate = work.workflow(["train.json", "evaluate.json"], "eval", logging=False, output_dir=str(vdir / "eval"))
    evaluate.initialize()
    evaluate.run()
    evaluate.finalize()
    result = {
        "variant": variant,
        "parameters": params,
        "epochs": int(trainer.state.epoch),
        "step_seconds_budget": 60 * minutes,
        "iterations": len(step_times),
        "train_seconds": round(train_seconds, 1),
        "seconds_per_iteration": round(sum(step_times) / max(len(step_times), 1), 3),
        "final_train_loss": final_loss,
        "best_validation": best,
        "test": {m: _summary(vdir / "eval", m) for m in METRICS},
    }
    done.write_text(json.dumps(result, indent=2))
    print(f"[{variant}] done in {train_seconds:.0f} s: {json.dumps(result['test']['val_mean_dice'])}", flush=True)
    return result


def markdown_table(results: list[dict], class_names: dict[str, str]) -> str:
    """Per-class rows in the layout of paper 003's Table 1 (DSC, precision, recall in %, HD in mm)."""
    lines = ["| class | network | DSC % | Precision % | Recall % | HD mm | HD95 mm | IoU % | params | iterations | s/iter |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for cls, cname in class_names.items():
        for r in results:
            t = r["test"]
            lines.append(
                f"| {cname} | {r['variant']} | {100 * t['val_mean_dice'][cls]:.2f} | {100 * t['val_precision'][cls]:.2f} | "
                f"{100 * t['val_recall'][cls]:.2f} | {t['val_hd_mm'][cls]:.2f} | {t['val_hd95_mm'][cls]:.2f} | "
                f"{100 * t['val_mean_iou'][cls]:.2f} | {r['parameters']:,} | {r['iterations']} | "
                f"{r['seconds_per_iteration']:.2f} |"
            )
    return "\n".join(lines)


def main(bundle: str = "knee_eas_unet", data: str = "demo_output/knee_eas_unet/data", out: str = "comparisons",
         minutes: float = 8.0, val_interval: int = 2, variants: str = "all", threads: int = 2) -> None:
    """Run the comparison and write ``<out>/<bundle>/results.md``."""
    torch.set_num_threads(threads)
    names = list(registry.variants(bundle)) if variants == "all" else as_list(variants)
    root = Path(out) / bundle
    root.mkdir(parents=True, exist_ok=True)
    results = [run_variant(bundle, n, str(Path(data).resolve()), root, minutes, val_interval) for n in names]
    meta = json.loads((Bundle(bundle).configs / "metadata.json").read_text())
    channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    # MetricsSaver names the evaluated channels class0, class1, ...: a softmax head's background channel is
    # excluded, a single sigmoid channel is the foreground itself
    names = [v for k, v in sorted(channel_def.items(), key=lambda kv: int(kv[0])) if k != "0" or len(channel_def) == 1]
    class_names = {f"class{i}": name for i, name in enumerate(names)}
    table = markdown_table(results, class_names)
    (root / "results.json").write_text(json.dumps(results, indent=2))
    (root / "results.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    fire.Fire(main)
