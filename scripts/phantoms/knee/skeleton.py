"""Bones of the knee in the tissue map: femur, tibia, fibula and patella, then marrow, cortex and physeal scars."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..shapes import ellipsoid, sstep
from .anatomy import CORTEX, MARROW, PHYSIS
from .bones import femur_field, fibula_field, tibia_field
from .scene import KneeScene

__all__ = ["KneeBones", "place_bones", "paint_bone_interior"]

#: Bone ids of :attr:`KneeBones.bone_id`.
FEMUR, TIBIA, PATELLA, FIBULA = 1, 2, 3, 4


@dataclass
class KneeBones:
    """Where the bones are on the fine grid.

    ``bone_id`` (``uint8``): 1 femur, 2 tibia, 3 patella, 4 fibula, 0 none; ``distance``: the
    approximate signed distance to the nearest bone surface (negative inside, 99 far away), and
    ``femur_distance`` / ``tibia_distance`` the same for one bone. ``femur_box`` is the index box the
    femur was evaluated on, ``femur_coords`` its femur-frame coordinates there and ``femur_field``
    the femur's field there (for the physeal scar).
    """

    bone_id: np.ndarray
    distance: np.ndarray
    femur_distance: np.ndarray
    tibia_distance: np.ndarray
    femur_box: tuple
    femur_coords: tuple
    femur_field: np.ndarray


def place_bones(scene: KneeScene) -> KneeBones:
    """Evaluate the four bones on the grid (approximate signed distances, kept for the cortex)."""
    P, D, G = scene.P, scene.D, scene.G
    x, y, z = scene.x, scene.y, scene.z
    f32 = np.float32
    W, Wt, Dt = P.femur_width, P.tibia_width, P.tibia_depth
    ay, yc = P.condyle_radius_ap, P.condyle_centre_y
    pc = scene.patella_centre
    bsdf = np.full(G.shape, 99.0, f32)
    bone_id = np.zeros(G.shape, np.uint8)
    # femur
    sl_f = G.box_femur((-W / 2 - 3, yc - ay - 3, -8.0), (W / 2 + 3, yc + 1.3 * ay + 8, 400.0))
    xf_, yf_, zf_ = G.femur(x[sl_f], y[sl_f], z[sl_f])
    s_f = femur_field(xf_, yf_, zf_, P, D)
    bsdf[sl_f] = s_f
    fem_sdf = np.full(G.shape, 99.0, f32)
    fem_sdf[sl_f] = s_f
    bone_id[sl_f][s_f <= 0] = FEMUR
    # tibia
    sl_t = G.box_local((-Wt / 2 - 4, -Dt / 2 - 4, -400.0), (Wt / 2 + 4, Dt / 2 + 10, P.eminence_height + 8.0))
    s_t = tibia_field(x[sl_t], y[sl_t], z[sl_t], P, D)
    tib_sdf = np.full(G.shape, 99.0, f32)
    tib_sdf[sl_t] = s_t
    b = bsdf[sl_t]
    np.minimum(b, s_t, out=b)
    bid = bone_id[sl_t]
    bid[(s_t <= 0) & (bid == 0)] = TIBIA
    # fibula
    xfib, yfib = Wt / 2 - 1.0, -Dt / 2 * 0.55
    sl_b = G.box_local((xfib - 9, yfib - 12, -400.0), (xfib + 10, yfib + 9, -6.0))
    s_b = fibula_field(x[sl_b], y[sl_b], z[sl_b], P, D)
    b = bsdf[sl_b]
    np.minimum(b, s_b, out=b)
    bid = bone_id[sl_b]
    bid[(s_b <= 0) & (bid == 0)] = FIBULA
    # patella (femur frame) with a posterior ridge fitting the trochlear groove
    pr = np.array([P.patella_half_width, P.patella_half_depth, P.patella_half_height])
    sl_p = G.box_femur(pc - pr - 5.0, pc + pr + 5.0)
    xp_, yp_, zp_ = G.femur(x[sl_p], y[sl_p], z[sl_p])
    pcx, pcy = float(pc[0]), float(pc[1])
    s_p = ellipsoid(xp_, yp_, zp_, pc, pr) - 2.0 * np.exp(-(((xp_ - pcx) / 4.0) ** 2)) * (yp_ < pcy)
    b = bsdf[sl_p]
    np.minimum(b, s_p, out=b)
    bid = bone_id[sl_p]
    bid[(s_p <= 0) & (bid == 0)] = PATELLA
    return KneeBones(bone_id, bsdf, fem_sdf, tib_sdf, sl_f, (xf_, yf_, zf_), s_f)


def paint_bone_interior(scene: KneeScene, bones: KneeBones) -> None:
    """Marrow, cortex (thicker towards the shafts) and the physeal scars of femur and tibia."""
    G, tissue, x, z = scene.G, scene.tissue, scene.x, scene.z
    bone_id, bsdf = bones.bone_id, bones.distance
    bone = bone_id > 0
    cort_t = 0.8 + 1.8 * sstep(20.0, 45.0, np.abs(z - np.float32(0.5 * scene.femur_z)))
    tissue[bone] = MARROW
    tissue[bone & (bsdf > -cort_t)] = CORTEX
    del cort_t
    sl_f = bones.femur_box
    xf_, _, zf_ = bones.femur_coords
    fem_in = np.zeros(G.shape, bool)
    sub = bone_id[sl_f] == FEMUR
    phys = np.abs(zf_ - (2.0 * scene.P.condyle_radius_si + 2.0 + 1.5 * np.sin(0.25 * xf_))) < 0.45
    fem_in[sl_f] = sub & phys & (bones.femur_field < -2.5)
    phys_t = (np.abs(z - (-17.0 + 1.2 * np.sin(0.3 * x + 1.0))) < 0.45) & (bone_id == TIBIA) & (bsdf < -2.5)
    tissue[fem_in | phys_t] = PHYSIS
