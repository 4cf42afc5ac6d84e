"""What every bundle test does: build a ConfigWorkflow with tiny overrides, run it, read wrapped errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from monai.bundle import ConfigWorkflow

from tests.conftest import bundle_dir


class BundleUnderTest:
    """One bundle's configs with the tiny overrides its tests share (small widths, few slices)."""

    def __init__(self, name: str, tiny: dict):
        self.name = name
        self.root = bundle_dir(name)
        self.configs = self.root / "configs"
        self.tiny = tiny
        #: the same overrides as ``--key=value`` command-line arguments
        self.tiny_cli = [f"--{k}={v}".replace(" ", "") for k, v in tiny.items()]

    def workflow(self, config_files, workflow_type: str, **overrides) -> ConfigWorkflow:
        files = [str(self.configs / f) for f in config_files]
        return ConfigWorkflow(
            config_file=files if len(files) > 1 else files[0],
            meta_file=str(self.configs / "metadata.json"),
            logging_file=str(self.configs / "logging.conf"),
            workflow_type=workflow_type,
            bundle_root=str(self.root),
            **{**self.tiny, **overrides},
        )


def run(wf: ConfigWorkflow) -> None:
    """Initialize, check the workflow's required properties, run and finalize."""
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()


def error_chain(exc: BaseException) -> str:
    """All messages of an exception and its causes (MONAI wraps errors raised inside configs)."""
    parts = []
    while exc is not None:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> str:
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return str(path)


def assert_label_map_like(out_dir: Path, image: Path, labels: set[int]) -> None:
    """The one ``*_seg.nii.gz`` in ``out_dir`` is a uint8 map with ``image``'s shape and affine and ids in ``labels``."""
    src = nib.load(image)
    out = nib.load(next(Path(out_dir).glob("*_seg.nii.gz")))
    assert out.shape == src.shape and out.get_data_dtype() == np.uint8
    np.testing.assert_allclose(out.affine, src.affine, atol=1e-4)
    assert set(np.unique(np.asarray(out.dataobj)).tolist()) <= labels
