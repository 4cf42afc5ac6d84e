"""From the knee's tissue map to a DESS-like MR image: intensities, textures, partial volume, bias, Rician noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .anatomy import BASE_INTENSITY, FAT, FEM_CART, MARROW, MUSCLE, SHAPE, SUPERSAMPLE
from .cartilage import JointCartilage
from .params import KneeParams

__all__ = ["mr_image"]


def mr_image(tissue: np.ndarray, joint: JointCartilage, P: KneeParams, rng: np.random.Generator) -> np.ndarray:
    """The ``float32`` image of shape :data:`SHAPE` from the fine tissue map (draws textures and noise from ``rng``).

    Tissue intensities (:data:`BASE_INTENSITY` times the per-tissue jitter and the gain) with muscle,
    marrow and fat textures and layered cartilage; partial volume (mean over the slice's sub-samples,
    then an in-plane blur); a smooth multiplicative bias field; Rician noise.
    """
    f32 = np.float32
    ss = SUPERSAMPLE
    n0, n1, n2 = SHAPE
    lut = np.array([BASE_INTENSITY[k] for k in range(len(BASE_INTENSITY))], f32)
    lut = lut * np.asarray(P.tissue_jitter, f32) * f32(P.gain)
    img_f = lut[tissue]
    tex_m = ndi.gaussian_filter(rng.standard_normal(SHAPE).astype(f32), (0.8, 3.0, 0.7))
    tex_b = ndi.gaussian_filter(rng.standard_normal(SHAPE).astype(f32), 0.7)
    tex_c = ndi.gaussian_filter(rng.standard_normal(SHAPE).astype(f32), 2.0)
    for tex in (tex_m, tex_b, tex_c):
        tex /= tex.std() + 1e-6
    mod = np.ones(tissue.shape, f32)
    for code, tex, amp in ((MUSCLE, tex_m, 0.07), (MARROW, tex_b, 0.15), (FAT, tex_c, 0.1)):
        m = tissue == code
        mod[m] = 1.0 + amp * np.repeat(tex, ss, axis=2)[m]
    img_f *= mod
    del mod
    # cartilage: darker deep layer, brighter superficial layer, slight texture
    cart, depth = joint.cartilage, joint.depth
    cm = (0.82 + 0.22 * np.clip(depth, 0, 1)) * (1.0 + 0.07 * np.repeat(tex_c, ss, axis=2)[joint.box])
    sub = img_f[joint.box]
    sub[cart] *= cm[cart]

    # partial volume: mean over the slice profile, then in-plane blur
    img = img_f.reshape(n0, n1, n2, ss).mean(axis=3)
    img = ndi.gaussian_filter(img, (P.blur, P.blur, 0.15))
    # smooth multiplicative bias field (low-order polynomial in normalised coordinates)
    g = [np.linspace(-1, 1, n, dtype=f32) for n in SHAPE]
    g0, g1, g2 = g[0][:, None, None], g[1][None, :, None], g[2][None, None, :]
    terms = [g0, g1, g2, g0 * g0, g1 * g1, g2 * g2, g0 * g1, g0 * g2, g1 * g2]
    coef = rng.normal(size=len(terms))
    coef[3:] *= 0.6
    logb = sum(f32(c_) * t_ for c_, t_ in zip(coef, terms))
    logb = logb - logb.mean()
    logb = logb * f32(np.log1p(P.bias_amplitude) / (np.abs(logb).max() + 1e-6))
    img = img * np.exp(logb)
    # Rician noise: magnitude of the complex signal with gaussian noise in both channels
    sigma = f32(P.noise_fraction * lut[FEM_CART])
    n_re = rng.standard_normal(SHAPE).astype(f32) * sigma
    n_im = rng.standard_normal(SHAPE).astype(f32) * sigma
    return np.sqrt((img + n_re) ** 2 + n_im**2).astype(f32)
