"""A MONAI Label app folder serving this repo's bundles, built from the ``monaibundle`` sample app.

The sample app ships inside the monailabel wheel (``<venv>/monailabel/sample-apps/monaibundle``); it is
copied, never downloaded. Its ``main.py`` loads every folder named in ``--conf models a,b`` from
``<app>/model/<name>`` (MONAI Label's ``BundleInferTask`` / ``BundleTrainTask``). Each bundle folder gets
what ``scripts.package`` packs into a zip (:func:`scripts.common.bundles.bundle_files`): ``configs/``, ``docs/``,
``LICENSE``, ``models/model.pt`` and the vendored ``custom_networks`` package, which MONAI Label imports from the
bundle folder (it puts that folder first on ``sys.path``).

Two changes are made to the copies, never to ``bundles/``:

- ``main.py`` takes ``BundleInferTask`` from ``lib/medseg.py`` (a copy of ``scripts/serving/app_lib.py``),
  which lets monailabel 0.8.5 import without torchvision, keeps MONAI Label's ``image_path`` away from
  monai 1.6's ``Spacingd``, makes every bundle (inference and training) run its own vendored
  ``custom_networks`` instead of the first bundle's, reads compressed weights and runs each bundle's ``runtime``
  (OpenVINO on a CPU by default), and replaces the server's ``POST /infer/{model}`` by one
  that runs inferences one at a time off the event loop, with 4xx answers for bad requests (details in that file).
- ``metadata.json`` of a one-channel (sigmoid) bundle: MONAI Label takes ``channel_def`` keys as the label
  values it reports to clients, so ``{"0": "bone"}`` would announce bone as label 0 (background in the label
  map). The copy says ``{"0": "background", "1": "bone"}``, what the thresholded label map holds.

- ``/train/`` never resumes an earlier request's checkpoint, and the head-and-neck bundle's stage-2 epochs
  follow MONAI Label's ``max_epochs`` (see :data:`MONAILABEL_OVERRIDES`).

``overrides`` (per bundle, ``{"key#path": value}``) are written into every config file of the copy that has
that key, e.g. tiny ``network_def#features`` for a test; a key found in no config file is an error.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from scripts.common.bundles import NETWORK_PACKAGE, REPO, bundle_files, check

APP_MARKER = ".medseg-serve-app"
SAMPLE_APP = "monaibundle"
#: extensions MONAI Label's local datastore lists (its default MONAI_LABEL_DATASTORE_FILE_EXT, images only)
IMAGE_PATTERNS = ("*.nii.gz", "*.nii", "*.nrrd", "*.jpg", "*.png", "*.tif", "*.svs")

#: config changes MONAI Label needs, written into the app's copies where the key exists:
#: - ``resume``: each ``/train/`` request is a fresh fine-tuning of ``models/model.pt`` (MONAI Label loads it
#:   itself); resuming the previous request's ``checkpoint.pt`` would restore its weights and epoch count, and a
#:   second 1-epoch request would find its run already finished and train nothing.
#: (The head-and-neck train.json trains stage 1 and keeps the organ nets of the served ``model.pt``; its organ
#: nets are separate configured steps, ``train_stage2.json``, that MONAI Label does not run.)
MONAILABEL_OVERRIDES = {"resume": False}
#: copied to ``<app>/lib/medseg.py``; ``main.py`` imports its ``BundleInferTask`` (see that file)
APP_LIB = Path(__file__).resolve().parent / "app_lib.py"
ORIGINAL_IMPORT = "from monailabel.tasks.infer.bundle import BundleInferTask\n"
PATCHED_IMPORT = ("from lib.medseg import BundleInferTask  # medseg-bundles: no torchvision needed; "
                  "image_path hidden from pre-transforms; /infer off the event loop\n")


class AppError(ValueError):
    """A bundle, studies folder or app folder that cannot be served; the message names the fix."""


def sample_app(venv: Path) -> Path:
    """The ``monaibundle`` sample app installed with monailabel in ``venv`` (where its wheel puts data files)."""
    for candidate in (Path(venv) / "monailabel" / "sample-apps" / SAMPLE_APP,
                      Path(venv) / "local" / "monailabel" / "sample-apps" / SAMPLE_APP):
        if (candidate / "main.py").is_file():
            return candidate
    raise AppError(f"the {SAMPLE_APP} sample app is missing from {venv}/monailabel/sample-apps; rebuild the "
                   "environment with: python -m scripts.serve setup --force")


def study_images(studies: Path) -> list[Path]:
    """Images MONAI Label's local datastore will list in ``studies`` (top level only, as it does)."""
    return sorted({p for pattern in IMAGE_PATTERNS for p in Path(studies).glob(pattern) if p.is_file()})


