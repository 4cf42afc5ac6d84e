"""Slab-by-slab inference of the 2D bundles: memory bounded by a slab, not by the length of the scan.

MONAI's chain for a slice-by-slice network is whole-volume at every step: ``Spacingd`` resamples the whole scan
(a float64 copy and an affine grid of the whole output), ``SliceInferer`` returns the whole network output,
``Activationsd`` and ``Invertd`` copy it again and resample it back. On 512x512x200 CT that held 8-15 GB at once.
:class:`SlabInferer` runs the same transforms on slabs of slices and keeps only the label map whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.transforms import Compose, SpatialResample, Spacingd
from monai.utils import LazyAttr, TraceKeys

from ..transforms.spacing import SlabResampling

__all__ = ["SlabInferer"]


class SlabInferer(Inferer):
    """Segments a volume in slabs of ``slab_slices`` slices along the slice axis of ``inferer`` (a MONAI
    ``SliceInferer``): each slab is resampled, transformed, segmented, activated, put back on the scan's grid and
    discretised as it finishes, into one label map of ``output_dtype`` (default uint8). The voxels are those of
    the whole-volume chain ``transform`` -> ``inferer`` -> ``activation`` -> ``Invertd`` -> ``discretize``.

    The gap it fills: MONAI has no inferer that runs transforms per slab, and its resampling is whole-volume.
    ``transform`` (dictionary transforms on ``"image"``) may start with a ``Spacingd``; that resampling and its
    inverse run slab-wise through :class:`~custom_networks.transforms.spacing.SlabResampling` (the geometry from
    MONAI's own ``Spacingd`` / ``SpatialResample`` in lazy mode; the same bits as the whole-volume resampling).
    The other transforms must act slice by slice (intensity scaling, in-plane padding); they run as MONAI runs
    them and are inverted by MONAI. ``activation`` and ``discretize`` are dictionary transforms on ``"pred"``.

    Shapes: ``(1, C, *spatial)`` on the scan's grid in (the preprocessed batch), ``(1, C_out, *spatial)`` label
    map out, with the input's metadata and applied operations (so ``Invertd`` of the whole-volume preprocessing
    still applies). Peak memory: the input, the label map, and one slab's transforms and network batch.
    """

    def __init__(self, inferer: Inferer, transform: Callable | None = None, activation: Callable | None = None,
                 discretize: Callable | None = None, slab_slices: int = 16, output_dtype: torch.dtype = torch.uint8,
                 spatial_dim: int | None = None) -> None:
        super().__init__()
        self.inferer = inferer
        transforms = list(transform.transforms) if isinstance(transform, Compose) else [transform] if transform else []
        self.spacing = transforms.pop(0) if transforms and isinstance(transforms[0], Spacingd) else None
        self.transform = Compose(transforms)
        self.activation, self.discretize = activation, discretize
        self.slab_slices = int(slab_slices)
        self.output_dtype = output_dtype
        self.axis = int(spatial_dim if spatial_dim is not None else getattr(inferer, "spatial_dim"))
        if self.slab_slices < 1:
            raise ValueError(f"slab_slices must be at least 1, got {slab_slices}")

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any,
                 **kwargs: Any) -> MetaTensor:
        if inputs.shape[0] != 1:
            return torch.cat([self(inputs[i:i + 1], network, *args, **kwargs) for i in range(inputs.shape[0])])
        image = inputs[0] if isinstance(inputs, MetaTensor) else MetaTensor(inputs[0])
        return self._segment(image, network, *args, **kwargs)

    def _forward_resampling(self, image: MetaTensor) -> tuple[SlabResampling | None, dict, torch.Tensor]:
        """The whole volume's resampling (from ``Spacingd`` in lazy mode), its record, and the working affine."""
        if self.spacing is None:
            return None, {}, image.affine
        lazy = self.spacing({"image": image}, lazy=True)["image"]
        op = lazy.pending_operations[-1]
        info = op[TraceKeys.EXTRA_INFO]
        xform = op[LazyAttr.AFFINE]
        resampling = SlabResampling(xform, image.shape[1:], op[LazyAttr.SHAPE], self.axis, info["mode"],
                                    info["padding_mode"], _align(info), getattr(torch, info["dtype"]))
        affine = image.peek_pending_affine().to(torch.float64) @ xform.to(torch.float64)  # as MONAI's eager path
        return resampling, {"record": op, "orig_size": image.shape[1:]}, affine

    def _inverse_resampling(self, pred: MetaTensor, record: dict, working_size) -> SlabResampling:
        """The inverse of the forward resampling, from MONAI's ``SpatialResample`` in lazy mode (as
        ``Spacingd.inverse`` calls it) on a slab that carries the whole volume's working affine."""
        info = record["record"][TraceKeys.EXTRA_INFO]
        lazy = SpatialResample(lazy=True)(pred, dst_affine=info["src_affine"], spatial_size=record["orig_size"],
                                          mode=info["mode"], padding_mode=info["padding_mode"],
                                          align_corners=_align(info), dtype=getattr(torch, info["dtype"]))
        return SlabResampling(lazy.pending_operations[-1][LazyAttr.AFFINE], working_size, record["orig_size"],
                              self.axis, info["mode"], info["padding_mode"], _align(info),
                              getattr(torch, info["dtype"]))

    def _segment(self, image: MetaTensor, network, *args: Any, **kwargs: Any) -> MetaTensor:
        forward, record, working_affine = self._forward_resampling(image)
        n_in = image.shape[1 + self.axis]
        working_size = list(forward.dst_size) if forward else list(image.shape[1:])
        n_work = working_size[self.axis]
        out: torch.Tensor | None = None
        inverse: SlabResampling | None = None
        held: list[tuple[int, torch.Tensor]] = []  # working-grid probabilities not yet put back, by first slice
        done = 0  # output slices written
        for z0 in range(0, n_work, self.slab_slices):
            z1 = min(n_work, z0 + self.slab_slices)
            if forward is None:
                data = image.as_tensor().narrow(1 + self.axis, z0, z1 - z0)
            else:
                lo, hi = forward.source_range(z0, z1)
                data = forward(image.as_tensor().narrow(1 + self.axis, lo, hi - lo), lo, z0, z1)
            slab = MetaTensor(data, meta={**image.meta, "affine": working_affine},
                              applied_operations=list(image.applied_operations))
            item = self.transform({"image": slab})["image"]
            logits = self.inferer(item[None], network, *args, **kwargs)[0]
            pred = MetaTensor(torch.as_tensor(logits), meta=dict(item.meta),
                              applied_operations=list(item.applied_operations))
            if self.activation is not None:
                pred = self.activation({"pred": pred})["pred"]
            pred = self.transform.inverse({"image": pred})["image"]
            if forward is not None and inverse is None:
                inverse = self._inverse_resampling(pred, record, working_size)
            held.append((z0, pred.as_tensor()))
            while done < n_in:  # every output slab whose working slices are all computed
                d1 = min(n_in, done + self.slab_slices)
                lo, hi = inverse.source_range(done, d1) if inverse else (done, d1)
                if hi > z1 and z1 < n_work:
                    break
                source = torch.cat([t for s, t in held if s < hi and s + t.shape[1 + self.axis] > lo], 1 + self.axis)
                first = next(s for s, t in held if s + t.shape[1 + self.axis] > lo)
                source = source.narrow(1 + self.axis, lo - first, hi - lo)
                back = inverse(source, lo, done, d1) if inverse else source
                if self.discretize is not None:
                    back = self.discretize({"pred": MetaTensor(back, meta=image.meta)})["pred"]
                back = torch.as_tensor(back)
                if out is None:
                    out = torch.zeros((back.shape[0], *image.shape[1:]), dtype=self.output_dtype)
                out.narrow(1 + self.axis, done, d1 - done).copy_(back)
                done = d1
                keep_from = inverse.source_range(done, min(n_in, done + self.slab_slices))[0] if (
                    inverse and done < n_in) else done
                held = [(s, t) for s, t in held if s + t.shape[1 + self.axis] > keep_from]
        return MetaTensor(out[None], meta=dict(image.meta), applied_operations=list(image.applied_operations))


def _align(info: dict) -> bool:
    """A resampling record's ``align_corners`` (MONAI stores ``None`` as a marker string)."""
    value = info.get("align_corners")
    return False if value in (None, TraceKeys.NONE) else bool(value)
