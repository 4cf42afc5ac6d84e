"""The joint: femoral, tibial and patellar cartilage, joint fluid and menisci, around the bones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..fields import PlaneWaveField
from ..geometry import union_box
from ..shapes import sstep
from .anatomy import FEM_CART, FLUID, LIGAMENT, MENISCUS, PAT_CART, TENDON, TIB_CART
from .bones import femoral_cartilage_cover, meniscus_mask, tibial_cartilage_cover, tibial_plateau_height
from .scene import KneeScene
from .skeleton import FEMUR, PATELLA, TIBIA, KneeBones

__all__ = ["JointCartilage", "paint_joint"]


@dataclass
class JointCartilage:
    """The cartilage painted by :func:`paint_joint`: ``box`` (index box of the joint), ``cartilage``
    (mask on that box: femoral, tibial and patellar) and ``depth`` (relative depth in the layer, 0 at
    the bone, 1 at the surface)."""

    box: tuple
    cartilage: np.ndarray
    depth: np.ndarray


def paint_joint(scene: KneeScene, bones: KneeBones, fields: tuple[PlaneWaveField, ...]) -> JointCartilage:
    """Cartilage grown from the exact distance to the nearest bone, joint fluid and menisci.

    ``fields``: the smooth fields that vary the femoral and tibial cartilage thickness and the
    fluid film, in this order.
    """
    P, D, G = scene.P, scene.D, scene.G
    x, y, z = scene.x, scene.y, scene.z
    f_fc, f_tc, f_film = fields
    f32 = np.float32
    W, Wt, Dt = P.femur_width, P.tibia_width, P.tibia_depth
    ay, az, yc = P.condyle_radius_ap, P.condyle_radius_si, P.condyle_centre_y
    pc = scene.patella_centre
    pcy, pcz = float(pc[1]), float(pc[2])
    pr = np.array([P.patella_half_width, P.patella_half_depth, P.patella_half_height])
    sl_j = union_box([
        G.box_femur((-W / 2 - 2, yc - ay - 5, -6.0), (W / 2 + 2, scene.femur_front + 5, 2.3 * az)),
        G.box_local((-Wt / 2 - 2, -Dt / 2 - 4, -6.0), (Wt / 2 + 2, Dt / 2 + 4, P.eminence_height + 6.0)),
        G.box_femur(pc - pr - (2, 5, 2), pc + pr * (1, 0, 1) + 2),
    ])
    bj = bones.bone_id[sl_j]
    dist, ind = ndi.distance_transform_edt(bj == 0, sampling=G.sp, return_indices=True)
    near_id = bj[tuple(ind)]
    del ind
    dist = dist.astype(f32)
    xj, yj, zj = x[sl_j], y[sl_j], z[sl_j]
    xfj, yfj, zfj = G.femur(xj, yj, zj)
    outside = bj == 0
    fc = np.zeros(bj.shape, bool)
    tc = np.zeros(bj.shape, bool)
    depth = np.zeros(bj.shape, f32)
    # femoral cartilage
    cand = outside & (near_id == FEMUR) & (dist <= 3.0)
    ii = np.nonzero(cand)
    cov = femoral_cartilage_cover(xfj[ii], yfj[ii], zfj[ii], P, D)
    t = np.clip(P.femoral_cartilage_thickness + 0.45 * f_fc(xfj[ii], yfj[ii], zfj[ii]), 1.5, 3.0)
    t = 1.5 + (t - 1.5) * sstep(0.0, 4.0, cov)
    keep = (cov > 0) & (dist[ii] <= t)
    kk = tuple(i[keep] for i in ii)
    fc[kk] = True
    depth[kk] = dist[kk] / t[keep]
    # tibial cartilage: top surface of the two compartments
    cand = outside & (near_id == TIBIA) & (dist <= 3.0)
    ii = np.nonzero(cand)
    cov = tibial_cartilage_cover(xj[ii], yj[ii], zj[ii], P, D)
    above = zj[ii] > tibial_plateau_height(xj[ii], yj[ii], P, D) - 0.8
    t = np.clip(P.tibial_cartilage_thickness + 0.4 * f_tc(xj[ii], yj[ii], zj[ii]), 1.5, 3.0)
    t = 1.5 + (t - 1.5) * sstep(0.0, 4.0, cov)
    keep = (cov > 0) & above & (dist[ii] <= t)
    kk = tuple(i[keep] for i in ii)
    tc[kk] = True
    depth[kk] = dist[kk] / t[keep]
    # patellar cartilage (posterior surface; same tissue, labelled background as in OAI-ZIB)
    cand = outside & (near_id == PATELLA) & (dist <= P.patellar_cartilage_thickness)
    cand &= (yfj < pcy - 0.3 * P.patella_half_depth) & (np.abs(zfj - pcz) < 0.8 * P.patella_half_height)
    pcart = cand
    depth[pcart] = dist[pcart] / P.patellar_cartilage_thickness
    cart = fc | tc | pcart

    tj = scene.tissue[sl_j]
    # joint gap between femur and tibia (approximate distances) -> synovial fluid
    gap_thr = P.femoral_cartilage_thickness + P.tibial_cartilage_thickness + 0.6 + 1.2 * P.effusion
    fsd, tsd = bones.femur_distance[sl_j], bones.tibia_distance[sl_j]
    gap = outside & (fsd + tsd <= gap_thr) & (fsd > 0) & (tsd > 0) & (np.abs(xj) < Wt / 2)
    tj[gap] = FLUID
    # patchy fluid film on the cartilage surfaces
    near_c = ndi.binary_dilation(cart, structure=np.ones((3, 3, 1), bool)) & ~cart & outside
    ii = np.nonzero(near_c)
    on = f_film(xj[ii], yj[ii], zj[ii]) < (P.fluid_film * 2.0 - 1.0)
    film = np.zeros_like(near_c)
    film[tuple(i[on] for i in ii)] = True
    tj[film & (tj != TENDON) & (tj != LIGAMENT)] = FLUID
    men = meniscus_mask(xj, yj, zj, P, D) & outside
    tj[men] = MENISCUS
    tj[pcart] = PAT_CART
    tj[tc] = TIB_CART
    tj[fc] = FEM_CART
    return JointCartilage(sl_j, cart, depth)
