"""Outline of one leg's soft tissue: the leg axis, the muscle compartment (fascia) and the skin.

Keyframes are given at heights :data:`OUTLINE_Z` (mm relative to the joint line); the fields are in the
leg's soft-tissue frame (x lateral, y anterior), rotated between the femur's and the tibia's rotation.
"""

from __future__ import annotations

import numpy as np

from ..shapes import smin, sstep
from .anatomy import F32
from .params import LegParams

__all__ = [
    "OUTLINE_Z",
    "OUTLINE_RX",
    "OUTLINE_RY",
    "OUTLINE_OX",
    "OUTLINE_OY",
    "HULL_Z",
    "HULL_MARGIN",
    "CAPSULE_Z",
    "CAPSULE_THICKNESS",
    "MUSCLE_FRONT_Z",
    "MUSCLE_FRONT_Y",
    "axis_offset",
    "soft_tissue_rotation",
    "fat_thickness",
    "outline",
]

# soft-tissue outline keyframes (z relative to the joint line, mm) of the muscle compartment
OUTLINE_Z = np.array([-260.0, -120.0, -70.0, -30.0, 0.0, 25.0, 60.0, 110.0, 260.0])
OUTLINE_RX = np.array([44.0, 52.0, 55.0, 52.0, 49.0, 50.0, 57.0, 63.0, 70.0])
OUTLINE_RY = np.array([46.0, 54.0, 57.0, 54.0, 50.0, 50.0, 56.0, 60.0, 66.0])
OUTLINE_OX = np.array([2.0, 3.0, 3.0, 2.0, 0.0, -2.0, -4.0, -6.0, -9.0])
OUTLINE_OY = np.array([-22.0, -26.0, -26.0, -18.0, -14.0, -12.0, -8.0, -9.0, -11.0])
# soft tissue kept around the bones (mm): thin along the shafts, capsule and ligaments at the knee
HULL_Z, HULL_MARGIN = [-45.0, -20.0, 45.0, 70.0], [2.5, 7.0, 7.0, 2.5]
CAPSULE_Z, CAPSULE_THICKNESS = [-30.0, -15.0, 45.0, 60.0], [0.0, 2.5, 2.5, 0.0]
# anterior limit (leg frame y, mm) of muscle around the knee (tendons, fat and capsule instead)
MUSCLE_FRONT_Z = np.array([-45.0, -32.0, -18.0, 22.0, 38.0, 55.0, 75.0])
MUSCLE_FRONT_Y = np.array([200.0, 8.0, -6.0, -6.0, 12.0, 22.0, 200.0])


def axis_offset(L: LegParams, zr):
    """Scanner-frame offset (dX, dY) of the leg axis at ``zr`` mm above the joint line."""
    zr = np.asarray(zr, float)
    up = np.maximum(zr, 0.0)
    dn = np.maximum(-zr, 0.0)
    lat = L.femur_valgus * up + L.tibia_valgus * dn
    ant = -(L.femur_flexion_tan * up + L.tibia_flexion_tan * dn) + L.tilt * zr
    return L.lateral_sign * lat, -ant


# --------------------------------------------------------------------------------------------


def soft_tissue_rotation(L: LegParams, z: float) -> float:
    """Rotation of the soft-tissue frame (the femur's above the knee, the tibia's below)."""
    return float(L.tibia_rotation + (L.femur_rotation - L.tibia_rotation) * sstep(-30.0, 30.0, z))


def fat_thickness(L: LegParams, z: float) -> float:
    """Subcutaneous fat thickness of the leg at height ``z`` (thicker on the thigh)."""
    return L.fat * float(np.interp(z, [-200.0, -60.0, 0.0, 60.0, 200.0], [0.75, 0.85, 0.9, 1.05, 1.2]))


def outline(L: LegParams, z: float, x, y, hull):
    """Muscle compartment (fascia) and skin fields of one leg at height ``z`` (soft-tissue frame).

    The fascia is a perturbed ellipse joined with a hull around the bones (``hull``: distance to
    the nearest bone), the skin lies a (direction-dependent) fat thickness outside it; the fat is
    thinner where the bones shape the outline (patella, anteromedial tibia). Returns
    ``(fascia, skin, fat_thickness)`` (negative inside).
    """
    rx, ry = np.interp(z, OUTLINE_Z, L.outline_rx), np.interp(z, OUTLINE_Z, L.outline_ry)
    ox, oy = np.interp(z, OUTLINE_Z, L.outline_ox), np.interp(z, OUTLINE_Z, L.outline_oy)
    dx, dy = x - F32(ox), y - F32(oy)
    th = np.arctan2(dy, dx)
    pert = np.ones(np.broadcast(dx, dy).shape, F32)
    for n_ in range(4):
        a_n = L.outline_amplitude[n_] + L.outline_amplitude_drift[n_] * np.sin(z / 70.0 + n_)
        pert += F32(a_n) * np.cos(F32(n_ + 1) * th + F32(L.outline_phase[n_] + L.outline_phase_drift[n_] * z))
    rho = np.sqrt((dx / F32(rx)) ** 2 + (dy / F32(ry)) ** 2)
    ell = (rho / pert - 1.0) * F32(min(rx, ry))
    bh = hull - F32(np.interp(z, HULL_Z, HULL_MARGIN))
    fascia = smin(ell, bh, 6.0)
    fat_t = fat_thickness(L, z) * (1.0 + L.fat_asymmetry * np.cos(th - F32(L.fat_direction)))
    fat_t = fat_t * (0.35 + 0.65 * sstep(-2.0, 10.0, bh - ell))
    return fascia, fascia - fat_t, fat_t
