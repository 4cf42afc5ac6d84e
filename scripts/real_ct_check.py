"""Check a CT bundle on the two real CTs of ``../shared/data/totalsegmentator_example``.

    python -m scripts.real_ct_check lower_limb_afu_unet --ckpt_dir DIR --out DIR [--finetune_epochs 30]
        [--overrides '{"network_def#features": [16, 32, 64, 128]}'] [--shared ../shared/data]

The two real CTs (TotalSegmentator's public test files, thorax / upper abdomen, Apache-2.0):

* ``dicom``: a 20-slice DICOM series, 512 x 512, 0.98 x 0.98 x 2 mm, read as a series folder through the
  bundle's own CT input path, with the reference labels ``example_seg_dicom.nii.gz``;
* ``ct3mm``: a CT resampled to 3 mm, of which only the top 30 slices have reference labels
  (``example_seg.nii.gz``, aligned by its affine): the labelled slab is cut out of the CT into ``--out``
  so that unlabelled slices are not scored as background.

TotalSegmentator's classes are merged into the bundle's binary class with
:func:`custom_networks.labels.totalsegmentator.label_mapping` (``bone`` for the lower-limb bundle,
``vertebrae`` for the spine bundle) through the bundle's ``label_mapping`` entry: no label file is
rewritten. Three measurements, each the bundle's ``evaluate.json`` on one or both CTs:

1. ``phantom_only``: the weights in ``--ckpt_dir`` (trained on synthetic phantoms) on both CTs;
2. ``finetune_dicom``: those weights fine-tuned with the bundle's ``train.json`` for ``--finetune_epochs``
   epochs on ``dicom`` alone (validation on the same volume chooses the checkpoint; nothing of the test
   volume is seen), tested on ``ct3mm``;
3. ``finetune_ct3mm``: the same the other way round.

Metrics are computed on the bundle's preprocessed grid (after in-plane resampling). Writes
``<out>/results.md`` and ``results.json``; finished steps are skipped on a re-run.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import fire
import nibabel as nib
import numpy as np
import torch

from custom_networks.labels.totalsegmentator import label_mapping
from custom_networks.writers.base import write_atomically
from scripts.common import registry
from scripts.common.bundles import SHARED_DATA, Bundle

#: bundle -> TotalSegmentator class group merged into its foreground class (the registry's)
BUNDLE_GROUPS = {name: r.totalsegmentator_group for name, r in registry.RECORDS.items() if r.totalsegmentator_group}
METRICS = {"Dice": "val_mean_dice", "IoU": "val_mean_iou", "Precision": "val_precision", "Recall": "val_recall"}


def prepare_real_cts(shared: str | os.PathLike, out: str | os.PathLike) -> dict[str, dict[str, str]]:
    """The two labelled real CTs as datalist entries; cuts the labelled slab of the 3 mm CT into ``out``.

    Raises FileNotFoundError naming what is missing when ``shared`` lacks the TotalSegmentator example.
    """
    example = Path(shared) / "totalsegmentator_example"
    needed = ["example_ct_dicom", "example_seg_dicom.nii.gz", "example_ct.nii.gz", "example_seg.nii.gz"]
    missing = [n for n in needed if not (example / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"{example} lacks {', '.join(missing)}: pass --shared pointing at the folder that holds "
            "totalsegmentator_example/ (the project's ../shared/data)."
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    slab = out / "example_ct_labelled_slab.nii.gz"
    if not slab.is_file():
        ct, seg = nib.load(example / "example_ct.nii.gz"), nib.load(example / "example_seg.nii.gz")
        offset = np.linalg.inv(ct.affine) @ seg.affine
        if not np.allclose(offset[:3, :3], np.eye(3)) or not np.allclose(offset[:2, 3], 0):
            raise ValueError(f"{example / 'example_seg.nii.gz'} is not a z-slab of example_ct.nii.gz's grid")
        z0 = int(round(offset[2, 3]))
        data = np.asarray(ct.dataobj)[:, :, z0 : z0 + seg.shape[2]].astype(np.int16)
        write_atomically(slab, lambda tmp: nib.save(nib.Nifti1Image(data, seg.affine), tmp))
    return {
        "dicom": {"image": str(example / "example_ct_dicom"), "label": str(example / "example_seg_dicom.nii.gz")},
        "ct3mm": {"image": str(slab), "label": str(example / "example_seg.nii.gz")},
    }


def _write_datalist(path: Path, training: list[dict], testing: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"training": training, "validation": training, "testing": testing}, indent=2))
    return path


def _summary(eval_dir: Path) -> dict[str, float]:
    result = {}
    for name, metric in METRICS.items():
        with open(eval_dir / f"{metric}_summary.csv") as f:
            result[name] = float(next(csv.DictReader(f))["mean"])
    return result


def _per_case(eval_dir: Path) -> dict[str, dict[str, float]]:
    """``{case file name: {metric: value}}`` from MetricsSaver's ``<metric>_raw.csv``."""
    cases: dict[str, dict[str, float]] = {}
    for name, metric in METRICS.items():
        with open(eval_dir / f"{metric}_raw.csv") as f:
            for row in csv.reader(f):
                if row and row[0] != "filename":
                    cases.setdefault(Path(row[0]).name, {})[name] = float(row[1])
    return cases


