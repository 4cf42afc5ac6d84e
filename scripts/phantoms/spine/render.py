"""One synthetic spine CT volume: :func:`render_spine_volume`."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..geometry import upsample_xy
from ..shapes import as_rng
from .anatomy import (
    AIR,
    BONE_CORTEX,
    BONE_MARROW,
    CANCELLOUS,
    COARSE_TEXTURE_HU,
    CORTICAL,
    FINE_TEXTURE_HU,
    LEVEL_NAMES,
    LUNG,
    NUM_SLICES,
    SHAPE_XY,
    SUPERSAMPLE,
    TISSUE_HU,
)
from .levels import NUM_LEVELS
from .params import SpineParams, sample_spine_params
from .pelvis import paint_pelvis
from .ribs import paint_ribs, paint_sternum
from .scene import SpineScene
from .soft_tissue import SoftTissuePainter
from .vertebrae import VertebralColumn

__all__ = ["render_spine_volume", "slice_structures"]


def subsampled_std(a: np.ndarray) -> np.float32:
    """Standard deviation of a large random field, estimated on a regular subsample."""
    return np.float32(a[::3, ::3].std() + 1e-6)


def slice_structures(ctx: SpineScene) -> list:
    """What the spine axis passes through at each slice centre: ("body"|"disc"|"none", name)."""
    d = ctx.dims
    out = []
    for z in ctx.zc:
        xs, ys = ctx.spine_xy(float(z))
        p = np.array([xs, ys, float(z)])
        found = ("none", "")
        for i in range(NUM_LEVELS):
            w = float(ctx.F[i].R[:, 2] @ (p - ctx.F[i].c))
            if abs(w) <= d.body_height[i] / 2 - 1.0:
                found = ("body", LEVEL_NAMES[i])
                break
            if i + 1 < NUM_LEVELS:
                wj = float(ctx.F[i + 1].R[:, 2] @ (p - ctx.F[i + 1].c))
                if w < -d.body_height[i] / 2 - 0.5 and wj > d.body_height[i + 1] / 2 + 0.5:
                    found = ("disc", f"{LEVEL_NAMES[i]}/{LEVEL_NAMES[i + 1]}")
                    break
        out.append(found)
    return out


def render_spine_volume(rng_or_seed=0, num_slices: int = NUM_SLICES, return_tissues: bool = False,
                        params: SpineParams | None = None):
    """Render one synthetic axial spine CT volume with its binary spine label.

    Args:
        rng_or_seed: ``numpy.random.Generator`` or an int seed. The volume is a deterministic
            function of it (and of ``num_slices``).
        num_slices: number of 3 mm axial slices (>= 1).
        return_tissues: also return a dict with the un-blurred tissue code map at the voxel centres
            (``tissue``, codes in :data:`TISSUES`), the level index + 1 of every vertebral bone
            voxel (``vertebra``, 18 = sacrum), what the spine axis passes through at every slice
            (``slices``: list of ``("body"|"disc"|"none", name)``), the names of the labelled
            vertebrae (``levels``) and the parameters (``params``).
        params: optional :class:`~scripts.phantoms.spine.params.SpineParams` from
            :func:`~scripts.phantoms.spine.params.sample_spine_params` (drawn from the generator
            when omitted; the generator is then also used for textures and noise).

    Returns:
        ``(image, label)``: ``int16`` HU image of shape ``(512, 512, num_slices)`` and ``uint8``
        label (0 background, 1 vertebral bone of T1-L5); plus the tissue dict when ``return_tissues``.
        The affine is :func:`spine_affine` ``(num_slices)``.
    """
    num_slices = int(num_slices)
    if num_slices < 1:
        raise ValueError(f"num_slices must be >= 1, got {num_slices}")
    rng = as_rng(rng_or_seed)
    P = sample_spine_params(rng) if params is None else params
    ctx = SpineScene(P, num_slices)
    ss = SUPERSAMPLE
    n0, n1 = SHAPE_XY
    soft = SoftTissuePainter(ctx, rng)
    # textures and noise drawn now, in a fixed order
    white = rng.standard_normal((n0, n1, num_slices), dtype=np.float32)

    coarse = np.empty((n0, n1, num_slices), np.uint8)
    for k in range(num_slices):
        coarse[:, :, k] = soft.paint(k)
    tissue = np.repeat(coarse, ss, axis=2)
    del coarse
    paint_pelvis(ctx, tissue)
    paint_sternum(ctx, tissue)
    paint_ribs(ctx, tissue, soft)
    spine = VertebralColumn(ctx)
    box, vid = spine.build(tissue)

    # ---- intensities ----
    hu = np.array([TISSUE_HU[c] for c in range(len(TISSUE_HU))], np.float32)
    hu = hu + np.asarray(P.hu_jitter, np.float32) + np.float32(P.hu_offset)
    hu[AIR] = -1000.0
    for c in BONE_MARROW:
        hu[c] = TISSUE_HU[c] * P.bone_density
    for c in BONE_CORTEX:
        hu[c] = TISSUE_HU[c] * P.cortex_gain
    img = hu[tissue[:, :, 0::ss]]
    for o in range(1, ss):
        img += hu[tissue[:, :, o::ss]]
    img *= np.float32(1.0 / ss)
    tis_c = tissue[:, :, ss // 2::ss].copy()
    label = ((tis_c == CORTICAL) | (tis_c == CANCELLOUS)).astype(np.uint8)
    vert_c = None
    if return_tissues:
        vert_c = np.zeros(tis_c.shape, np.uint8)
        if box is not None:
            k0 = box[2].start
            sub = vid[:, :, (ss // 2 - k0) % ss::ss]
            kc0 = (k0 + (ss // 2 - k0) % ss) // ss
            vert_c[box[0], box[1], kc0:kc0 + sub.shape[2]] = sub
    del tissue, vid

    # coarse soft-tissue mottling, dependent lung density (posterior lung denser)
    amp = np.zeros(len(TISSUE_HU), np.float32)
    for c, v in COARSE_TEXTURE_HU.items():
        amp[c] = v
    img += amp[tis_c] * upsample_xy(soft.fields[3], SHAPE_XY)
    y_ref = ctx.trunk_at(0.0).centre_y
    grad = (P.lung_gradient * np.clip((y_ref - ctx.Y) / 110.0, -0.4, 1.0)).astype(np.float32)
    img += (tis_c == LUNG) * grad[None, :, None]
    # reconstruction kernel, then correlated noise; the same fine-grained field, with a tissue
    # dependent extra amplitude, is the trabecular / lung parenchyma texture
    img = ndi.gaussian_filter(img, (P.blur, P.blur, 0.0), truncate=3.0)
    noise = ndi.gaussian_filter(white, (P.noise_corr, P.noise_corr, 0.0), truncate=3.0)
    del white
    noise *= np.float32(1.0) / subsampled_std(noise)
    amp[:] = P.noise_sd
    for c, v in FINE_TEXTURE_HU.items():
        amp[c] += v
    img += amp[tis_c] * noise
    del noise
    # the scene is rendered on a grid whose axes 0/1 run left->right / posterior->anterior; the
    # stored arrays run right->left / anterior->posterior (LPS), see :func:`spine_affine`
    image = np.ascontiguousarray(np.clip(np.rint(img[::-1, ::-1]), -1024, 3071).astype(np.int16))
    del img
    label = np.ascontiguousarray(label[::-1, ::-1])
    # outside the circular reconstruction field of view the scanner writes -1024
    ci = np.arange(n0) - (n0 - 1) / 2
    cj = np.arange(n1) - (n1 - 1) / 2
    image[(ci[:, None] ** 2 + cj[None, :] ** 2) > (min(n0, n1) / 2) ** 2] = -1024
    if not return_tissues:
        return image, label
    tis_c = np.ascontiguousarray(tis_c[::-1, ::-1])
    vert_c = np.ascontiguousarray(vert_c[::-1, ::-1])
    names = sorted({LEVEL_NAMES[int(v) - 1] for v in np.unique(vert_c[label > 0]) if v > 0},
                   key=LEVEL_NAMES.index)
    tissues = {"tissue": tis_c, "vertebra": vert_c, "slices": slice_structures(ctx), "levels": names, "params": P}
    return image, label, tissues
