"""One synthetic bilateral lower-limb CT volume: :func:`render_lower_limb_volume`."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..fields import unit_noise
from ..shapes import as_rng
from .anatomy import (
    AIR,
    F32,
    FAT,
    HU_MAX,
    HU_MIN,
    MID,
    MUSCLE,
    SHAPE_XY,
    SPACING,
    SUB_OFFSETS,
    SUBSLICES,
    TISSUES,
    X_MM,
    Y_MM,
    NUM_SLICES,
)
from .bones import render_bones
from .leg_slice import LegSlice
from .params import LowerLimbParams
from .sampling import sample_lower_limb_params
from .soft_tissue import render_soft_tissue, table_and_air

__all__ = ["render_lower_limb_volume"]


def render_lower_limb_volume(
    rng_or_seed=0, num_slices: int = NUM_SLICES, return_tissues: bool = False, params: LowerLimbParams | None = None
):
    """Render one synthetic bilateral lower-limb CT volume and its bone label.

    Args:
        rng_or_seed: ``numpy.random.Generator`` or an int seed; the volume is a deterministic
            function of it.
        num_slices: number of 5 mm axial slices (40 covers distal thigh, knee and proximal leg;
            fewer slices stay centred on the knee).
        return_tissues: also return a dict of un-blurred maps at the slice centres, all of shape
            ``(512, 512, num_slices)``: ``tissue`` (codes of :data:`TISSUES`), ``bone_id`` (see
            :data:`BONES`), ``leg`` (0 none, 1 right, 2 left); plus ``z_rel`` (``(2, num_slices)``:
            height of each slice above the right / left joint line, mm), ``leg_x`` (``(2,
            num_slices)``: index along axis 0 of each leg's axis) and ``params``.
        params: optional :class:`~scripts.phantoms.lower_limb.params.LowerLimbParams` from
            :func:`~scripts.phantoms.lower_limb.sampling.sample_lower_limb_params` (drawn from the
            generator when omitted; the generator is then also used for textures and noise).

    Returns:
        ``(image, label)``: ``int16`` HU of shape ``(512, 512, num_slices)`` and the ``uint8`` bone
        label (0 background, 1 bone); plus the tissue dict when ``return_tissues``. The affine is
        :func:`lower_limb_affine`.
    """
    rng = as_rng(rng_or_seed)
    n = int(num_slices)
    if n < 1:
        raise ValueError(f"num_slices must be >= 1, got {n}")
    P = sample_lower_limb_params(rng, n) if params is None else params
    hu = {k: F32(v) for k, v in P.tissue_hu.items()}
    lut = np.array([P.tissue_hu[k] for k in range(len(TISSUES))], F32)
    bg = table_and_air(P)
    z_world = (np.arange(n) - (n - 1) / 2.0) * SPACING[2]
    image = np.empty(SHAPE_XY + (n,), np.int16)
    label = np.zeros(SHAPE_XY + (n,), np.uint8)
    if return_tissues:
        t_map = np.empty(SHAPE_XY + (n,), np.uint8)
        b_map = np.zeros(SHAPE_XY + (n,), np.uint8)
        l_map = np.zeros(SHAPE_XY + (n,), np.uint8)
        z_rel = np.zeros((2, n))
        leg_x = np.zeros((2, n))
    if P.fov_mask:
        r2 = X_MM[:, None] ** 2 + Y_MM[None, :] ** 2
        outside_fov = r2 > F32((SHAPE_XY[0] * SPACING[0] / 2.0) ** 2)
    for k in range(n):
        white = rng.standard_normal(SHAPE_XY, dtype=F32)  # tissue textures (three scales)
        tex_fine = unit_noise(white, 0.8)
        tex_coarse = unit_noise(white, 4.0)
        tex_soft = unit_noise(white, 2.5)
        noise = unit_noise(rng.standard_normal(SHAPE_XY, dtype=F32), P.noise_corr)  # CT noise
        zs = z_world[k] + SUB_OFFSETS
        tissue = bg.copy()
        best = np.zeros(SHAPE_XY, F32)
        owner = np.zeros(SHAPE_XY, np.uint8)
        bone_list = []
        for li, L in enumerate(P.legs):
            S = LegSlice(L, (zs - (P.knee_z + L.knee_dz)).astype(F32))
            bones = render_bones(S, hu, tex_fine, tex_coarse)
            soft = render_soft_tissue(S, bones, P)
            if soft is not None:
                box, st, depth = soft
                win = (depth > best[box]) & (st != AIR)
                tissue[box][win] = st[win]
                best[box][win] = depth[win]
                owner[box][win] = li + 1
            if bones is not None:
                bone_list.append(bones)
            if return_tissues:
                z_rel[li, k] = S.zr[MID]
                leg_x[li, k] = S.cX[MID] / SPACING[0] + (SHAPE_XY[0] - 1) / 2.0
        soft_hu = lut[tissue]
        soft_hu += np.where(tissue == MUSCLE, 4.0 * tex_soft, 0.0).astype(F32)
        soft_hu += np.where(tissue == FAT, 6.0 * tex_coarse + 3.0 * tex_fine, 0.0).astype(F32)
        img = soft_hu.copy()
        if return_tissues:
            t_c = tissue.copy()
            b_c = np.zeros(SHAPE_XY, np.uint8)
        for bones in bone_list:
            box = bones.box
            m = bones.tissue > 0
            img[box] += (bones.material - bones.coverage * soft_hu[box][None]).sum(axis=0) / F32(SUBSLICES)
            label[box + (k,)] |= (m.sum(axis=0) * 2 > SUBSLICES).astype(np.uint8)
            if return_tissues:
                mc = m[MID]
                t_c[box][mc] = bones.tissue[MID][mc]
                b_c[box][mc] = bones.bone_id[MID][mc]
        img = ndi.gaussian_filter(img, P.blur)
        img += F32(P.noise_sd) * noise
        if P.fov_mask:
            img[outside_fov] = HU_MIN
        image[:, :, k] = np.clip(np.rint(img), HU_MIN, HU_MAX).astype(np.int16)
        if return_tissues:
            t_map[:, :, k] = t_c
            b_map[:, :, k] = b_c
            l_map[:, :, k] = owner
    if not return_tissues:
        return image, label
    tissues = {
        "tissue": t_map,
        "bone_id": b_map,
        "leg": l_map,
        "z_rel": z_rel,
        "leg_x": leg_x,
        "params": P,
    }
    return image, label, tissues
