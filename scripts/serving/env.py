"""The dedicated MONAI Label environment: ``.venv-monailabel/`` at the repo root.

MONAI Label 0.8.5 cannot live in the main ``.venv``: through pydicom-seg it needs numpy<2, pydicom<3 and
jsonschema<4, while the main stack runs numpy 2, pydicom 3 and jsonschema 4. So it gets its own venv,
created by one command::

    python -m scripts.serve setup

which runs ``python3 -m venv .venv-monailabel`` and ``pip install --no-deps -r
scripts/serving/requirements-monailabel.txt`` (every package pinned, see that file for why), then imports
what the server imports as a smoke check. When it has succeeded it writes a marker holding the sha256 of the
requirements file; a second run with an unchanged file returns at once, a changed file rebuilds the venv.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
VENV = REPO / ".venv-monailabel"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements-monailabel.txt"
APP_LIB = Path(__file__).resolve().parent / "app_lib.py"
MARKER = ".medseg-ready"
SETUP_COMMAND = "python -m scripts.serve setup"
#: what the server and the bundles import (``torchvision`` is left out on purpose: see app.py)
SMOKE_IMPORTS = (
    "monailabel.main", "monailabel.app", "monailabel.interfaces.app", "monailabel.tasks.train.bundle", "monai",
    "torch", "itk", "nibabel", "scipy.ndimage", "skimage", "trimesh", "ignite", "pydicom_seg", "SimpleITK",
    "onnx", "onnxruntime", "onnxruntime.quantization", "openvino", "torch_pruning",
)


class EnvironmentMissing(RuntimeError):
    """The MONAI Label venv is absent or was not completed by ``setup``."""


def python(venv: str | Path = VENV) -> Path:
    return Path(venv) / "bin" / "python"


def requirements_digest(requirements: Path = REQUIREMENTS) -> str:
    return hashlib.sha256(Path(requirements).read_bytes()).hexdigest()


def is_ready(venv: str | Path = VENV, requirements: Path = REQUIREMENTS) -> bool:
    """True when ``setup`` completed for the current requirements file."""
    marker = Path(venv) / MARKER
    return python(venv).is_file() and marker.is_file() and marker.read_text().strip() == requirements_digest(requirements)


def require(venv: str | Path = VENV) -> Path:
    """The venv's python, or :class:`EnvironmentMissing` naming the one command that creates the venv."""
    venv = Path(venv)
    if not python(venv).is_file():
        raise EnvironmentMissing(f"the MONAI Label environment {venv} does not exist. Create it (a few minutes, "
                                 f"2.6 GB) with: {SETUP_COMMAND}")
    if not is_ready(venv):
        raise EnvironmentMissing(f"the MONAI Label environment {venv} is incomplete or older than "
                                 f"{REQUIREMENTS.relative_to(REPO)}. Rebuild it with: {SETUP_COMMAND}")
    return python(venv)


def _run(cmd: list[str]) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def setup(venv: str | Path = VENV, base_python: str | None = None, force: bool = False) -> Path:
    """Create (or rebuild) the MONAI Label venv; returns its python. Prints the time taken and the size.

    Args:
        venv: where to create it (default ``.venv-monailabel`` at the repo root).
        base_python: interpreter to build the venv from (default: the one running this, Python 3.10+).
        force: rebuild even when the venv is up to date.
    """
    venv = Path(venv).resolve()
    if is_ready(venv) and not force:
        print(f"{venv} is up to date with {REQUIREMENTS.relative_to(REPO)} (pass --force to rebuild)")
        return python(venv)
    start = time.perf_counter()
    if venv.exists():
        print(f"removing the incomplete or outdated {venv}", flush=True)
        shutil.rmtree(venv)
    try:
        _run([base_python or sys.executable, "-m", "venv", venv])
        _run([python(venv), "-m", "pip", "install", "--no-deps", "-r", REQUIREMENTS])
        _run([python(venv), "-c", "import " + ", ".join(SMOKE_IMPORTS)])
        _run([python(venv), APP_LIB])  # what the app imports instead of monailabel's BundleInferTask
    except (subprocess.CalledProcessError, OSError) as e:
        raise SystemExit(f"error: creating {venv} failed ({e}); it is left incomplete and `serve` will refuse it. "
                         f"Fix the cause above and rerun: {SETUP_COMMAND}") from None
    (venv / MARKER).write_text(requirements_digest() + "\n")
    print(f"created {venv} in {time.perf_counter() - start:.0f} s, {_size(venv) / 1e9:.2f} GB")
    return python(venv)