def check_studies(studies: str | Path) -> Path:
    studies = Path(studies).resolve()
    if not studies.is_dir():
        raise AppError(f"studies folder {studies} does not exist; pass --studies DIR, a folder of images "
                       "(NIfTI .nii.gz/.nii or .nrrd; labels go in DIR/labels/final/<same name>).")
    if not study_images(studies):
        raise AppError(f"studies folder {studies} holds no images MONAI Label can list ({', '.join(IMAGE_PATTERNS)}, "
                       "top level only); copy or convert your volumes there (a DICOM series: convert it to NIfTI "
                       "first, or use a DICOMweb server as --studies).")
    return studies


def weights_path(bundle: str, ckpt_root: str | Path | None = None, source: Path = REPO) -> Path:
    """Where ``bundle``'s trained weights come from, or :class:`AppError` saying how to train them."""
    path = (Path(ckpt_root) / bundle / "model.pt") if ckpt_root else (source / "bundles" / bundle / "models" / "model.pt")
    if not path.is_file():
        raise AppError(
            f"{bundle}: no trained weights at {path}. Train it first: put a datalist.json in "
            f"bundles/{bundle}/data (python -m scripts.demo_data {bundle} --out bundles/{bundle}/data gives a "
            f"synthetic one) and run python -m monai.bundle run --config_file bundles/{bundle}/configs/train.json "
            f"(writes bundles/{bundle}/models/model.pt); or pass --ckpt_root DIR holding {bundle}/model.pt; or "
            f"leave the bundle out with --bundles.")
    return path


def _set_key(config: dict, key: str, value) -> bool:
    """Set ``key`` (``a#b#c``; list items by index) in ``config`` if it exists there; returns whether it did."""
    *parents, last = key.split("#")
    node = config
    for part in parents:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    if isinstance(node, dict) and last in node:
        node[last] = value
        return True
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
        return True
    return False


def apply_overrides(bundle_dir: Path, overrides: dict, required: bool = True) -> None:
    """Write ``{"key#path": value}`` into every ``configs/*.json`` (but metadata) of ``bundle_dir`` that has the key.

    A key that no file has is an error when ``required``, else skipped.
    """
    if not overrides:
        return
    files = sorted(p for p in (bundle_dir / "configs").glob("*.json") if p.name != "metadata.json")
    configs = {p: json.loads(p.read_text()) for p in files}
    for key, value in overrides.items():
        hits = [p for p, c in configs.items() if _set_key(c, key, value)]
        if not hits and required:
            raise AppError(f"override {key!r} for {bundle_dir.name}: no such key in any of "
                           f"{', '.join(p.name for p in files)}; check the spelling against the bundle's configs.")
    for p, c in configs.items():
        p.write_text(json.dumps(c, indent=4) + "\n")


def label_channel_def(bundle_dir: Path) -> None:
    """Give a one-channel (sigmoid) bundle's ``channel_def`` the label values its label map holds (see module doc)."""
    meta_file = bundle_dir / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    pred = next(iter(meta["network_data_format"]["outputs"].values()))
    channels = pred.get("channel_def", {})
    if pred.get("num_channels") == 1 and len(channels) == 1 and next(iter(channels.values())).lower() != "background":
        pred["channel_def"] = {"0": "background", "1": next(iter(channels.values()))}
        meta_file.write_text(json.dumps(meta, indent=4) + "\n")


