"""Quick-start demo: make demo data, train briefly on CPU, evaluate, infer, and say where the outputs are.

    python -m scripts.demo knee_eas_unet [--out demo_output] [--epochs 40]

Runs the same `python -m monai.bundle run` commands a user types (printed before each step), with
small-network overrides so it finishes in minutes on a laptop CPU. Everything it writes goes under
``--out``; the bundle folder itself is not touched.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import fire

from scripts.common import registry
from scripts.common.bundles import REPO, Bundle

#: bundle -> small widths so the demo trains in minutes on 2 CPU cores (the bundles default to the papers' widths)
DEMO_OVERRIDES = {name: r.demo_overrides for name, r in registry.RECORDS.items() if r.demo_overrides}


def _run(cmd: list[str]) -> None:
    print("\n$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def main(bundle: str = "knee_eas_unet", out: str = "demo_output", epochs: int = 40) -> None:
    """Build the demo data for ``bundle``, train ``epochs`` epochs, evaluate on the testing split, infer.

    Prints the paths of the weights, metrics, overlays and label maps.
    """
    if bundle not in DEMO_OVERRIDES:
        raise SystemExit(f"No demo for bundle '{bundle}'. Demos exist for: {', '.join(sorted(DEMO_OVERRIDES))}.")
    root = (Path(out) if Path(out).is_absolute() else REPO / out) / bundle
    data, models, evals, outputs = root / "data", root / "models", root / "eval", root / "outputs"
    configs = Bundle(bundle).configs
    common = [f"--{k}={json.dumps(v, separators=(',', ':'))}" for k, v in DEMO_OVERRIDES[bundle].items()]
    val_interval = min(5, epochs)  # model.pt is written at validation: validate at least once
    paths = [f"--dataset_dir={data}", f"--ckpt_dir={models}"]
    py = sys.executable
    start = time.time()
    if not (data / "datalist.json").is_file():
        _run([py, "-m", "scripts.demo_data", bundle, f"--out={data}"])
    _run([py, "-m", "monai.bundle", "run", f"--config_file={configs / 'train.json'}", *paths,
          f"--output_dir={evals / 'train'}", f"--max_epochs={epochs}", f"--val_interval={val_interval}", *common])
    _run([py, "-m", "monai.bundle", "run",
          f"--config_file=['{configs / 'train.json'}','{configs / 'evaluate.json'}']", *paths,
          f"--output_dir={evals}", *common])
    _run([py, "-m", "monai.bundle", "run", f"--config_file={configs / 'inference.json'}", *paths,
          f"--output_dir={outputs}", *common])
    result = {
        "weights": str(models / "model.pt"),
        "metrics": str(evals / "metrics.csv"),
        "per_case_metrics": str(evals / "val_mean_dice_raw.csv"),
        "overlays": str(evals / "overlays"),
        "label_maps": str(outputs),
        "tensorboard": str(evals / "train"),
    }
    print(f"\nDemo finished in {time.time() - start:.0f} s. Synthetic data, tiny network: numbers are a smoke test.")
    for k, v in result.items():
        print(f"  {k:<17} {v}")


if __name__ == "__main__":
    fire.Fire(main)
