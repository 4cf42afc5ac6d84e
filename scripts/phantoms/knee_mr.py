"""Synthetic sagittal knee MR (DESS-like) with femoral and tibial cartilage labels.

Stand-in for OAI-ZIB (which cannot be shipped) for the ``knee_eas_unet`` bundle. Each volume is a
randomly posed and sized knee built from implicit surfaces:

* distal femur (two condyles with an intercondylar notch, trochlea with groove, metaphysis flaring
  into the shaft), proximal tibia (sloped, slightly concave plateau with intercondylar eminence,
  tuberosity, shaft), patella, fibular head;
* femoral cartilage (FC) and tibial cartilage (TC): layers 1.5-3 mm thick (smoothly varying) grown
  from the bone surface with a Euclidean distance transform, over the articulating surfaces only
  (posterior/inferior condyles and trochlea for FC, the two plateau compartments for TC); patellar
  cartilage (same intensity as FC/TC but labelled background, as in OAI-ZIB);
* menisci (wedge-shaped rings), joint fluid (film at the cartilage surfaces, the joint gap, a
  suprapatellar pouch and a posterior recess whose size varies), cruciate ligaments, patellar and
  quadriceps tendons, Hoffa and popliteal fat, popliteal vessels, muscle with fat septa,
  subcutaneous fat, skin, air;
* water-excitation DESS-like contrast: fluid very bright, cartilage bright-intermediate, muscle
  intermediate-dark, fat and marrow suppressed, cortex/menisci/tendons very dark;
* MR physics: partial volume (the anatomy is sampled 3x finer across slices, averaged over the
  slice, then blurred in-plane), a smooth multiplicative bias field (+-18-30 %), Rician noise.

Geometry (fixed, other code depends on it): array shape ``(160, 160, 40)``, spacing
``(0.7, 0.7, 1.5)`` mm; axis 0 runs anterior->posterior, axis 1 superior->inferior, axis 2
left->right, so ``array[:, :, k]`` is sagittal slice ``k`` and the affine has
``nibabel.aff2axcodes(affine) == ('P', 'I', 'R')``. Labels: 0 background (bones and everything
else), 1 femoral cartilage, 2 tibial cartilage (``uint8``, from the un-blurred anatomy).

Everything is deterministic given the seed. The data are synthetic and are not real patient data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage as ndi

from . import volume_seed_sequence, write_dataset
from .shapes import as_rng as _as_rng
from .shapes import capsule as _capsule
from .shapes import ellipsoid as _ellipsoid
from .shapes import smax as _smax
from .shapes import smin as _smin
from .shapes import sstep as _sstep

__all__ = [
    "SHAPE",
    "SPACING",
    "LABELS",
    "TISSUES",
    "BUNDLE",
    "knee_affine",
    "sample_knee_params",
    "render_knee_volume",
    "volume_seed",
    "write_knee_dataset",
]

BUNDLE = "knee_eas_unet"
#: Array shape (axis 0 anterior->posterior, axis 1 superior->inferior, axis 2 left->right).
SHAPE = (160, 160, 40)
#: Voxel spacing in mm along the three array axes.
SPACING = (0.7, 0.7, 1.5)
#: Label values written to the label volumes.
LABELS = {0: "background", 1: "femoral_cartilage", 2: "tibial_cartilage"}
#: Sub-samples per slice along axis 2 used for partial-volume rendering (odd, so that the middle
#: sub-sample is the voxel centre that the label is taken from).
SUPERSAMPLE = 3

# Tissue codes of the internal (un-blurred) tissue map.
AIR, SKIN, FAT, MUSCLE, TENDON, LIGAMENT, ARTERY, VEIN, FLUID, MENISCUS = range(10)
PAT_CART, FEM_CART, TIB_CART, MARROW, CORTEX, PHYSIS = range(10, 16)
#: Tissue names by code (for ``render_knee_volume(..., return_tissues=True)``).
TISSUES = {
    AIR: "air",
    SKIN: "skin",
    FAT: "fat",
    MUSCLE: "muscle",
    TENDON: "tendon",
    LIGAMENT: "ligament",
    ARTERY: "artery",
    VEIN: "vein",
    FLUID: "fluid",
    MENISCUS: "meniscus",
    PAT_CART: "patellar_cartilage",
    FEM_CART: "femoral_cartilage",
    TIB_CART: "tibial_cartilage",
    MARROW: "marrow",
    CORTEX: "cortical_bone",
    PHYSIS: "physeal_scar",
}
# Water-excitation DESS-like base intensities (arbitrary MR units, before gain/bias/noise).
_BASE_INTENSITY = {
    AIR: 0.0,
    SKIN: 300.0,
    FAT: 85.0,
    MUSCLE: 230.0,
    TENDON: 30.0,
    LIGAMENT: 75.0,
    ARTERY: 300.0,
    VEIN: 380.0,
    FLUID: 760.0,
    MENISCUS: 35.0,
    PAT_CART: 450.0,
    FEM_CART: 440.0,
    TIB_CART: 430.0,
    MARROW: 115.0,
    CORTEX: 12.0,
    PHYSIS: 50.0,
}


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def knee_affine() -> np.ndarray:
    """The fixed voxel-to-world (RAS+, mm) affine of every knee volume.

    Columns: axis 0 -> posterior (0, -0.7, 0), axis 1 -> inferior (0, 0, -0.7), axis 2 -> right
    (1.5, 0, 0); the origin puts the volume centre at world (0, 0, 0). ``aff2axcodes`` gives
    ``('P', 'I', 'R')``.
    """
    aff = np.zeros((4, 4))
    aff[1, 0] = -SPACING[0]
    aff[2, 1] = -SPACING[1]
    aff[0, 2] = SPACING[2]
    aff[3, 3] = 1.0
    centre = (np.array(SHAPE, dtype=float) - 1.0) / 2.0
    aff[:3, 3] = -aff[:3, :3] @ centre
    return aff


def _rot(axis: int, deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    if axis == 0:
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == 1:
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


class _SmoothField:
    """Random smooth scalar field (sum of random plane waves), unit-ish std, callable on points."""

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


# --------------------------------------------------------------------------------------------
# anatomy parameters and implicit surfaces
# --------------------------------------------------------------------------------------------


def sample_knee_params(rng: np.random.Generator) -> dict:
    """Draw the random anatomy, pose and contrast parameters of one knee.

    All lengths are in mm in the knee's local frame (x lateral, y anterior, z superior, origin at the
    centre of the tibial plateau). The same generator state always gives the same parameters.

    Args:
        rng: numpy random generator (consumed).

    Returns:
        A flat dict of floats/arrays used by :func:`render_knee_volume`.
    """
    u = rng.uniform
    s = u(0.92, 1.08)  # global size
    P: dict = {"scale": s}
    # --- femur (femur frame: condyle bottoms at z = 0 before placement) ---
    P["f_width"] = u(42.0, 46.5) * (0.5 + 0.5 * s)  # bicondylar width (narrow: FOV is 60 mm)
    P["notch_w"] = P["f_width"] * u(0.22, 0.27)
    P["f_ay"] = u(19.0, 22.0) * s  # condyle sagittal semi-axes (posterior-inferior contour)
    P["f_az"] = u(17.0, 20.5) * s
    P["f_ay_l"] = P["f_ay"] * u(0.9, 0.98)  # lateral condyle a bit smaller
    P["f_az_l"] = P["f_az"] * u(0.92, 1.0)
    P["f_yc"] = u(-5.0, -1.0)  # condyle centre (AP) relative to the plateau centre
    P["f_shaft_hx"] = u(12.0, 14.0) * s
    P["f_shaft_hy"] = u(11.0, 13.0) * s
    P["f_flare"] = u(38.0, 50.0) * s
    P["groove"] = u(2.5, 4.5)
    P["roof_deg"] = u(34.0, 44.0)
    P["fc_ant_deg"] = u(48.0, 58.0)  # FC arc limits around the condyle centre (sagittal angle)
    P["fc_post_deg"] = u(120.0, 135.0)
    P["flexion"] = u(0.0, 12.0)
    P["f_varus"] = u(-2.0, 2.0)
    P["f_rot"] = u(-3.0, 3.0)
    # --- tibia (local frame) ---
    P["t_width"] = P["f_width"] * u(1.02, 1.08)
    P["t_depth"] = u(38.0, 44.0) * s
    P["t_slope"] = float(np.tan(np.deg2rad(u(3.0, 9.0))))
    P["t_conc_m"] = u(1.0, 2.2)
    P["t_conc_l"] = u(0.0, 0.8)
    P["em_h"] = u(4.0, 6.5)
    P["em_w"] = u(2.5, 3.5)
    P["t_shaft_hx"] = u(11.0, 13.0) * s
    P["t_shaft_hy"] = u(10.0, 12.0) * s
    # --- cartilage ---
    P["fc_t"] = u(1.9, 2.4)
    P["tc_t"] = u(1.8, 2.3)
    P["pc_t"] = u(2.4, 3.0)
    P["gap"] = u(0.0, 0.8)
    P["mn_h"] = u(5.0, 7.5)
    P["mn_rin"] = u(0.55, 0.66)
    # --- patella / soft tissue ---
    P["p_rx"] = u(10.5, 12.5) * s
    P["p_ry"] = u(7.5, 9.0) * s
    P["p_rz"] = u(15.0, 18.0) * s
    P["p_height"] = u(0.45, 0.8)  # patella height (fraction of f_az above the condyle centre)
    P["effusion"] = u(0.0, 1.0) ** 2
    P["post_skin"] = u(46.0, 51.0)
    P["ant_fat"] = u(3.5, 6.5)
    P["post_fat"] = u(5.0, 10.0)
    P["skin_t"] = u(1.2, 1.8)
    P["film"] = u(0.2, 0.7)  # fraction of cartilage surface with a visible fluid film
    # --- pose in the scanner (scanner-aligned frame: X right(lateral), Y anterior, Z superior) ---
    P["laterality"] = 1.0 if u() < 0.5 else -1.0  # +1 right knee (lateral = +R), -1 left knee
    P["pose_rx"] = u(-5.0, 5.0)
    P["pose_ry"] = u(-3.0, 3.0)
    P["pose_rz"] = u(-6.0, 6.0)
    P["pose_t"] = np.array([u(-2.5, 2.5), u(0.0, 5.0), u(-5.0, 5.0)])
    # --- contrast / acquisition ---
    P["gain"] = u(0.85, 1.15)
    P["tissue_jitter"] = u(0.9, 1.1, size=len(_BASE_INTENSITY))
    P["noise_frac"] = u(0.05, 0.085)  # noise sigma relative to the cartilage intensity
    P["bias"] = u(0.18, 0.30)
    P["blur"] = u(0.4, 0.6)
    return P


def _derived(P: dict) -> dict:
    """Positions derived from the sampled parameters (condyle centres, compartments, ...)."""
    D = {}
    W, wn = P["f_width"], P["notch_w"]
    cond_w = (W - wn) / 2.0
    D["xm"] = -(wn / 2 + cond_w / 2)  # medial condyle centre (x < 0 is medial)
    D["xl"] = wn / 2 + cond_w / 2
    D["cw"] = cond_w / 2 * 1.08  # condyle half-width (superellipsoid)
    Wt = P["t_width"]
    ew = P["em_w"]
    half = (Wt / 2 - ew) / 2
    D["t_half"] = half
    D["t_xm"] = -(ew + half)
    D["t_xl"] = ew + half
    return D


def _femur_sdf(x, y, z, P, D):
    """Implicit femur (negative inside) in the femur frame."""
    yc = P["f_yc"]
    out = None
    for xc, ay, az in ((D["xm"], P["f_ay"], P["f_az"]), (D["xl"], P["f_ay_l"], P["f_az_l"])):
        dx = (x - xc) / D["cw"]
        r2 = ((y - yc) / ay) ** 2 + ((z - az) / az) ** 2
        adx = np.abs(dx)
        q = np.cbrt(adx * adx * adx + r2 * np.sqrt(r2))
        f = (q - 1.0) * az
        out = f if out is None else _smin(out, f, 1.5)
    ay, az, W = P["f_ay"], P["f_az"], P["f_width"]
    # trochlea: anterior bridge between the condyles with a groove
    tro = _ellipsoid(x, y, z, (0.0, yc + 0.42 * ay, 1.15 * az), (W / 2 * 0.88, 0.62 * ay, 0.85 * az))
    tro = tro + P["groove"] * np.exp(-((x + 1.0) / (0.16 * W)) ** 2) * _sstep(yc, yc + 0.6 * ay, y)
    out = _smin(out, tro, 3.0)
    # metaphysis flaring into the shaft
    uu = _sstep(0.0, 1.0, (z - 1.6 * az) / P["f_flare"])
    hx = W / 2 + (P["f_shaft_hx"] - W / 2) * uu
    hy = 0.8 * ay + (P["f_shaft_hy"] - 0.8 * ay) * uu
    cy = yc + 0.12 * ay + (0.28 * ay - 0.12 * ay) * uu
    bx2, by2 = (x / hx) ** 2, ((y - cy) / hy) ** 2
    qb = np.sqrt(np.sqrt(bx2 * bx2 + by2 * by2))
    blk = (qb - 1.0) * np.minimum(hx, hy)
    blk = _smax(blk, 1.1 * az - z, 2.0)
    out = _smin(out, blk, 5.0)
    # intercondylar notch (open posteriorly/inferiorly, roof = Blumensaat line)
    th = np.deg2rad(P["roof_deg"])
    ya, za = yc + 0.3 * ay, 0.3 * az
    roof = (y - ya) * float(np.cos(th)) + (z - za) * float(np.sin(th))  # > 0 on the bone side
    slab = np.abs(x) - P["notch_w"] / 2
    notch = np.maximum(slab, roof)  # < 0 inside the notch
    return _smax(out, -notch, 1.0)


def _fc_cover(x, y, z, P, D):
    """Margin (mm, > 0 inside) of the articulating femoral surface region, femur frame.

    Covered: the arc of the condyles from the trochlea (anterior-superior limit) through the distal
    surface to the posterior condyles (posterior-superior limit); not the intercondylar notch.
    """
    yc, az = P["f_yc"], P["f_az"]
    phi = np.degrees(np.arctan2(z - az, y - yc))  # 0 anterior, 90 superior, 180 posterior
    lo, hi = P["fc_ant_deg"], P["fc_post_deg"]
    ang = np.abs((phi - (lo + hi) / 2 + 180.0) % 360.0 - 180.0) - (hi - lo) / 2
    m = ang * (np.pi / 180.0) * az
    m = np.minimum(m, P["f_width"] / 2 - 1.5 - np.abs(x))
    notch = np.maximum(np.abs(x) - P["notch_w"] / 2 - 0.7, y - (yc + 0.35 * P["f_ay"]))
    return np.minimum(m, notch)


def _tibia_top(x, y, P, D):
    """Height of the tibial plateau bone surface (local frame)."""
    z = P["t_slope"] * y
    hy = P["t_depth"] / 2 * 0.85
    for xc, dep in ((D["t_xm"], P["t_conc_m"]), (D["t_xl"], P["t_conc_l"])):
        r2 = ((x - xc) / D["t_half"]) ** 2 + (y / hy) ** 2
        z = z - dep * np.clip(1.0 - r2, 0.0, 1.0)
    z = z + P["em_h"] * np.exp(-((x / P["em_w"]) ** 2) - ((y - 2.0) / 7.0) ** 2)
    return z


def _tibia_frame(z, P):
    depth = -z
    uu = _sstep(5.0, 42.0, depth)
    hx = P["t_width"] / 2 + (P["t_shaft_hx"] - P["t_width"] / 2) * uu
    hy = P["t_depth"] / 2 + (P["t_shaft_hy"] - P["t_depth"] / 2) * uu
    cy = 0.0 + 2.0 * uu
    return hx, hy, cy


def _tibia_sdf(x, y, z, P, D):
    """Implicit tibia (negative inside), local frame."""
    hx, hy, cy = _tibia_frame(z, P)
    q = (np.abs(x / hx) ** 2.3 + np.abs((y - cy) / hy) ** 2.3) ** (1 / 2.3)
    foot = (q - 1.0) * np.minimum(hx, hy)
    out = _smax(foot, z - _tibia_top(x, y, P, D), 1.5)
    hx25, hy25, cy25 = _tibia_frame(-26.0, P)
    tub = _ellipsoid(x, y, z, (0.0, cy25 + hy25 - 2.0, -26.0), (8.0, 5.0, 11.0))
    return _smin(out, tub, 3.0)


def _fibula_sdf(x, y, z, P, D):
    """Fibular head and shaft (lateral, posterior), local frame."""
    xf = P["t_width"] / 2 - 1.0
    yf = -P["t_depth"] / 2 * 0.55
    head = _ellipsoid(x, y, z, (xf, yf, -16.0), (7.0, 7.5, 8.0))
    shaft = _capsule(x, y, z, (xf, yf, -16.0), (xf + 1.0, yf - 3.0, -90.0), 5.0)
    return _smin(head, shaft, 3.0)


def _tc_cover(x, y, z, P, D):
    """Margin (mm, > 0 inside) of the two tibial cartilage compartments, local frame."""
    hy = P["t_depth"] / 2 * 0.9
    m = None
    for xc in (D["t_xm"], D["t_xl"]):
        r = np.sqrt(((x - xc) / (D["t_half"] * 0.95)) ** 2 + (y / hy) ** 2)
        mc = (1.0 - r) * D["t_half"]
        m = mc if m is None else np.maximum(m, mc)
    return m


def _meniscus(x, y, z, P, D):
    """Boolean mask of the two meniscal wedges (local frame)."""
    hy = P["t_depth"] / 2 * 0.97
    rin = P["mn_rin"]
    mask = None
    for xc, sgn in ((D["t_xm"], -1.0), (D["t_xl"], 1.0)):
        r = np.sqrt(((x - xc) / (D["t_half"] * 1.03)) ** 2 + (y / hy) ** 2)
        frac = np.clip((r - rin) / (0.9 - rin), 0.0, 1.0)
        hmax = P["mn_h"] * (1.0 + 0.25 * np.clip(-y / hy, 0, 1))  # posterior horn taller
        h = hmax * frac * (r <= 1.0)
        # open towards the intercondylar eminence (horn attachments)
        inner = ((x - xc) * -sgn > 0.55 * D["t_half"]) & (np.abs(y) < 0.45 * hy)
        m = (r >= rin) & (r <= 1.0) & ~inner
        zt = _tibia_top(x, y, P, D)
        m &= (z >= zt - 0.5) & (z <= zt + h + 0.3)
        mask = m if mask is None else (mask | m)
    return mask


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


def _femur_pose(P: dict):
    """Rotation of the femur frame relative to the tibia (flexion tilts the shaft anteriorly)."""
    return _rot(2, P["f_rot"]) @ _rot(1, P["f_varus"]) @ _rot(0, -P["flexion"])


def _place_femur(P, D, Rf):
    """Height (local z) of the femoral condyle centre that leaves the requested joint gap."""
    xs = np.arange(-P["t_width"] / 2, P["t_width"] / 2, 0.75)
    ys = np.arange(-P["t_depth"] / 2, P["t_depth"] / 2, 0.75)
    zs = np.arange(-8.0, 30.0, 0.2)
    X, Y, Z = np.meshgrid(xs, ys, zs, indexing="ij")
    c_ref = np.array([0.0, P["f_yc"], P["f_az"]])
    q = np.einsum("ji,j...->i...", Rf, np.stack([X - c_ref[0], Y - c_ref[1], Z - c_ref[2]]))
    q += c_ref[:, None, None, None]
    fem = _femur_sdf(q[0], q[1], q[2], P, D) <= 0
    tib = _tibia_sdf(X, Y, Z, P, D) <= 0
    big = 1e3
    zlow = np.where(fem, Z, big).min(-1)
    ztop = np.where(tib, Z, -big).max(-1)
    cover = _tc_cover(X[..., 0], Y[..., 0], 0.0, P, D) > 0
    clear = np.where(cover, P["fc_t"] + P["tc_t"] + P["gap"], 1.5)
    valid = (zlow < big) & (ztop > -big)
    shift = np.max((ztop + clear - zlow)[valid])
    return c_ref[2] + shift


class _Grid:
    """Fine sampling grid (axis 2 supersampled) and the scanner / tibia / femur frame transforms."""

    def __init__(self, P: dict, D: dict):
        self.P, self.D = P, D
        self.ss = SUPERSAMPLE
        self.shape = (SHAPE[0], SHAPE[1], SHAPE[2] * self.ss)
        self.sp = (SPACING[0], SPACING[1], SPACING[2] / self.ss)
        self.R = _rot(2, P["pose_rz"]) @ _rot(1, P["pose_ry"]) @ _rot(0, P["pose_rx"])
        self.T = np.asarray(P["pose_t"], float)
        self.lat = float(P["laterality"])
        self.Rf = _femur_pose(P)
        self.c_ref = np.array([0.0, P["f_yc"], P["f_az"]])
        self.c_loc = np.array([0.0, P["f_yc"], _place_femur(P, D, self.Rf)])

    # index (i, j, kf) <-> scanner-aligned mm (X lateral, Y anterior, Z superior)
    def _scanner_axes(self, sl):
        n0, n1, _ = SHAPE
        i = np.arange(self.shape[0])[sl[0]]
        j = np.arange(self.shape[1])[sl[1]]
        kf = np.arange(self.shape[2])[sl[2]]
        Y = -((i - (n0 - 1) / 2) * SPACING[0])
        Z = -((j - (n1 - 1) / 2) * SPACING[1])
        kc = (kf + 0.5) / self.ss - 0.5
        X = self.lat * (kc - (SHAPE[2] - 1) / 2) * SPACING[2]
        return X, Y, Z

    def local(self, sl):
        """Tibia-frame coordinates (float32 arrays broadcast to the box ``sl``)."""
        X, Y, Z = self._scanner_axes(sl)
        dX = (X - self.T[0])[None, None, :]
        dY = (Y - self.T[1])[:, None, None]
        dZ = (Z - self.T[2])[None, :, None]
        R = self.R
        out = []
        for c in range(3):
            v = R[0, c] * dX + R[1, c] * dY + R[2, c] * dZ
            out.append(v.astype(np.float32))
        return out

    def femur(self, x, y, z):
        """Femur-frame coordinates of tibia-frame points."""
        Rf, cl, cr = self.Rf, self.c_loc, self.c_ref
        d = (x - np.float32(cl[0]), y - np.float32(cl[1]), z - np.float32(cl[2]))
        out = []
        for c in range(3):
            v = np.float32(Rf[0, c]) * d[0] + np.float32(Rf[1, c]) * d[1] + np.float32(Rf[2, c]) * d[2]
            out.append(v + np.float32(cr[c]))
        return out

    def fem_to_local(self, q):
        """Tibia-frame position of a femur-frame point."""
        return self.Rf @ (np.asarray(q, float) - self.c_ref) + self.c_loc

    def box_local(self, lo, hi):
        """Index box (tuple of slices) of the fine grid covering a tibia-frame axis-aligned box."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        P = corners @ self.R.T + self.T  # scanner-aligned
        n0, n1, n2 = SHAPE
        i = (n0 - 1) / 2 - P[:, 1] / SPACING[0]
        j = (n1 - 1) / 2 - P[:, 2] / SPACING[1]
        kc = (n2 - 1) / 2 + self.lat * P[:, 0] / SPACING[2]
        kf = (kc + 0.5) * self.ss - 0.5
        out = []
        for v, n in zip((i, j, kf), self.shape):
            a = int(np.clip(np.floor(v.min()) - 1, 0, n))
            b = int(np.clip(np.ceil(v.max()) + 2, 0, n))
            out.append(slice(a, max(a, b)))
        return tuple(out)

    def box_femur(self, lo, hi):
        """Index box covering a femur-frame axis-aligned box."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        loc = np.array([self.fem_to_local(c) for c in corners])
        return self.box_local(loc.min(0), loc.max(0))


def _union_box(*boxes):
    return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))


def _empty(sl) -> bool:
    return any(s.stop <= s.start for s in sl)


def render_knee_volume(rng_or_seed=0, params: dict | None = None, return_tissues: bool = False):
    """Render one synthetic DESS-like sagittal knee MR volume with FC/TC labels.

    Args:
        rng_or_seed: ``numpy.random.Generator`` or an int seed. The volume is a deterministic
            function of it.
        params: optional parameter dict from :func:`sample_knee_params` (drawn from the generator
            when omitted; the generator is then also used for the textures and noise).
        return_tissues: also return a dict of un-blurred masks on the output grid (``femur``,
            ``tibia``, ``patella``, ``fibula``, ``bone``, ``tissue`` code map, see :data:`TISSUES`)
            and the parameters (``params``), for tests and inspection.

    Returns:
        ``(image, label, affine)``: ``float32`` image of shape :data:`SHAPE` (arbitrary MR units,
        roughly 0-1000), ``uint8`` label (0 background, 1 femoral cartilage, 2 tibial cartilage) and
        the 4x4 affine (:func:`knee_affine`); plus the tissue dict when ``return_tissues``.
    """
    rng = _as_rng(rng_or_seed)
    P = sample_knee_params(rng) if params is None else params
    D = _derived(P)
    G = _Grid(P, D)
    ss = SUPERSAMPLE
    n0, n1, n2 = SHAPE
    f32 = np.float32
    full = tuple(slice(0, n) for n in G.shape)
    W, Wt, Dt = P["f_width"], P["t_width"], P["t_depth"]
    ay, az, yc = P["f_ay"], P["f_az"], P["f_yc"]
    zc = float(G.c_loc[2])
    # smooth random fields (drawn in a fixed order: keeps the volume a function of the seed)
    f_fc = _SmoothField(rng, 8, (18.0, 45.0))
    f_tc = _SmoothField(rng, 8, (15.0, 40.0))
    f_fat = _SmoothField(rng, 6, (40.0, 90.0))
    f_sept = _SmoothField(rng, 6, (20.0, 50.0))
    f_film = _SmoothField(rng, 8, (10.0, 30.0))

    tissue = np.zeros(G.shape, np.uint8)

    # ---- body outline, skin, subcutaneous fat, muscle (tibia frame, sheared with the femur) ----
    x, y, z = G.local(full)
    tanf = np.tan(np.deg2rad(P["flexion"]))
    wz = _sstep(zc - 25.0, zc + 5.0, z)
    ys_ = y - wz * (z - f32(zc)) * f32(tanf)
    # anterior skin follows patella, patellar tendon and tuberosity
    pc = np.array([0.8, 0.0, az * (1.0 + P["p_height"])])
    line_y = np.arange(yc, yc + 2 * ay + 20, 0.1)
    on = _femur_sdf(np.zeros_like(line_y), line_y, np.full_like(line_y, pc[2]), P, D) <= 0
    y_front = float(line_y[on].max()) if on.any() else yc + ay
    pc[1] = y_front + P["fc_t"] + P["pc_t"] + 0.5 + P["p_ry"] * 0.85
    p_loc = G.fem_to_local(pc)
    shear = lambda p: p[1] - float(_sstep(zc - 25.0, zc + 5.0, p[2])) * (p[2] - zc) * tanf  # noqa: E731
    hx25, hy25, cy25 = _tibia_frame(-26.0, P)
    tub = np.array([0.0, cy25 + hy25 + 2.0, -28.0])
    p_front = shear(p_loc) + P["p_ry"]
    zk = [-300.0, tub[2] - 10.0, p_loc[2] - P["p_rz"], p_loc[2], p_loc[2] + P["p_rz"], p_loc[2] + 80.0, 300.0]
    yk = [tub[1] - 1.0, tub[1] + 1.0, p_front - 3.0, p_front, p_front - 2.0, p_front + 6.0, p_front + 6.0]
    y_ant = np.interp(z.ravel(), zk, yk).reshape(z.shape).astype(f32) + f32(P["ant_fat"] + P["skin_t"])
    y_post = f32(-P["post_skin"]) - 4.0 * np.exp(-(((z + 45.0) / 25.0) ** 2))
    cyb = (y_ant + y_post) / 2
    hyb = (y_ant - y_post) / 2
    body = (np.sqrt(((ys_ - cyb) / hyb) ** 2 + (x / f32(60.0)) ** 2) - 1.0) * hyb  # < 0 inside
    del cyb, hyb, y_post
    # fat thickness and septa vary smoothly (fields evaluated at the voxel centres, repeated)
    mid = slice(ss // 2, None, ss)
    xc_, yc_, zc_ = x[:, :, mid], ys_[:, :, mid], z[:, :, mid]
    fat_t = np.where(y[:, :, mid] > 0, P["ant_fat"], P["post_fat"]) + 1.5 * f_fat(xc_, yc_, zc_)
    sept = np.abs(f_sept(xc_, yc_, zc_ * 0.35))
    fat_t = np.repeat(fat_t.astype(f32), ss, axis=2)
    sept = np.repeat(sept, ss, axis=2)
    tissue[body <= 0] = SKIN
    tissue[body <= -P["skin_t"]] = FAT
    muscle = body <= -(P["skin_t"] + np.maximum(fat_t, 1.5))
    tissue[muscle & (sept >= 0.06)] = MUSCLE
    del fat_t, sept, ys_, wz
    inner = body < -3.0

    def paint(sl, mask, code, where=None):
        if _empty(sl):
            return
        t = tissue[sl]
        m = mask if where is None else (mask & where[sl])
        t[m] = code

    # Hoffa (infrapatellar) fat pad, pretibial and prefemoral fat, popliteal fossa
    c, r = (0.0, Dt / 2 + 4.0, 6.0), (Wt / 2 * 1.1, 11.0, 13.0)
    sl = G.box_local(np.subtract(c, r), np.add(c, r))
    paint(sl, _ellipsoid(x[sl], y[sl], z[sl], c, r) <= 0, FAT, muscle)
    hx_t, hy_t, cy_t = _tibia_frame(z, P)
    paint(full, (z < -8.0) & (y > cy_t + hy_t - 6.0) & (np.abs(x) < 18.0), FAT, muscle)
    del hx_t, hy_t, cy_t
    c, r = (0.0, y_front + 4.0, pc[2] + 20.0), (W / 2, 6.0, 25.0)
    sl = G.box_femur(np.subtract(c, r), np.add(c, r))
    q = G.femur(x[sl], y[sl], z[sl])
    paint(sl, _ellipsoid(*q, c, r) <= 0, FAT, muscle)
    ypf = -Dt / 2 - 15.0
    c, r = (1.0, ypf, 5.0), (13.0, 10.0, 38.0)
    sl = G.box_local(np.subtract(c, r) - (0, 8, 0), np.add(c, r) + (0, 8, 0))
    paint(sl, _ellipsoid(x[sl], y[sl] - 0.15 * (z[sl] - f32(zc)), z[sl], c, r) <= 0, FAT, muscle)
    # popliteal artery and vein
    sl = G.box_local((-6.0, ypf - 12.0, -120.0), (12.0, ypf + 12.0, 120.0))
    xs, ys, zs = x[sl], y[sl] - 0.15 * (z[sl] - f32(zc)) * (z[sl] > zc), z[sl]
    paint(sl, _capsule(xs, ys, zs, (4.0, ypf - 2.0, 90.0), (6.0, ypf - 1.0, -90.0), 3.4) <= 0, VEIN, inner)
    paint(sl, _capsule(xs, ys, zs, (0.0, ypf + 3.0, 90.0), (2.0, ypf + 4.0, -90.0), 2.6) <= 0, ARTERY, inner)

    # effusion: suprapatellar pouch and posterior recess (femur frame)
    eff = P["effusion"]
    c = (0.0, y_front + 1.5 + 1.5 * eff, pc[2] + 0.7 * P["p_rz"])
    r = (W * 0.35, 1.2 + 3.5 * eff, 10.0 + 12.0 * eff)
    sl = G.box_femur(np.subtract(c, r), np.add(c, r))
    paint(sl, _ellipsoid(*G.femur(x[sl], y[sl], z[sl]), c, r) <= 0, FLUID, inner)
    c = (D["xm"], yc - ay - 1.0, 1.4 * az)
    r = (6.0, 1.0 + 2.0 * eff, 5.0 + 4.0 * eff)
    sl = G.box_femur(np.subtract(c, r), np.add(c, r))
    paint(sl, _ellipsoid(*G.femur(x[sl], y[sl], z[sl]), c, r) <= 0, FLUID, inner)

    # tendons and cruciate ligaments
    p_inf = G.fem_to_local((pc[0], pc[1] + 1.0, pc[2] - 0.85 * P["p_rz"]))
    p_sup = G.fem_to_local((pc[0], pc[1] + 1.5, pc[2] + 0.85 * P["p_rz"]))
    q_top = G.fem_to_local((0.0, y_front + 9.0, pc[2] + 90.0))
    wn = P["notch_w"]
    acl_f = G.fem_to_local((wn / 2 - 1.5, yc - 0.55 * ay, 0.55 * az))
    pcl_f = G.fem_to_local((-wn / 2 + 2.0, yc + 0.2 * ay, 0.35 * az))
    segs = [
        (p_inf, tub, 2.3, 3.0, TENDON),
        (p_sup, q_top, 3.0, 3.0, TENDON),
        (acl_f, np.array([1.0, 9.0, P["em_h"] * 0.4]), 2.8, 1.0, LIGAMENT),
        (pcl_f, np.array([-0.5, -Dt / 2 + 3.0, -6.0]), 3.2, 1.0, LIGAMENT),
    ]
    for a_, b_, rad, xsc, code in segs:
        pad = np.array([rad * xsc, rad, rad]) + 1.0
        sl = G.box_local(np.minimum(a_, b_) - pad, np.maximum(a_, b_) + pad)
        paint(sl, _capsule(x[sl], y[sl], z[sl], a_, b_, rad, xscale=xsc) <= 0, code, body < -1.5)

    # ---- bones (approximate signed distances, kept for the cortex) ----
    bsdf = np.full(G.shape, 99.0, f32)
    bone_id = np.zeros(G.shape, np.uint8)  # 1 femur, 2 tibia, 3 patella, 4 fibula
    # femur
    sl_f = G.box_femur((-W / 2 - 3, yc - ay - 3, -8.0), (W / 2 + 3, yc + 1.3 * ay + 8, 400.0))
    xf_, yf_, zf_ = G.femur(x[sl_f], y[sl_f], z[sl_f])
    s_f = _femur_sdf(xf_, yf_, zf_, P, D)
    bsdf[sl_f] = s_f
    fem_sdf = np.full(G.shape, 99.0, f32)
    fem_sdf[sl_f] = s_f
    bone_id[sl_f][s_f <= 0] = 1
    femur_loc_xyz = (xf_, yf_, zf_)
    # tibia
    sl_t = G.box_local((-Wt / 2 - 4, -Dt / 2 - 4, -400.0), (Wt / 2 + 4, Dt / 2 + 10, P["em_h"] + 8.0))
    s_t = _tibia_sdf(x[sl_t], y[sl_t], z[sl_t], P, D)
    tib_sdf = np.full(G.shape, 99.0, f32)
    tib_sdf[sl_t] = s_t
    b = bsdf[sl_t]
    np.minimum(b, s_t, out=b)
    bid = bone_id[sl_t]
    bid[(s_t <= 0) & (bid == 0)] = 2
    # fibula
    xfib, yfib = Wt / 2 - 1.0, -Dt / 2 * 0.55
    sl_b = G.box_local((xfib - 9, yfib - 12, -400.0), (xfib + 10, yfib + 9, -6.0))
    s_b = _fibula_sdf(x[sl_b], y[sl_b], z[sl_b], P, D)
    b = bsdf[sl_b]
    np.minimum(b, s_b, out=b)
    bid = bone_id[sl_b]
    bid[(s_b <= 0) & (bid == 0)] = 4
    # patella (femur frame) with a posterior ridge fitting the trochlear groove
    pr = np.array([P["p_rx"], P["p_ry"], P["p_rz"]])
    sl_p = G.box_femur(pc - pr - 5.0, pc + pr + 5.0)
    xp_, yp_, zp_ = G.femur(x[sl_p], y[sl_p], z[sl_p])
    pcx, pcy, pcz = (float(v) for v in pc)
    s_p = _ellipsoid(xp_, yp_, zp_, pc, pr) - 2.0 * np.exp(-(((xp_ - pcx) / 4.0) ** 2)) * (yp_ < pcy)
    b = bsdf[sl_p]
    np.minimum(b, s_p, out=b)
    bid = bone_id[sl_p]
    bid[(s_p <= 0) & (bid == 0)] = 3
    bone = bone_id > 0

    # ---- joint box: cartilage from the exact distance to the nearest bone ----
    sl_j = _union_box(
        G.box_femur((-W / 2 - 2, yc - ay - 5, -6.0), (W / 2 + 2, y_front + 5, 2.3 * az)),
        G.box_local((-Wt / 2 - 2, -Dt / 2 - 4, -6.0), (Wt / 2 + 2, Dt / 2 + 4, P["em_h"] + 6.0)),
        G.box_femur(pc - pr - (2, 5, 2), pc + pr * (1, 0, 1) + 2),
    )
    bj = bone_id[sl_j]
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
    cand = outside & (near_id == 1) & (dist <= 3.0)
    ii = np.nonzero(cand)
    cov = _fc_cover(xfj[ii], yfj[ii], zfj[ii], P, D)
    t = np.clip(P["fc_t"] + 0.45 * f_fc(xfj[ii], yfj[ii], zfj[ii]), 1.5, 3.0)
    t = 1.5 + (t - 1.5) * _sstep(0.0, 4.0, cov)
    keep = (cov > 0) & (dist[ii] <= t)
    kk = tuple(i[keep] for i in ii)
    fc[kk] = True
    depth[kk] = dist[kk] / t[keep]
    # tibial cartilage: top surface of the two compartments
    cand = outside & (near_id == 2) & (dist <= 3.0)
    ii = np.nonzero(cand)
    cov = _tc_cover(xj[ii], yj[ii], zj[ii], P, D)
    above = zj[ii] > _tibia_top(xj[ii], yj[ii], P, D) - 0.8
    t = np.clip(P["tc_t"] + 0.4 * f_tc(xj[ii], yj[ii], zj[ii]), 1.5, 3.0)
    t = 1.5 + (t - 1.5) * _sstep(0.0, 4.0, cov)
    keep = (cov > 0) & above & (dist[ii] <= t)
    kk = tuple(i[keep] for i in ii)
    tc[kk] = True
    depth[kk] = dist[kk] / t[keep]
    # patellar cartilage (posterior surface; same tissue, labelled background as in OAI-ZIB)
    cand = outside & (near_id == 3) & (dist <= P["pc_t"])
    cand &= (yfj < pcy - 0.3 * P["p_ry"]) & (np.abs(zfj - pcz) < 0.8 * P["p_rz"])
    pcart = cand
    depth[pcart] = dist[pcart] / P["pc_t"]
    cart = fc | tc | pcart

    tj = tissue[sl_j]
    # joint gap between femur and tibia (approximate distances) -> synovial fluid
    gap_thr = P["fc_t"] + P["tc_t"] + 0.6 + 1.2 * eff
    fsd, tsd = fem_sdf[sl_j], tib_sdf[sl_j]
    gap = outside & (fsd + tsd <= gap_thr) & (fsd > 0) & (tsd > 0) & (np.abs(xj) < Wt / 2)
    tj[gap] = FLUID
    # patchy fluid film on the cartilage surfaces
    near_c = ndi.binary_dilation(cart, structure=np.ones((3, 3, 1), bool)) & ~cart & outside
    ii = np.nonzero(near_c)
    on = f_film(xj[ii], yj[ii], zj[ii]) < (P["film"] * 2.0 - 1.0)
    film = np.zeros_like(near_c)
    film[tuple(i[on] for i in ii)] = True
    tj[film & (tj != TENDON) & (tj != LIGAMENT)] = FLUID
    men = _meniscus(xj, yj, zj, P, D) & outside
    tj[men] = MENISCUS
    tj[pcart] = PAT_CART
    tj[tc] = TIB_CART
    tj[fc] = FEM_CART

    # ---- bone interior: marrow, cortex (thicker towards the shafts), physeal scars ----
    cort_t = 0.8 + 1.8 * _sstep(20.0, 45.0, np.abs(z - f32(0.5 * zc)))
    tissue[bone] = MARROW
    tissue[bone & (bsdf > -cort_t)] = CORTEX
    del cort_t
    fem_in = np.zeros(G.shape, bool)
    sub = bone_id[sl_f] == 1
    phys = np.abs(zf_ - (2.0 * az + 2.0 + 1.5 * np.sin(0.25 * xf_))) < 0.45
    fem_in[sl_f] = sub & phys & (s_f < -2.5)
    phys_t = (np.abs(z - (-17.0 + 1.2 * np.sin(0.3 * x + 1.0))) < 0.45) & (bone_id == 2) & (bsdf < -2.5)
    tissue[fem_in | phys_t] = PHYSIS
    del phys_t, fem_in

    # ---- intensities ----
    lut = np.array([_BASE_INTENSITY[k] for k in range(len(_BASE_INTENSITY))], f32)
    lut = lut * np.asarray(P["tissue_jitter"], f32) * f32(P["gain"])
    img_f = lut[tissue]
    tex_m = ndi.gaussian_filter(rng.standard_normal(SHAPE).astype(f32), (0.8, 3.0, 0.7))
    tex_b = ndi.gaussian_filter(rng.standard_normal(SHAPE).astype(f32), 0.7)
    tex_c = ndi.gaussian_filter(rng.standard_normal(SHAPE).astype(f32), 2.0)
    for tex in (tex_m, tex_b, tex_c):
        tex /= tex.std() + 1e-6
    mod = np.ones(G.shape, f32)
    for code, tex, amp in ((MUSCLE, tex_m, 0.07), (MARROW, tex_b, 0.15), (FAT, tex_c, 0.1)):
        m = tissue == code
        mod[m] = 1.0 + amp * np.repeat(tex, ss, axis=2)[m]
    img_f *= mod
    del mod
    # cartilage: darker deep layer, brighter superficial layer, slight texture
    cm = (0.82 + 0.22 * np.clip(depth, 0, 1)) * (1.0 + 0.07 * np.repeat(tex_c, ss, axis=2)[sl_j])
    sub = img_f[sl_j]
    sub[cart] *= cm[cart]

    # partial volume: mean over the slice profile, then in-plane blur
    img = img_f.reshape(n0, n1, n2, ss).mean(axis=3)
    img = ndi.gaussian_filter(img, (P["blur"], P["blur"], 0.15))
    # smooth multiplicative bias field (low-order polynomial in normalised coordinates)
    g = [np.linspace(-1, 1, n, dtype=f32) for n in SHAPE]
    g0, g1, g2 = g[0][:, None, None], g[1][None, :, None], g[2][None, None, :]
    terms = [g0, g1, g2, g0 * g0, g1 * g1, g2 * g2, g0 * g1, g0 * g2, g1 * g2]
    coef = rng.normal(size=len(terms))
    coef[3:] *= 0.6
    logb = sum(f32(c_) * t_ for c_, t_ in zip(coef, terms))
    logb = logb - logb.mean()
    logb = logb * f32(np.log1p(P["bias"]) / (np.abs(logb).max() + 1e-6))
    img = img * np.exp(logb)
    # Rician noise: magnitude of the complex signal with gaussian noise in both channels
    sigma = f32(P["noise_frac"] * lut[FEM_CART])
    n_re = rng.standard_normal(SHAPE).astype(f32) * sigma
    n_im = rng.standard_normal(SHAPE).astype(f32) * sigma
    img = np.sqrt((img + n_re) ** 2 + n_im**2).astype(f32)

    # labels and masks at the voxel centres (middle sub-sample, un-blurred)
    tis_c = tissue[:, :, mid]
    label = np.zeros(SHAPE, np.uint8)
    label[tis_c == FEM_CART] = 1
    label[tis_c == TIB_CART] = 2
    affine = knee_affine()
    if not return_tissues:
        return img, label, affine
    bid_c = bone_id[:, :, mid]
    masks = {
        "femur": bid_c == 1,
        "tibia": bid_c == 2,
        "patella": bid_c == 3,
        "fibula": bid_c == 4,
        "bone": bid_c > 0,
        "tissue": tis_c.copy(),
        "params": P,
    }
    return img, label, affine, masks


# --------------------------------------------------------------------------------------------
# data set writer
# --------------------------------------------------------------------------------------------


def volume_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of volume ``index`` of a data set with base ``seed`` (independent of the volume count)."""
    return volume_seed_sequence(seed, index, 3)