def _keep_trained(app_models: Path, source_weights: Path, app_dir: Path, bundle: str) -> None:
    """Move weights trained through MONAI Label (differing from the source) aside instead of overwriting them."""
    current = app_models / "model.pt"
    if current.is_file() and current.read_bytes() != source_weights.read_bytes():
        kept = app_dir / "trained" / bundle / f"model_{time.strftime('%Y%m%d_%H%M%S', time.localtime(current.stat().st_mtime))}.pt"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(current), kept)
        print(f"{bundle}: weights trained through MONAI Label kept as {kept} (the app now serves {source_weights})")


def copy_bundle(bundle: str, app_dir: Path, weights: Path, overrides: dict | None = None,
                source: Path = REPO) -> Path:
    """``<app>/model/<bundle>``: the packaged files of the bundle (fresh), its weights, the overrides."""
    dst = app_dir / "model" / bundle
    files = {rel: src for rel, src in bundle_files(bundle, source).items() if rel != "models/model.pt"}
    _keep_trained(dst / "models", weights, app_dir, bundle)
    for sub in ("configs", "docs", NETWORK_PACKAGE):
        shutil.rmtree(dst / sub, ignore_errors=True)
    for rel, src in files.items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst / rel)
    (dst / "models").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, dst / "models" / "model.pt")
    apply_overrides(dst, MONAILABEL_OVERRIDES, required=False)
    apply_overrides(dst, overrides or {})
    label_channel_def(dst)
    return dst


def build_app(app_dir: str | Path, bundles: list[str], venv: Path, overrides: dict | None = None,
              ckpt_root: str | Path | None = None, source: Path = REPO) -> Path:
    """Create or refresh the app folder; returns it. ``overrides``: ``{bundle: {"key#path": value}}``.

    An existing folder is reused only if an earlier build made it (it holds ``.medseg-serve-app``); the sample
    app's code and every bundle's configs, docs and ``custom_networks`` are replaced each time, MONAI Label's
    logs and other bundles' folders are left alone. Every bundle needs trained weights (MONAI Label would
    silently skip one without): ``bundles/<name>/models/model.pt``, or ``<ckpt_root>/<name>/model.pt``.
    """
    app_dir = Path(app_dir).resolve()
    for name in bundles:
        check(name)
    unknown = set(overrides or {}) - set(bundles)
    if unknown:
        raise AppError(f"overrides name bundles that are not served: {', '.join(sorted(unknown))}; "
                       f"served: {', '.join(bundles)}.")
    weights = {b: weights_path(b, ckpt_root, source) for b in bundles}
    if app_dir.exists() and any(app_dir.iterdir()) and not (app_dir / APP_MARKER).is_file():
        raise AppError(f"--app_dir {app_dir} exists and was not made by scripts.serve; choose an empty or new folder.")
    template = sample_app(venv)
    app_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(app_dir / "lib", ignore_errors=True)
    shutil.copytree(template / "lib", app_dir / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    for f in template.iterdir():
        if f.is_file():
            shutil.copyfile(f, app_dir / f.name)
    main_py = app_dir / "main.py"
    code = main_py.read_text()
    if ORIGINAL_IMPORT not in code:
        raise AppError(f"{template / 'main.py'} does not contain {ORIGINAL_IMPORT.strip()!r}: not the monailabel "
                       "0.8.5 sample app this was written for; rebuild the environment: python -m scripts.serve setup --force")
    main_py.write_text(code.replace(ORIGINAL_IMPORT, PATCHED_IMPORT))
    shutil.copyfile(APP_LIB, app_dir / "lib" / "medseg.py")
    for name in bundles:
        copy_bundle(name, app_dir, weights[name], (overrides or {}).get(name), source)
    (app_dir / APP_MARKER).write_text("built by python -m scripts.serve; bundles are refreshed from the repo on each start\n")
    return app_dir