def evaluate(bundle: str, datalist: Path, ckpt_dir: Path, out_dir: Path, overrides: dict) -> dict:
    """The bundle's evaluate.json on the ``testing`` list of ``datalist``; per-case metrics."""
    wf = Bundle(bundle, overrides).workflow(["train.json", "evaluate.json"], "eval", logging=False,
                                            datalist=str(datalist), ckpt_dir=str(ckpt_dir), output_dir=str(out_dir))
    wf.initialize()
    wf.run()
    wf.finalize()
    return _per_case(out_dir)


def finetune(bundle: str, datalist: Path, init_ckpt: Path, ckpt_dir: Path, epochs: int, overrides: dict) -> None:
    """The bundle's train.json on the ``training`` list, starting from ``init_ckpt``."""
    wf = Bundle(bundle, overrides).workflow(["train.json"], "train", logging=False, datalist=str(datalist),
                                            ckpt_dir=str(ckpt_dir), output_dir=str(ckpt_dir / "train"),
                                            max_epochs=epochs, val_interval=max(1, epochs // 5), resume=False)
    wf.initialize()
    network = wf.parser.get_parsed_content("network")
    network.load_state_dict(torch.load(init_ckpt, map_location="cpu", weights_only=True))
    wf.run()
    wf.finalize()


def main(bundle: str = "lower_limb_afu_unet", ckpt_dir: str = "", out: str = "real_ct_check",
         finetune_epochs: int = 30, overrides: dict | None = None, shared: str = str(SHARED_DATA)) -> dict:
    """Run the three measurements and write ``<out>/results.md``; returns the results."""
    if bundle not in BUNDLE_GROUPS:
        raise ValueError(f"no real-CT check for {bundle!r}; known: {', '.join(BUNDLE_GROUPS)}")
    ckpt = Path(ckpt_dir or Bundle(bundle).root / "models") / "model.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt} not found: train the bundle on phantoms first and pass --ckpt_dir.")
    out_path = Path(out).resolve()
    cases = prepare_real_cts(shared, out_path / "data")
    overrides = {**(overrides or {}), "label_mapping": label_mapping(BUNDLE_GROUPS[bundle]),
                 "slices_per_volume": 16, "batch_size": 1}
    results_file = out_path / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}

    if "phantom_only" not in results:
        datalist = _write_datalist(out_path / "phantom_only" / "datalist.json", [cases["dicom"]], list(cases.values()))
        results["phantom_only"] = evaluate(bundle, datalist, ckpt.parent, out_path / "phantom_only" / "eval", overrides)
        results_file.write_text(json.dumps(results, indent=2))
    for train_on, test_on in (("dicom", "ct3mm"), ("ct3mm", "dicom")):
        step = f"finetune_{train_on}"
        if step in results:
            continue
        step_dir = out_path / step
        datalist = _write_datalist(step_dir / "datalist.json", [cases[train_on]], [cases[test_on]])
        finetune(bundle, datalist, ckpt, step_dir / "models", finetune_epochs, overrides)
        results[step] = evaluate(bundle, datalist, step_dir / "models", step_dir / "eval", overrides)
        results_file.write_text(json.dumps(results, indent=2))

    names = {"example_ct_dicom": "dicom", "example_ct_labelled_slab.nii.gz": "ct3mm"}
    lines = ["| model | tested on | " + " | ".join(f"{m} %" for m in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for step, per_case in results.items():
        label = "phantoms only" if step == "phantom_only" else f"phantoms + fine-tuned on {step.split('_', 1)[1]}"
        for case, values in per_case.items():
            lines.append(f"| {label} | {names.get(case, case)} | "
                         + " | ".join(f"{100 * values[m]:.2f}" for m in METRICS) + " |")
    table = "\n".join(lines)
    (out_path / "results.md").write_text(table + "\n")
    print(table)
    return results


if __name__ == "__main__":
    fire.Fire(main)
