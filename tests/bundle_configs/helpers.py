"""What every bundle test does: open a bundle with tiny overrides, run it, read wrapped errors.

Bundles are opened the way the tools open them (:class:`scripts.common.bundles.Bundle`), and the tiny widths
are the registry's (:func:`scripts.common.registry.tiny`).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigWorkflow

from scripts.common.bundles import Bundle


class BundleUnderTest(Bundle):
    """One bundle's configs with the tiny overrides its tests share (small widths, few slices)."""

    def __init__(self, name: str, tiny: dict):
        super().__init__(name, tiny)
        self.tiny = self.overrides
        #: the same overrides as ``--key=value`` command-line arguments
        self.tiny_cli = [f"--{k}={v}".replace(" ", "") for k, v in tiny.items()]


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


def compress_tiny(bundle: BundleUnderTest, ckpt_dir: Path, data: Path, out: Path, **overrides) -> dict:
    """``scripts.compress`` on a tiny trained bundle: prune 20 %, threshold 0.02, 31 levels, one fine-tuning step each.

    Checks what every bundle must give: the source checkpoint untouched, the three files written as tensors
    only (int8 codes in the final one), fewer parameters, and a report with one entry per step.
    """
    from scripts.compress import compress

    source = Path(ckpt_dir) / "model.pt"
    before = source.read_bytes()
    report = compress(str(bundle.root), out=str(out), ckpt=str(source), rates=(0.2,), thresholds=(0.02,), levels=31,
                      finetune_steps=1, dataset_dir=str(data), **{**bundle.tiny, "val_interval": 1000, **overrides})
    assert source.read_bytes() == before
    steps = {s["step"]: s for s in report["steps"]}
    assert list(steps) == ["original", "channel_pruned_0.2", "threshold_pruned_0.02", "quantized_31"]
    assert all(s["val_dice"] is not None and 0.0 <= s["val_dice"] <= 1.0 for s in steps.values())
    assert steps["channel_pruned_0.2"]["parameters"] < steps["original"]["parameters"]
    assert steps["threshold_pruned_0.02"]["sparsity"] > 0
    assert steps["quantized_31"]["weights_mb"] < steps["original"]["weights_mb"] / 3
    for name in ("model_channel_pruned.pt", "model_threshold_pruned.pt", "model.pt"):
        state = torch.load(Path(out) / name, weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert any(v.dtype == torch.int8 for v in torch.load(Path(out) / "model.pt", weights_only=True).values())
    return report


def fit_to_labels(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int = 40) -> torch.nn.Module:
    """``net`` after ``steps`` Adam steps (lr 0.01, 4 slices a step) fitted to label the slices ``x`` (N, 1, H, W)
    with ``target`` (N, 1, H, W) class ids (0/1 for a one-channel network); returned in eval mode.

    What the tests use where no trained weights exist: an untrained network labels every voxel alike, so a label
    map of it would agree with anything; a network fitted to label intensity bands draws many boundaries."""
    first = net(x[:1])
    out_channels = (first[0] if isinstance(first, (list, tuple)) else first).shape[1]
    loss = torch.nn.BCEWithLogitsLoss() if out_channels == 1 else torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for step in range(steps):
        batch = slice(step * 4 % len(x), step * 4 % len(x) + 4)
        out = net(x[batch])
        out = out[0] if isinstance(out, (list, tuple)) else out
        optimizer.zero_grad()
        loss(out, target[batch].float() if out_channels == 1 else target[batch, 0].long()).backward()
        optimizer.step()
    return net.eval()

