"""Smooth random fields the phantom renderers share (textures, thickness variations, outlines).

Each field draws its random numbers from the generator it is given, when it is built, so a renderer
that builds its fields in a fixed order stays a deterministic function of its seed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["PlaneWaveField", "AngularHarmonics", "unit_noise", "gaussian_random_field"]


class PlaneWaveField:
    """Random smooth 3D scalar field: a sum of ``n`` random plane waves, standard deviation about 1.

    Directions are uniform on the sphere, wavelengths uniform in ``wavelength`` (mm), phases uniform.
    Calling it on coordinate arrays ``(x, y, z)`` (broadcast together, mm) gives a ``float32`` array.
    """

    def __init__(self, rng: np.random.Generator, n: int = 8, wavelength=(15.0, 40.0)):
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        lam = rng.uniform(*wavelength, size=n)
        self.k = d * (2 * np.pi / lam)[:, None]
        self.phase = rng.uniform(0, 2 * np.pi, size=n)
        self.amp = np.sqrt(2.0 / n)

    def __call__(self, x, y, z):
        out = np.zeros(np.broadcast(x, y, z).shape, np.float32)
        for k, ph in zip(self.k.tolist(), self.phase.tolist()):
            out += np.cos(k[0] * x + k[1] * y + k[2] * z + ph)
        return out * np.float32(self.amp)


class AngularHarmonics:
    """Smooth random periodic function of an angle: ``1 + sum_k a_k cos(k psi + phi_k)``, ``k = 1..n``.

    ``a_k`` is normal with sd ``amp / k``, ``phi_k`` uniform. Used to make outlines and layer
    thicknesses vary smoothly around the body.
    """

    def __init__(self, rng: np.random.Generator, amp: float, n: int = 3):
        self.a = rng.normal(0.0, amp, size=n) / np.arange(1, n + 1)
        self.ph = rng.uniform(0, 2 * np.pi, size=n)
        self.table = self._eval(np.linspace(-np.pi, np.pi, 4097)).astype(np.float32)

    def _eval(self, psi):
        out = 1.0
        for k, (a, ph) in enumerate(zip(self.a.tolist(), self.ph.tolist()), start=1):
            out = out + a * np.cos(k * psi + ph)
        return out

    def __call__(self, psi):
        """Value at ``psi`` in [-pi, pi] (large arrays use a 4096-step lookup table)."""
        if np.size(psi) < 4096:
            return self._eval(psi)
        idx = ((np.asarray(psi) + np.float32(np.pi)) * np.float32(4096 / (2 * np.pi)) + 0.5).astype(np.intp)
        return self.table[np.clip(idx, 0, 4096)]


def unit_noise(white: np.ndarray, sigma: float) -> np.ndarray:
    """``white`` noise smoothed by a Gaussian of ``sigma`` pixels, scaled to unit standard deviation."""
    n = ndi.gaussian_filter(white, sigma, truncate=3.0)
    return n / np.float32(n.std() + 1e-6)


def gaussian_random_field(rng: np.random.Generator, shape, spacing, sigma_mm: float) -> np.ndarray:
    """Smooth ``float32`` Gaussian random field with unit sd (correlation length about ``sigma_mm``)."""
    f = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), [sigma_mm / s for s in spacing])
    return f / max(float(f.std()), 1e-6)