def _render_indexed(seed: int, index: int) -> tuple:
    """Volume ``index`` of the data set with base ``seed`` and its log summary (for :func:`write_dataset`)."""
    img, lab, aff = render_knee_volume(np.random.default_rng(volume_seed(seed, index)))
    summary = (
        f"FC {int((lab == 1).sum())} vox, TC {int((lab == 2).sum())} vox, "
        f"{int((lab > 0).any(axis=(0, 1)).sum())}/{SHAPE[2]} sagittal slices with cartilage"
    )
    return img, lab, aff, summary


def write_knee_dataset(
    out_dir: str | os.PathLike,
    num_volumes: int = 12,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
    workers: int | None = None,
) -> Path:
    """Render ``num_volumes`` synthetic knee volumes and write them as an MSD-style data set.

    Layout: ``imagesTr/knee_000.nii.gz`` (float32), ``labelsTr/knee_000.nii.gz`` (uint8) and
    ``datalist.json`` (split by volume: 8/2/2 for 12 volumes, see
    :func:`scripts.phantoms.split_counts`; paths relative to the datalist). Volume ``i`` depends only
    on ``(seed, i)``, and the files are byte-identical across runs and worker counts. A non-empty
    ``out_dir`` that was not written by this tool is refused
    (:class:`scripts.phantoms.OutputDirError`); nothing is deleted except stale files that this tool
    itself recorded in an earlier run.

    Args:
        out_dir: output directory (created if missing).
        num_volumes: number of volumes (>= 1).
        seed: base seed (>= 0).
        log: progress callback (one line per volume); ``None`` for silence.
        workers: worker processes (default: up to 4, at most the CPU count and ``num_volumes``;
            1 renders in this process).

    Returns:
        Path of ``datalist.json``.
    """
    return write_dataset(
        out_dir, BUNDLE, _render_indexed, num_volumes, seed, log, workers,
        file_prefix="knee",
        name="synthetic_knee_dess",
        description=(
            "synthetic DESS-like sagittal knee MR volumes rendered by scripts/demo_data.py for the "
            "knee_eas_unet bundle (not real data; stand-in for OAI-ZIB). Labels from the un-blurred "
            "phantom. seed={seed}, {num_volumes} volumes, split {split} by volume."
        ),
        labels=LABELS,
        modality="MR (synthetic DESS-like)",
        spacing=SPACING,
        orientation="PIR (axis 0 A->P, axis 1 S->I, axis 2 L->R; array[:, :, k] is sagittal slice k)",
    )
