"""Soft tissue of the knee: body outline, skin, fat, muscle, fat pads, vessels, effusion, tendons, ligaments."""

from __future__ import annotations

import numpy as np

from ..fields import PlaneWaveField
from ..shapes import capsule, ellipsoid, sstep
from .anatomy import ARTERY, FAT, FLUID, LIGAMENT, MUSCLE, SKIN, SUPERSAMPLE, TENDON, VEIN
from .bones import tibia_cross_section
from .scene import KneeScene

__all__ = ["paint_soft_tissue"]


def paint_soft_tissue(scene: KneeScene, fat_field: PlaneWaveField, septa_field: PlaneWaveField) -> np.ndarray:
    """Paint everything but bone, cartilage, menisci and joint fluid; returns the body field.

    The body field (mm, negative inside the skin) is in the tibia frame, sheared with the femur
    above the joint. ``fat_field`` varies the subcutaneous fat thickness, ``septa_field`` draws the fat
    septa between the muscles.
    """
    body, muscle = _paint_outline(scene, fat_field, septa_field)
    inner = body < -3.0
    _paint_fat_pads_and_vessels(scene, muscle, inner)
    _paint_effusion(scene, inner)
    _paint_tendons_and_ligaments(scene, body)
    return body


def _paint_outline(scene: KneeScene, f_fat: PlaneWaveField, f_sept: PlaneWaveField):
    """Skin, subcutaneous fat and muscle (with fat septa); returns ``(body field, muscle mask)``."""
    P, G, tissue = scene.P, scene.G, scene.tissue
    x, y, z = scene.x, scene.y, scene.z
    f32 = np.float32
    ss = SUPERSAMPLE
    zc = scene.femur_z
    tanf = np.tan(np.deg2rad(P.flexion))
    ys_ = scene.flexion_shear(z, y)
    # anterior skin follows patella, patellar tendon and tuberosity
    pc, tub = scene.patella_centre, scene.tuberosity
    p_loc = G.fem_to_local(pc)
    p_front = p_loc[1] - float(sstep(zc - 25.0, zc + 5.0, p_loc[2])) * (p_loc[2] - zc) * tanf + P.patella_half_depth
    rz = P.patella_half_height
    zk = [-300.0, tub[2] - 10.0, p_loc[2] - rz, p_loc[2], p_loc[2] + rz, p_loc[2] + 80.0, 300.0]
    yk = [tub[1] - 1.0, tub[1] + 1.0, p_front - 3.0, p_front, p_front - 2.0, p_front + 6.0, p_front + 6.0]
    y_ant = np.interp(z.ravel(), zk, yk).reshape(z.shape).astype(f32) + f32(P.anterior_fat + P.skin_thickness)
    y_post = f32(-P.posterior_skin) - 4.0 * np.exp(-(((z + 45.0) / 25.0) ** 2))
    cyb = (y_ant + y_post) / 2
    hyb = (y_ant - y_post) / 2
    body = (np.sqrt(((ys_ - cyb) / hyb) ** 2 + (x / f32(60.0)) ** 2) - 1.0) * hyb  # < 0 inside
    del cyb, hyb, y_post
    # fat thickness and septa vary smoothly (fields evaluated at the voxel centres, repeated)
    mid = slice(ss // 2, None, ss)
    xc_, yc_, zc_ = x[:, :, mid], ys_[:, :, mid], z[:, :, mid]
    fat_t = np.where(y[:, :, mid] > 0, P.anterior_fat, P.posterior_fat) + 1.5 * f_fat(xc_, yc_, zc_)
    sept = np.abs(f_sept(xc_, yc_, zc_ * 0.35))
    fat_t = np.repeat(fat_t.astype(f32), ss, axis=2)
    sept = np.repeat(sept, ss, axis=2)
    tissue[body <= 0] = SKIN
    tissue[body <= -P.skin_thickness] = FAT
    muscle = body <= -(P.skin_thickness + np.maximum(fat_t, 1.5))
    tissue[muscle & (sept >= 0.06)] = MUSCLE
    return body, muscle


def _paint_fat_pads_and_vessels(scene: KneeScene, muscle: np.ndarray, inner: np.ndarray) -> None:
    """Hoffa (infrapatellar), pretibial, prefemoral and popliteal fat; popliteal artery and vein."""
    P, G, paint = scene.P, scene.G, scene.paint
    x, y, z = scene.x, scene.y, scene.z
    f32 = np.float32
    zc = scene.femur_z
    W, Wt, Dt = P.femur_width, P.tibia_width, P.tibia_depth
    c, r = (0.0, Dt / 2 + 4.0, 6.0), (Wt / 2 * 1.1, 11.0, 13.0)
    sl = G.box_local(np.subtract(c, r), np.add(c, r))
    paint(sl, ellipsoid(x[sl], y[sl], z[sl], c, r) <= 0, FAT, muscle)
    hx_t, hy_t, cy_t = tibia_cross_section(z, P)
    full = tuple(slice(0, n) for n in G.shape)
    paint(full, (z < -8.0) & (y > cy_t + hy_t - 6.0) & (np.abs(x) < 18.0), FAT, muscle)
    del hx_t, hy_t, cy_t
    c, r = (0.0, scene.femur_front + 4.0, scene.patella_centre[2] + 20.0), (W / 2, 6.0, 25.0)
    sl = G.box_femur(np.subtract(c, r), np.add(c, r))
    q = G.femur(x[sl], y[sl], z[sl])
    paint(sl, ellipsoid(*q, c, r) <= 0, FAT, muscle)
    ypf = -Dt / 2 - 15.0
    c, r = (1.0, ypf, 5.0), (13.0, 10.0, 38.0)
    sl = G.box_local(np.subtract(c, r) - (0, 8, 0), np.add(c, r) + (0, 8, 0))
    paint(sl, ellipsoid(x[sl], y[sl] - 0.15 * (z[sl] - f32(zc)), z[sl], c, r) <= 0, FAT, muscle)
    # popliteal artery and vein
    sl = G.box_local((-6.0, ypf - 12.0, -120.0), (12.0, ypf + 12.0, 120.0))
    xs, ys, zs = x[sl], y[sl] - 0.15 * (z[sl] - f32(zc)) * (z[sl] > zc), z[sl]
    paint(sl, capsule(xs, ys, zs, (4.0, ypf - 2.0, 90.0), (6.0, ypf - 1.0, -90.0), 3.4) <= 0, VEIN, inner)
    paint(sl, capsule(xs, ys, zs, (0.0, ypf + 3.0, 90.0), (2.0, ypf + 4.0, -90.0), 2.6) <= 0, ARTERY, inner)


def _paint_effusion(scene: KneeScene, inner: np.ndarray) -> None:
    """Joint effusion: suprapatellar pouch and posterior recess (femur frame), sized by ``P.effusion``."""
    P, D, G = scene.P, scene.D, scene.G
    x, y, z = scene.x, scene.y, scene.z
    eff = P.effusion
    c = (0.0, scene.femur_front + 1.5 + 1.5 * eff, scene.patella_centre[2] + 0.7 * P.patella_half_height)
    r = (P.femur_width * 0.35, 1.2 + 3.5 * eff, 10.0 + 12.0 * eff)
    sl = G.box_femur(np.subtract(c, r), np.add(c, r))
    scene.paint(sl, ellipsoid(*G.femur(x[sl], y[sl], z[sl]), c, r) <= 0, FLUID, inner)
    c = (D.medial_condyle_x, P.condyle_centre_y - P.condyle_radius_ap - 1.0, 1.4 * P.condyle_radius_si)
    r = (6.0, 1.0 + 2.0 * eff, 5.0 + 4.0 * eff)
    sl = G.box_femur(np.subtract(c, r), np.add(c, r))
    scene.paint(sl, ellipsoid(*G.femur(x[sl], y[sl], z[sl]), c, r) <= 0, FLUID, inner)


def _paint_tendons_and_ligaments(scene: KneeScene, body: np.ndarray) -> None:
    """Patellar and quadriceps tendons, anterior and posterior cruciate ligaments (capsules)."""
    P, G = scene.P, scene.G
    x, y, z = scene.x, scene.y, scene.z
    pc, y_front = scene.patella_centre, scene.femur_front
    ay, az, yc = P.condyle_radius_ap, P.condyle_radius_si, P.condyle_centre_y
    p_inf = G.fem_to_local((pc[0], pc[1] + 1.0, pc[2] - 0.85 * P.patella_half_height))
    p_sup = G.fem_to_local((pc[0], pc[1] + 1.5, pc[2] + 0.85 * P.patella_half_height))
    q_top = G.fem_to_local((0.0, y_front + 9.0, pc[2] + 90.0))
    wn = P.notch_width
    acl_f = G.fem_to_local((wn / 2 - 1.5, yc - 0.55 * ay, 0.55 * az))
    pcl_f = G.fem_to_local((-wn / 2 + 2.0, yc + 0.2 * ay, 0.35 * az))
    segs = [
        (p_inf, scene.tuberosity, 2.3, 3.0, TENDON),
        (p_sup, q_top, 3.0, 3.0, TENDON),
        (acl_f, np.array([1.0, 9.0, P.eminence_height * 0.4]), 2.8, 1.0, LIGAMENT),
        (pcl_f, np.array([-0.5, -P.tibia_depth / 2 + 3.0, -6.0]), 3.2, 1.0, LIGAMENT),
    ]
    for a_, b_, rad, xsc, code in segs:
        pad = np.array([rad * xsc, rad, rad]) + 1.0
        sl = G.box_local(np.minimum(a_, b_) - pad, np.maximum(a_, b_) + pad)
        scene.paint(sl, capsule(x[sl], y[sl], z[sl], a_, b_, rad, xscale=xsc) <= 0, code, body < -1.5)
