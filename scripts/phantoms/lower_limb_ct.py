"""Synthetic bilateral lower-limb CT (axial 512x512 slices) with a whole-bone label.

Stand-in for the lower-limb CT of the AFU-Net paper (which cannot be shipped) for the
``lower_limb_afu_unet`` bundle. Each volume shows both legs side by side, supine, from the distal
thigh through the knee joint to the proximal/mid leg, built from implicit surfaces:

* femur: shaft (thick cortex, fatty marrow cavity, linea aspera), metaphysis flaring into the two
  condyles with an intercondylar notch (open posteriorly, through below the trochlea), trochlea
  with its groove; patella anterior to the trochlea (V-shaped articular surface, slight tilt);
  tibia: plateau (posterior slope, concave compartments, intercondylar eminence, posterior notch),
  tuberosity, triangular shaft; fibula: head posterolateral to the tibia (placed with a
  tibiofibular gap), neck and thin shaft;
* every bone has a cortical shell (about 1.5 mm at the epiphyses to 4-6.5 mm in the shafts, 2-3 mm
  in the fibular shaft), trabecular bone (textured, denser under the cortex) and, in the shafts, a
  fatty marrow cavity;
* muscle with fat septa (radial planes and the gastrocnemius/soleus plane), the muscle-free
  anterior and side regions of the knee, popliteal fat with the popliteal artery and vein, Hoffa
  and suprapatellar fat, quadriceps and patellar tendons, joint soft tissue (cartilage, menisci,
  cruciate ligaments) between the bones, subcutaneous fat (thinner over the patella and the
  anteromedial tibia) with the great saphenous vein, skin; the legs are flattened where they rest
  on the (optional) pad and carbon-fibre table; thighs that touch merge at the skin;
* CT physics: every 5 mm slice is the mean of 5 sub-slices 1 mm apart (partial volume), blurred
  in-plane (reconstruction kernel, sigma 0.45-0.75 px), plus Gaussian noise correlated in-plane
  (sd 10-25 HU); HU are rounded to ``int16`` and clipped to [-1024, 3071]; on about half the
  volumes the corners outside the reconstruction circle are -1024 exactly.

Random per volume: body size, muscularity and fat, knee level (+-25 mm around the middle of 40
slices), leg separation and position, table and pad, HU of every tissue, blur and noise. Random
per leg: bone sizes, left/right knee level (+-5 mm), femoral and tibial external rotation (-8..+15
degrees), valgus, knee flexion (0-12 degrees in total), patellar height and tilt.

Nominal HU (each jittered per volume, see :data:`TISSUE_HU`): air -1000, fat -100, skin 25,
muscle 50, tendon 88, vessel 42, joint soft tissue 55, fatty marrow -10, trabecular bone 250
(150-400 with texture), cortical bone 1600 (thin epiphyseal cortex ~1100).

Geometry (fixed, other code depends on it): array shape ``(512, 512, num_slices)`` (default 40),
spacing ``(0.8, 0.8, 5.0)`` mm; axis 0 runs right->left, axis 1 anterior->posterior, axis 2
inferior->superior, so ``array[:, :, k]`` is axial slice ``k`` (``k = 0`` the most inferior, in the
leg; the last slices are in the thigh), ``array[:, :, k].T`` shown with the first row at the top is
the usual radiological view (anterior up, patient right on the left) and the affine (DICOM LPS
order stored as a RAS+ affine) has ``nibabel.aff2axcodes(affine) == ('L', 'P', 'S')``; the volume
centre is at world (0, 0, 0). Labels: 0 background, 1 bone (cortex, trabecular bone and marrow of
femur, patella, tibia and fibula; ``uint8``, from the un-blurred anatomy: a voxel is bone when at
least 3 of its 5 sub-slices are bone at the voxel's in-plane centre).

Everything is deterministic given the seed. The data are synthetic and are not real patient data.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage as ndi

from . import volume_seed_sequence, write_dataset
from .shapes import as_rng as _as_rng
from .shapes import capsule, ellipsoid
from .shapes import smax as _smax
from .shapes import smin as _smin
from .shapes import sstep as _sstep

__all__ = [
    "BUNDLE",
    "SHAPE_XY",
    "NUM_SLICES",
    "SPACING",
    "LABELS",
    "SUBSLICES",
    "TISSUES",
    "TISSUE_HU",
    "BONE_TISSUES",
    "BONES",
    "HU_AIR",
    "HU_FAT",
    "HU_SKIN",
    "HU_MUSCLE",
    "HU_TENDON",
    "HU_VESSEL",
    "HU_JOINT",
    "HU_MARROW",
    "HU_TRABECULAR",
    "HU_CORTEX",
    "HU_MIN",
    "HU_MAX",
    "lower_limb_affine",
    "sample_lower_limb_params",
    "render_lower_limb_volume",
    "volume_seed",
    "write_lower_limb_dataset",
]

BUNDLE = "lower_limb_afu_unet"
#: In-plane array shape (axis 0 right->left, axis 1 anterior->posterior).
SHAPE_XY = (512, 512)
#: Default number of axial slices (5 mm each: 200 mm from the distal thigh to the proximal leg).
NUM_SLICES = 40
#: Voxel spacing in mm along the three array axes.
SPACING = (0.8, 0.8, 5.0)
#: Label values written to the label volumes.
LABELS = {0: "background", 1: "bone"}
#: Sub-slices per slice (1 mm apart) averaged for partial volume; the label is their majority.
SUBSLICES = 5

# Tissue codes of the internal (un-blurred) tissue map.
AIR, PAD, TABLE_CORE, TABLE_SHELL, SKIN, FAT, MUSCLE, TENDON, VESSEL, JOINT = range(10)
MARROW, TRABECULAR, CORTEX = range(10, 13)
#: Tissue names by code (for ``render_lower_limb_volume(..., return_tissues=True)``).
TISSUES = {
    AIR: "air",
    PAD: "table_pad",
    TABLE_CORE: "table_core",
    TABLE_SHELL: "table_shell",
    SKIN: "skin",
    FAT: "fat",
    MUSCLE: "muscle",
    TENDON: "tendon",
    VESSEL: "vessel",
    JOINT: "joint_soft_tissue",
    MARROW: "marrow",
    TRABECULAR: "trabecular_bone",
    CORTEX: "cortical_bone",
}
#: Tissue codes that make up the bone label.
BONE_TISSUES = (MARROW, TRABECULAR, CORTEX)
#: Bone ids of the ``bone_id`` map returned with the tissues.
BONES = {1: "femur", 2: "tibia", 3: "patella", 4: "fibula"}

HU_AIR = -1000.0
HU_FAT = -100.0
HU_SKIN = 25.0
HU_MUSCLE = 50.0
HU_TENDON = 88.0
HU_VESSEL = 42.0
HU_JOINT = 55.0
HU_MARROW = -10.0
HU_TRABECULAR = 250.0
HU_CORTEX = 1600.0
#: Range of the stored HU (int16).
HU_MIN, HU_MAX = -1024, 3071
#: Nominal HU by tissue code and the half-width of its uniform per-volume jitter.
TISSUE_HU = {
    AIR: (HU_AIR, 0.0),
    PAD: (-840.0, 50.0),
    TABLE_CORE: (-930.0, 40.0),
    TABLE_SHELL: (260.0, 90.0),
    SKIN: (HU_SKIN, 15.0),
    FAT: (HU_FAT, 15.0),
    MUSCLE: (HU_MUSCLE, 8.0),
    TENDON: (HU_TENDON, 12.0),
    VESSEL: (HU_VESSEL, 8.0),
    JOINT: (HU_JOINT, 12.0),
    MARROW: (HU_MARROW, 30.0),
    TRABECULAR: (HU_TRABECULAR, 45.0),
    CORTEX: (HU_CORTEX, 200.0),
}

_F32 = np.float32
_SUB_DZ = SPACING[2] / SUBSLICES
_SUB_OFFSETS = (np.arange(SUBSLICES) - (SUBSLICES - 1) / 2.0) * _SUB_DZ
_MID = SUBSLICES // 2
_BIG = _F32(1e3)


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def lower_limb_affine(num_slices: int = NUM_SLICES) -> np.ndarray:
    """The voxel-to-world (RAS+, mm) affine of every lower-limb volume with ``num_slices`` slices.

    Columns: axis 0 -> left ``(-0.8, 0, 0)``, axis 1 -> posterior ``(0, -0.8, 0)``, axis 2 ->
    superior ``(0, 0, 5)``; the origin puts the volume centre at world (0, 0, 0).
    ``aff2axcodes`` gives ``('L', 'P', 'S')``.
    """
    aff = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    centre = (np.array([SHAPE_XY[0], SHAPE_XY[1], int(num_slices)], dtype=float) - 1.0) / 2.0
    aff[:3, 3] = -aff[:3, :3] @ centre
    return aff


# The bone fields keep NumPy's float64 promotion of float64 centres/end points (the HU images depend
# on it bit for bit), see :func:`scripts.phantoms.shapes.ellipsoid`.
_ellipsoid = partial(ellipsoid, promote=True)
_capsule = partial(capsule, promote=True)


def _as_distance(f: np.ndarray):
    """Distance estimate of an implicit field on a (sub-slice, i, j) grid, and the sample footprint.

    Returns ``(d, w)``: ``d = f / |grad f|`` (mm, negative inside) and ``w``, the extent (mm) along
    the surface normal of one sample (1 mm across the slice, one pixel in-plane), used to turn
    ``d`` into the fraction of the sample inside the surface (:func:`_coverage`) so that oblique
    surfaces give smooth partial volume instead of one step per sub-slice.
    """
    g = np.gradient(f, _SUB_DZ, SPACING[0], SPACING[1])
    gm = np.clip(np.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]), 0.25, None)
    w = (np.abs(g[0]) * _F32(_SUB_DZ) + (np.abs(g[1]) + np.abs(g[2])) * _F32(SPACING[0])) / gm
    return (f / gm).astype(_F32), np.clip(w, 0.3, None).astype(_F32)


def _coverage(d, w):
    """Fraction of a sample of footprint ``w`` inside the surface at signed distance ``d``."""
    return np.clip(0.5 - d / w, 0.0, 1.0)


def _unit_noise(white: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, scaled to unit standard deviation."""
    n = ndi.gaussian_filter(white, sigma, truncate=3.0)
    return n / _F32(n.std() + 1e-6)


def _pixel_mm():
    """Scanner coordinates (mm) of the pixel centres: X (patient left +) per i, Y (posterior +) per j."""
    X = ((np.arange(SHAPE_XY[0]) - (SHAPE_XY[0] - 1) / 2.0) * SPACING[0]).astype(_F32)
    Y = ((np.arange(SHAPE_XY[1]) - (SHAPE_XY[1] - 1) / 2.0) * SPACING[1]).astype(_F32)
    return X, Y


_X_MM, _Y_MM = _pixel_mm()


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------

# soft-tissue outline keyframes (z relative to the joint line, mm) of the muscle compartment
_ZK = np.array([-260.0, -120.0, -70.0, -30.0, 0.0, 25.0, 60.0, 110.0, 260.0])
_RX = np.array([44.0, 52.0, 55.0, 52.0, 49.0, 50.0, 57.0, 63.0, 70.0])
_RY = np.array([46.0, 54.0, 57.0, 54.0, 50.0, 50.0, 56.0, 60.0, 66.0])
_OX = np.array([2.0, 3.0, 3.0, 2.0, 0.0, -2.0, -4.0, -6.0, -9.0])
_OY = np.array([-22.0, -26.0, -26.0, -18.0, -14.0, -12.0, -8.0, -9.0, -11.0])
# soft tissue kept around the bones (mm): thin along the shafts, capsule and ligaments at the knee
_HULL_Z, _HULL_M = [-45.0, -20.0, 45.0, 70.0], [2.5, 7.0, 7.0, 2.5]
_CAP_Z, _CAP_T = [-30.0, -15.0, 45.0, 60.0], [0.0, 2.5, 2.5, 0.0]
# anterior limit (leg frame y, mm) of muscle around the knee (tendons, fat and capsule instead)
_YLIM_Z = np.array([-45.0, -32.0, -18.0, 22.0, 38.0, 55.0, 75.0])
_YLIM_Y = np.array([200.0, 8.0, -6.0, -6.0, 12.0, 22.0, 200.0])


def _sample_leg(rng: np.random.Generator, side: int, G: dict) -> dict:
    """Anatomy and pose of one leg (``side`` -1 right, +1 left); lengths in mm."""
    u = rng.uniform
    s = G["size"] * u(0.97, 1.03)
    L: dict = {"side": side, "ls": float(side), "s": s}
    # --- femur (femur frame: x lateral, y anterior, z superior from the distal condyle surface) ---
    F: dict = {}
    W = 78.0 * s * u(0.96, 1.04)
    F["W"] = W
    F["wn"] = W * u(0.22, 0.27)
    cond_w = (W - F["wn"]) / 2.0
    F["xm"], F["xl"] = -(F["wn"] / 2 + cond_w / 2), F["wn"] / 2 + cond_w / 2
    F["cw"] = cond_w / 2 * 1.08
    F["ay"], F["az"] = u(25.0, 29.0) * s, u(20.0, 23.5) * s
    F["ay_l"], F["az_l"] = F["ay"] * u(0.95, 1.02), F["az"] * u(0.92, 1.0)
    F["yc"] = u(-10.0, -6.0) * s
    F["tro_c"] = (u(-1.0, 2.0), F["yc"] + 0.55 * F["ay"], 1.45 * F["az"])
    F["tro_r"] = (W / 2 * 0.84, 0.7 * F["ay"], 0.85 * F["az"])
    F["tro_front"] = F["tro_c"][1] + F["tro_r"][1]
    F["groove"] = u(3.5, 6.0)
    F["shx"], F["shy"] = u(13.0, 15.0) * s, u(12.5, 14.5) * s
    F["sx"], F["sy"] = u(-2.0, 2.0), u(0.0, 4.0)
    F["z0"] = 1.1 * F["az"]
    F["flare"] = u(50.0, 65.0) * s
    F["la"] = u(2.0, 4.0)
    # notch roof: through the whole depth below the trochlea, posterior only higher up
    F["xn"] = u(-1.0, 1.0)
    zlo, zhi = F["tro_c"][2] - F["tro_r"][2], u(1.65, 1.85) * F["az"]
    ylo, yhi = F["tro_front"] - F["groove"] + 2.0, F["yc"] - F["ay"] - 2.0
    F["roof"] = (zlo, ylo, (yhi - ylo) / (zhi - zlo))
    F["t_epi"], F["t_shaft"] = u(1.3, 1.8), u(4.5, 6.5)
    F["cav0"] = u(45.0, 60.0) * s
    F["gap"] = u(2.0, 3.0)  # distal condyle surface above the joint line
    L["F"] = F
    # --- patella (femur frame) ---
    flex = G["flex"] * u(0.8, 1.2)
    L["flex_f"] = flex * u(0.4, 0.6)
    L["flex_t"] = flex - L["flex_f"]
    Pt: dict = {}
    Pt["r"] = (u(20.0, 24.0) * s, u(10.0, 12.0) * s, u(19.0, 23.0) * s)
    Pt["c"] = (
        u(0.0, 5.0),
        F["tro_front"] + u(4.5, 6.5) + Pt["r"][1],
        F["tro_c"][2] + u(4.0, 16.0) - 0.6 * flex,
    )
    Pt["tilt"] = np.deg2rad(u(-5.0, 12.0))
    Pt["t"] = u(1.4, 2.2)
    L["P"] = Pt
    # --- tibia (tibia frame: x lateral, y anterior, z superior from the plateau) ---
    T: dict = {}
    T["Wt"] = W * u(1.0, 1.06)
    T["Dt"] = u(44.0, 50.0) * s
    T["slope"] = float(np.tan(np.deg2rad(u(4.0, 10.0))))
    T["conc_m"], T["conc_l"] = u(1.5, 3.0), u(0.5, 1.5)
    T["em_h"], T["em_w"] = u(6.0, 9.0), u(3.5, 5.0)
    ew = T["em_w"]
    half = (T["Wt"] / 2 - ew) / 2
    T["half"], T["xm"], T["xl"] = half, -(ew + half), ew + half
    T["shx"], T["shy"] = u(13.0, 15.0) * s, u(12.0, 14.0) * s
    T["scx"], T["scy"] = u(-4.0, 0.0), u(2.0, 6.0)
    T["taper"] = u(45.0, 60.0) * s
    T["tri"] = u(0.3, 0.45)
    T["tub_z"] = -u(24.0, 32.0) * s
    T["tub_x"] = u(1.0, 5.0)
    T["tub_r"] = (u(9.0, 12.0), 6.0, 12.0)
    T["pn"] = (u(10.0, 14.0), u(3.5, 5.5))
    T["t_epi"], T["t_shaft"] = u(1.2, 1.7), u(4.0, 6.0)
    T["cav0"] = u(50.0, 65.0) * s
    T["gap"] = u(2.0, 3.0)  # plateau below the joint line
    L["T"] = T
    # --- fibula (tibia frame) ---
    B: dict = {}
    hz = -u(14.0, 20.0) * s
    B["head_c"] = [T["Wt"] / 2 * u(0.5, 0.62), -T["Dt"] / 2 * u(0.7, 0.9), hz]
    B["head_r"] = (u(10.0, 12.0) * s, u(9.5, 11.0) * s, u(9.0, 11.0) * s)
    B["shaft_r"] = u(6.0, 7.5) * s
    B["shaft_d"] = (-u(0.0, 5.0), u(2.0, 8.0))  # shaft end offset at 250 mm below the head
    B["t_epi"], B["t_shaft"] = u(1.2, 1.6), u(2.2, 3.2)
    L["B"] = B
    _place_fibula(L)
    # --- pose ---
    L["dz"] = u(-5.0, 5.0)  # knee level relative to the volume's knee level
    L["phi_f"] = np.deg2rad(u(-8.0, 15.0))
    L["phi_t"] = L["phi_f"] + np.deg2rad(u(-2.0, 6.0))
    L["valg_f"] = float(np.tan(np.deg2rad(u(3.0, 8.0))))
    L["valg_t"] = float(np.tan(np.deg2rad(u(-3.0, 3.0))))
    L["tf"], L["tt"] = float(np.tan(np.deg2rad(L["flex_f"]))), float(np.tan(np.deg2rad(L["flex_t"])))
    L["tilt"] = G["tilt"]
    # --- soft tissue ---
    m = G["musc"] * u(0.97, 1.03)
    L["rx"] = _RX * s * m * u(0.96, 1.04, size=_ZK.size)
    L["ry"] = _RY * s * m * u(0.96, 1.04, size=_ZK.size)
    L["ox"], L["oy"] = _OX * s, _OY * s
    L["four_a"] = rng.normal(0.0, 0.025, size=4) * np.array([1.0, 1.0, 0.8, 0.5])
    L["four_b"] = rng.normal(0.0, 0.015, size=4)
    L["four_ph"] = u(0, 2 * np.pi, size=4)
    L["four_w"] = u(-0.01, 0.01, size=4)
    L["fat"] = G["fat"] * u(0.9, 1.1)
    L["fat_dir"] = np.deg2rad(u(150.0, 250.0))  # thickest fat: medial / posteromedial
    L["fat_amp"] = u(0.15, 0.35)
    L["skin"] = u(1.2, 2.0)
    L["ylim_jit"] = u(-4.0, 4.0)
    L["ylim_c"] = u(0.006, 0.014)
    L["ylim_w"] = (u(1.5, 5.0), u(10.0, 20.0), u(0, 2 * np.pi))
    nsep = int(rng.integers(5, 8))
    L["septa"] = [
        (
            u(0, 2 * np.pi),  # angle in the leg frame
            u(-0.004, 0.004),  # drift (rad per mm along z)
            u(-0.6, 0.6),  # curvature (mm per 100 mm^2)
            u(0.9, 2.0),  # width
            u(22.0, 30.0) * s,  # starts this far from the bone centre
            u(0.5, 2.5),  # wobble amplitude
            u(12.0, 30.0),  # wobble wavelength
            u(0, 2 * np.pi),  # wobble phase
        )
        for _ in range(nsep)
    ]
    L["gs_sep"] = (u(28.0, 36.0) * s, u(1.0, 2.0))  # gastrocnemius/soleus plane radius, width
    L["pop"] = (u(-4.0, 4.0), u(14.0, 19.0) * s, u(10.0, 14.0) * s)  # popliteal fat x, rx, ry
    L["gsv"] = (np.deg2rad(u(190.0, 225.0)), u(1.8, 2.8))  # saphenous vein angle, radius
    return L


def _place_fibula(L: dict) -> None:
    """Move the fibular head away from the tibia until their gap is at least 2.5 mm."""
    T, B = L["T"], L["B"]
    hc = B["head_c"]
    direction = np.array([hc[0], hc[1]])
    direction /= np.linalg.norm(direction)
    for _ in range(6):
        hc = B["head_c"]
        xs = np.arange(hc[0] - 16.0, hc[0] + 16.0, 1.0)
        ys = np.arange(hc[1] - 16.0, hc[1] + 16.0, 1.0)
        zs = np.arange(hc[2] - 16.0, hc[2] + 26.0, 1.0)
        Z, X, Y = np.meshgrid(zs, xs, ys, indexing="ij")
        tib = _tibia_field(X, Y, Z, T)
        g = np.gradient(tib, 1.0)
        d_t = tib / np.clip(np.sqrt(sum(gi * gi for gi in g)), 0.25, None)
        fib = _fibula_field(X, Y, Z, B) <= 0
        if not fib.any():
            break
        need = 2.5 - float(d_t[fib].min())
        if need <= 0:
            break
        B["head_c"] = [hc[0] + direction[0] * (need + 0.3), hc[1] + direction[1] * (need + 0.3), hc[2]]


def sample_lower_limb_params(rng: np.random.Generator, num_slices: int = NUM_SLICES) -> dict:
    """Draw the random anatomy, pose and acquisition parameters of one bilateral lower-limb CT.

    Lengths are in mm. Scanner frame: X towards the patient's left, Y posterior, z superior (the
    world z of slice ``k`` is ``(k - (num_slices - 1) / 2) * 5``). Each leg has its own frames
    (x lateral, y anterior) for the femur, the tibia and the soft tissue.

    Args:
        rng: numpy random generator (consumed).
        num_slices: number of slices of the volume (sets the range of the knee level).

    Returns:
        A dict with the volume-level values and ``legs`` (right leg first).
    """
    u = rng.uniform
    n = int(num_slices)
    P: dict = {"num_slices": n}
    P["z_joint"] = u(-1.0, 1.0) * min(25.0, 0.15 * n * SPACING[2])
    G = {
        "size": u(0.9, 1.1),
        "musc": u(0.92, 1.1),
        "fat": 3.0 + 19.0 * u() ** 1.4,
        "flex": u(0.0, 10.0),
        "tilt": float(np.tan(np.deg2rad(u(-3.0, 3.0)))),
    }
    P["global"] = G
    P["hu"] = {k: TISSUE_HU[k][0] + u(-TISSUE_HU[k][1], TISSUE_HU[k][1]) for k in sorted(TISSUE_HU)}
    P["noise_sd"] = u(10.0, 25.0)
    P["noise_corr"] = u(0.6, 1.1)
    P["blur"] = u(0.45, 0.75)
    P["fov_mask"] = bool(u() < 0.5)
    # table (scanner frame): top surface curved upwards at the sides, optional foam pad
    P["table"] = bool(u() < 0.85)
    P["table_R"] = u(500.0, 1500.0)
    P["table_shell"] = u(1.8, 3.0)
    P["table_core"] = u(25.0, 45.0)
    P["table_hw"] = u(215.0, 260.0)
    P["pad"] = u(8.0, 25.0) if u() < 0.6 else 0.0
    legs = [_sample_leg(rng, side, G) for side in (-1, 1)]
    # in-plane position: knees side by side, kept inside the field of view
    gap = u(-5.0, 55.0)
    z_world = (np.arange(n) - (n - 1) / 2.0) * SPACING[2]
    zr_all = np.concatenate([z_world - P["z_joint"] - 10.0, z_world - P["z_joint"] + 10.0])
    half_w = []
    for L in legs:
        r = np.interp(zr_all, _ZK, L["rx"] + np.abs(L["ox"])).max()
        half_w.append(r * 1.08 + L["fat"] * (1.0 + L["fat_amp"]) * 1.2 + 2.0)
    knee_w = [np.interp(0.0, _ZK, L["rx"]) + L["fat"] for L in legs]
    sep = knee_w[0] + knee_w[1] + gap
    shift = u(-15.0, 15.0)
    span = 0.5 * n * SPACING[2] + 30.0
    lat_max = max(max(L["valg_f"], abs(L["valg_t"])) for L in legs) * span
    room = SHAPE_XY[0] * SPACING[0] / 2.0 - 4.0 - max(half_w) - lat_max
    if sep / 2 + abs(shift) > room:
        shift = np.sign(shift) * max(0.0, room - sep / 2)
        sep = min(sep, 2.0 * room)
    y0 = u(-25.0, 10.0)
    for L, side in zip(legs, (-1, 1)):
        L["X0"] = shift + side * sep / 2.0
        L["Y0"] = y0 + u(-4.0, 4.0)
    P["legs"] = legs
    # table height: the legs are flattened on it where they are thickest
    ext = []
    dX = np.arange(-60.0, 61.0, 3.0)[:, None]
    dY = np.arange(0.0, 170.0, 1.0)[None, :]
    for L in legs:
        zr = z_world - (P["z_joint"] + L["dz"])
        _, cy = _axis_offset(L, zr)
        for zz, yy in zip(zr.tolist(), cy.tolist()):
            phi = _soft_phi(L, zz)
            lat, ant = L["ls"] * dX, -dY
            x = lat * np.cos(phi) - ant * np.sin(phi)
            y = lat * np.sin(phi) + ant * np.cos(phi)
            _, skin, _ = _outline(L, zz, x, y, np.float64(1e3))
            inside = (skin <= 0).any(axis=0)
            ext.append(L["Y0"] + yy + (dY[0, inside].max() if inside.any() else 0.0))
    ext = np.asarray(ext)
    y_top = min(float(np.percentile(ext, u(55.0, 80.0))), float(ext.max()) - 1.0)
    y_top = max(y_top, float(ext.max()) - 14.0)
    if not P["table"]:
        y_top = 1e4
    P["pad_top"] = y_top  # Y of the pad (or table) top at X = 0
    return P


def _axis_offset(L: dict, zr):
    """Scanner-frame offset (dX, dY) of the leg axis at ``zr`` mm above the joint line."""
    zr = np.asarray(zr, float)
    up = np.maximum(zr, 0.0)
    dn = np.maximum(-zr, 0.0)
    lat = L["valg_f"] * up + L["valg_t"] * dn
    ant = -(L["tf"] * up + L["tt"] * dn) + L["tilt"] * zr
    return L["ls"] * lat, -ant


# --------------------------------------------------------------------------------------------
# implicit bones (negative inside; turned into distances with _as_distance)
# --------------------------------------------------------------------------------------------


def _femur_field(x, y, z, F: dict):
    """Femur in the femur frame; returns ``(femur, envelope)`` (the envelope has no notch)."""
    yc = F["yc"]
    out = None
    for xc, ay, az in ((F["xm"], F["ay"], F["az"]), (F["xl"], F["ay_l"], F["az_l"])):
        adx = np.abs(x - _F32(xc)) * _F32(1.0 / F["cw"])
        r2 = ((y - _F32(yc)) * _F32(1.0 / ay)) ** 2 + ((z - _F32(az)) * _F32(1.0 / az)) ** 2
        q = np.cbrt(adx * adx * adx + r2 * np.sqrt(r2))
        f = (q - 1.0) * _F32(az)
        out = f if out is None else np.minimum(out, f)
    c, r, W = F["tro_c"], F["tro_r"], F["W"]
    tro = _ellipsoid(x, y, z, c, r)
    tro = tro + _F32(F["groove"]) * np.exp(-(((x - _F32(c[0])) * _F32(1.0 / (0.16 * W))) ** 2)) * _sstep(
        yc, yc + 0.6 * F["ay"], y
    )
    out = _smin(out, tro, 3.0)
    # metaphysis flaring into the shaft (superellipse, boxy -> round)
    uu = _sstep(0.0, 1.0, (z - F["z0"]) / F["flare"])
    hx0, hy0, cy0 = W / 2 * 0.96, 0.8 * F["ay"], yc + 0.15 * F["ay"]
    hx = hx0 + (F["shx"] - hx0) * uu
    hy = hy0 + (F["shy"] - hy0) * uu
    cx = F["sx"] * uu
    cy = cy0 + (F["sy"] - cy0) * uu
    p = 3.2 - 1.2 * uu
    bx = np.abs(x - cx) / hx
    by = np.abs(y - cy) / hy
    qb = (bx**p + by**p) ** (1.0 / p)
    blk = (qb - 1.0) * np.minimum(hx, hy)
    blk = blk - F["la"] * uu * np.exp(-(((x - cx) / 5.0) ** 2)) * _sstep(0.0, 0.6 * hy, cy - y)
    blk = _smax(blk, F["z0"] - z, 2.0)
    env = _smin(out, blk, 5.0)
    # intercondylar notch
    zlo, ylo, k = F["roof"]
    wn = F["wn"] * (1.0 - 0.35 * _sstep(zlo, zlo + 25.0, z))
    slab = np.abs(x - _F32(F["xn"])) - wn / 2.0
    roof = y - (ylo + k * (z - zlo))
    notch = _smax(slab, roof, 1.0)
    fem = _smax(env, -notch, 1.0)
    return fem.astype(_F32), env.astype(_F32)


def _tibia_top(x, y, T: dict):
    z = _F32(T["slope"]) * y
    hy = T["Dt"] / 2 * 0.85
    for xc, dep in ((T["xm"], T["conc_m"]), (T["xl"], T["conc_l"])):
        r2 = ((x - _F32(xc)) * _F32(1.0 / T["half"])) ** 2 + (y * _F32(1.0 / hy)) ** 2
        z = z - _F32(dep) * np.clip(1.0 - r2, 0.0, 1.0)
    z = z + _F32(T["em_h"]) * np.exp(-((x * _F32(1.0 / T["em_w"])) ** 2) - ((y - 2.0) * _F32(1.0 / 7.0)) ** 2)
    return z


def _tibia_frame(z, T: dict):
    uu = _sstep(5.0, T["taper"], -z)
    hx = T["Wt"] / 2 + (T["shx"] - T["Wt"] / 2) * uu
    hy = T["Dt"] / 2 + (T["shy"] - T["Dt"] / 2) * uu
    return hx, hy, T["scx"] * uu, T["scy"] * uu, uu


def _tibia_field(x, y, z, T: dict):
    """Tibia in the tibia frame."""
    hx, hy, cx, cy, uu = _tibia_frame(z, T)
    yy = (y - cy) / hy
    hxe = hx * (1.0 - T["tri"] * uu * np.clip(yy, 0.0, 1.0))  # triangular shaft, anterior crest
    q = (np.abs((x - cx) / hxe) ** 2.3 + np.abs(yy) ** 2.3) ** (1 / 2.3)
    foot = (q - 1.0) * np.minimum(hx, hy)
    out = _smax(foot, z - _tibia_top(x, y, T), 1.5)
    # posterior intercondylar notch of the proximal tibia
    fade = 1.0 - _sstep(15.0, 35.0, -z)
    pnx, pny = T["pn"][0] * fade + 1e-3, T["pn"][1] * fade + 1e-3
    pn = (np.sqrt(((x - cx) / pnx) ** 2 + ((y - (cy - hy)) / pny) ** 2) - 1.0) * np.minimum(pnx, pny)
    out = _smax(out, -pn, 1.0)
    _, hy25, _, cy25, _ = _tibia_frame(T["tub_z"], T)
    tub = _ellipsoid(x, y, z, (T["tub_x"], cy25 + hy25 - 3.0, T["tub_z"]), T["tub_r"])
    return _smin(out, tub, 3.0).astype(_F32)


def _fibula_field(x, y, z, B: dict):
    hc = B["head_c"]
    head = _ellipsoid(x, y, z, hc, B["head_r"])
    end = (hc[0] + B["shaft_d"][0], hc[1] + B["shaft_d"][1], hc[2] - 250.0)
    shaft = _capsule(x, y, z, hc, end, B["shaft_r"])
    return _smin(head, shaft, 4.0).astype(_F32)


def _patella_field(x, y, z, Pt: dict):
    c, r, tl = Pt["c"], Pt["r"], Pt["tilt"]
    dx, dy = x - _F32(c[0]), y - _F32(c[1])
    ct, st = _F32(np.cos(tl)), _F32(np.sin(tl))
    px, py = ct * dx + st * dy, -st * dx + ct * dy
    # V-shaped articular (posterior) surface with the ridge in the middle, flatter front
    ryp = r[1] * (1.0 - 0.45 * np.clip(np.abs(px) / r[0], 0.0, 1.0))
    ry = np.where(py < 0, ryp, _F32(r[1] * 0.8))
    q = np.sqrt((px / _F32(r[0])) ** 2 + (py / ry) ** 2 + ((z - _F32(c[2])) / _F32(r[2])) ** 2)
    return ((q - 1.0) * _F32(r[1])).astype(_F32)


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


class _LegSlice:
    """Geometry of one leg for one slice: sub-slice axis centres, frames and index boxes."""

    def __init__(self, L: dict, zr: np.ndarray):
        self.L = L
        self.zr = zr  # (SUBSLICES,) mm above the joint line
        dX, dY = _axis_offset(L, zr)
        self.cX = (L["X0"] + dX).astype(_F32)
        self.cY = (L["Y0"] + dY).astype(_F32)

    def box(self, xr, yr, phi, subs=None, margin: float = 8.0):
        """Index box (slice_i, slice_j) covering the frame rectangle ``xr`` x ``yr`` (mm)."""
        subs = range(SUBSLICES) if subs is None else subs
        c, s = np.cos(phi), np.sin(phi)
        pts = np.array([(a, b) for a in xr for b in yr], float)
        lat = pts[:, 0] * c + pts[:, 1] * s
        ant = -pts[:, 0] * s + pts[:, 1] * c
        X = np.concatenate([self.cX[k] + self.L["ls"] * lat for k in subs])
        Y = np.concatenate([self.cY[k] - ant for k in subs])
        i0 = (X.min() - margin) / SPACING[0] + (SHAPE_XY[0] - 1) / 2.0
        i1 = (X.max() + margin) / SPACING[0] + (SHAPE_XY[0] - 1) / 2.0
        j0 = (Y.min() - margin) / SPACING[1] + (SHAPE_XY[1] - 1) / 2.0
        j1 = (Y.max() + margin) / SPACING[1] + (SHAPE_XY[1] - 1) / 2.0
        a, b = int(np.clip(np.floor(i0), 0, SHAPE_XY[0])), int(np.clip(np.ceil(i1) + 1, 0, SHAPE_XY[0]))
        cc, d = int(np.clip(np.floor(j0), 0, SHAPE_XY[1])), int(np.clip(np.ceil(j1) + 1, 0, SHAPE_XY[1]))
        if b - a < 3 or d - cc < 3:
            return None
        return slice(a, b), slice(cc, d)

    def coords(self, box, phi, subs=None):
        """Frame coordinates ``(x, y)`` (float32, shape (n_sub, ni, nj)) of the pixels of ``box``."""
        subs = np.arange(SUBSLICES) if subs is None else np.asarray(subs)
        X = _X_MM[box[0]][None, :, None]
        Y = _Y_MM[box[1]][None, None, :]
        lat = (X - self.cX[subs][:, None, None]) * _F32(self.L["ls"])
        ant = self.cY[subs][:, None, None] - Y
        c, s = _F32(np.cos(phi)), _F32(np.sin(phi))
        return lat * c - ant * s, lat * s + ant * c


def _sub_box(outer, inner):
    """``inner`` (absolute index box) relative to ``outer``."""
    return (
        slice(inner[0].start - outer[0].start, inner[0].stop - outer[0].start),
        slice(inner[1].start - outer[1].start, inner[1].stop - outer[1].start),
    )


def _paste(shape, outer, inner, arr, fill):
    """``arr`` (covering the absolute box ``inner``) on an array of ``shape`` covering ``outer``."""
    out = np.full(shape, fill, dtype=np.asarray(arr).dtype)
    a0, a1 = max(inner[0].start, outer[0].start), min(inner[0].stop, outer[0].stop)
    b0, b1 = max(inner[1].start, outer[1].start), min(inner[1].stop, outer[1].stop)
    if a1 > a0 and b1 > b0:
        out[a0 - outer[0].start : a1 - outer[0].start, b0 - outer[1].start : b1 - outer[1].start] = arr[
            a0 - inner[0].start : a1 - inner[0].start, b0 - inner[1].start : b1 - inner[1].start
        ]
    return out


def _union(boxes):
    return (
        slice(min(b[0].start for b in boxes), max(b[0].stop for b in boxes)),
        slice(min(b[1].start for b in boxes), max(b[1].stop for b in boxes)),
    )


def _rim(r0: float, s):
    """Trabecular rim inside the cortex: ``r0`` where the marrow cavity is open (``s = 1``), huge
    (no cavity) in the metaphyses and epiphyses (``s = 0``)."""
    return r0 + 25.0 * (1.0 - s) / (s + 0.02)


def _render_bones(S: _LegSlice, hu: dict, tex_fine, tex_coarse):
    """Bones of one leg on the sub-slices of one slice (None when no bone is near)."""
    L, zr = S.L, S.zr
    F, T, Pt, B = L["F"], L["T"], L["P"], L["B"]
    zf = (zr - F["gap"]).astype(_F32)  # femur frame z
    zt = (zr + T["gap"]).astype(_F32)  # tibia frame z
    jobs = []  # (bone id, box, phi, z array)
    if zf.max() > -1.0:
        if zf.min() > 2.4 * F["az"] + 3.0:  # above the trochlea: the (tapering) block only
            uu = _sstep(0.0, 1.0, (zf.min() - F["z0"]) / F["flare"])
            hx0, hy0, cy0 = F["W"] / 2 * 0.96, 0.8 * F["ay"], F["yc"] + 0.15 * F["ay"]
            hx, hy = hx0 + (F["shx"] - hx0) * uu, hy0 + (F["shy"] - hy0) * uu
            cx, cy = F["sx"] * uu, cy0 + (F["sy"] - cy0) * uu
            xr = (cx - hx - 2.0, cx + hx + 2.0)
            yr = (cy - hy - F["la"] - 2.0, cy + hy + 2.0)
        else:
            xr = (-F["W"] / 2 - 4.0, F["W"] / 2 + 4.0)
            yr = (F["yc"] - F["ay"] - 4.0, F["tro_front"] + 4.0)
        box = S.box(xr, yr, L["phi_f"])
        if box is not None:
            jobs.append((1, box, L["phi_f"], zf))
    pc, pr = Pt["c"], Pt["r"]
    if np.abs(zf - pc[2]).min() < pr[2] + 2.0:
        box = S.box((pc[0] - pr[0] - 3, pc[0] + pr[0] + 3), (pc[1] - pr[1] - 3, pc[1] + pr[1] + 3), L["phi_f"])
        if box is not None:
            jobs.append((3, box, L["phi_f"], zf))
    if zt.min() < T["em_h"] + 1.0:
        if zt.max() < -(T["taper"] + 5.0) and zt.max() < T["tub_z"] - T["tub_r"][2] - 3.0:
            hx, hy, cx, cy, _ = _tibia_frame(zt.min(), T)
            xr, yr = (cx - hx - 3.0, cx + hx + 3.0), (cy - hy - 3.0, cy + hy + 3.0)
        else:
            xr = (-T["Wt"] / 2 - 4.0, T["Wt"] / 2 + 4.0)
            yr = (-T["Dt"] / 2 - 4.0, T["Dt"] / 2 + 14.0)
        box = S.box(xr, yr, L["phi_t"])
        if box is not None:
            jobs.append((2, box, L["phi_t"], zt))
    hc, hr = B["head_c"], B["head_r"]
    if zt.min() < hc[2] + hr[2] + 1.0:
        fr = (hc[2] - zt) / 250.0
        xs = hc[0] + B["shaft_d"][0] * np.clip(fr, 0, 1)
        ys = hc[1] + B["shaft_d"][1] * np.clip(fr, 0, 1)
        rad = max(hr[0], hr[1]) + 3.0 if zt.max() > hc[2] - 25.0 else B["shaft_r"] + 3.0
        box = S.box((xs.min() - rad, xs.max() + rad), (ys.min() - rad, ys.max() + rad), L["phi_t"])
        if box is not None:
            jobs.append((4, box, L["phi_t"], zt))
    if not jobs:
        return None
    ubox = _union([j[1] for j in jobs])
    shp = (SUBSLICES, ubox[0].stop - ubox[0].start, ubox[1].stop - ubox[1].start)
    tis = np.zeros(shp, np.uint8)
    bid = np.zeros(shp, np.uint8)
    cov = np.zeros(shp, _F32)  # fraction of each sample covered by bone
    mat = np.zeros(shp, _F32)  # HU of the bone material times its coverage
    dist_c = {}
    env_c = None
    tf = tex_fine[ubox][None]
    tc = tex_coarse[ubox][None]
    for bone, box, phi, zz in jobs:
        x, y = S.coords(box, phi)
        z3 = zz[:, None, None]
        if bone == 1:
            f, env = _femur_field(x, y, z3, F)
            env_c = (box, env[_MID])
            t = F["t_epi"] + (F["t_shaft"] - F["t_epi"]) * _sstep(35.0, 85.0, z3)
            rim = _rim(0.8, _sstep(F["cav0"], F["cav0"] + 35.0, z3))
        elif bone == 2:
            f = _tibia_field(x, y, z3, T)
            t = T["t_epi"] + (T["t_shaft"] - T["t_epi"]) * _sstep(25.0, 75.0, -z3)
            rim = _rim(0.8, _sstep(T["cav0"], T["cav0"] + 30.0, -z3))
        elif bone == 3:
            f = _patella_field(x, y, z3, Pt)
            t = np.full_like(z3, Pt["t"])
            rim = np.full_like(z3, 1e3)
        else:
            f = _fibula_field(x, y, z3, B)
            dd = B["head_c"][2] - z3
            t = B["t_epi"] + (B["t_shaft"] - B["t_epi"]) * _sstep(22.0, 42.0, dd)
            rim = _rim(0.6, _sstep(40.0, 60.0, dd))
        d, w = _as_distance(f)
        del f
        dist_c[bone] = (box, d[_MID])
        t, rim = t.astype(_F32), rim.astype(_F32)
        rb = _sub_box(ubox, box)
        sub_t, sub_b = tis[:, rb[0], rb[1]], bid[:, rb[0], rb[1]]
        c0 = _coverage(d, w)
        if not c0.any():
            continue
        depth = -d
        stf, stc = tf[:, rb[0], rb[1]], tc[:, rb[0], rb[1]]
        # cortex: thin epiphyseal cortex less dense than the shaft cortex
        c_hu = hu[CORTEX] * (0.7 + 0.3 * _sstep(1.0, 4.0, t)) + 35.0 * stf
        # trabecular bone: texture, denser under the cortex (subchondral / endosteal)
        t_hu = hu[TRABECULAR] + 55.0 * stf + 30.0 * stc + 160.0 * np.exp(-np.clip(depth - t, 0, None) / 2.0)
        m_hu = hu[MARROW] + 10.0 * stf
        c1 = _coverage(d + t, w)
        c2 = _coverage(d + (t + rim), w)
        m = (c0 - c1) * c_hu + (c1 - c2) * t_hu + c2 * m_hu
        sub_c, sub_m = cov[:, rb[0], rb[1]], mat[:, rb[0], rb[1]]
        ce = np.minimum(c0, 1.0 - sub_c)  # bones never share a sample
        sub_m += m * (ce / np.maximum(c0, 1e-6))
        sub_c += ce
        # tissue codes and bone ids at the sample points (for the label and the tissue maps)
        inside = (d <= 0) & (sub_b == 0)
        cort = inside & (depth < t)
        marrow = inside & (depth > t + rim)
        sub_t[inside] = TRABECULAR
        sub_t[cort] = CORTEX
        sub_t[marrow] = MARROW
        sub_b[inside] = bone
    return {"box": ubox, "tissue": tis, "bone_id": bid, "cov": cov, "mat": mat, "dist_c": dist_c, "env_c": env_c}


def _soft_phi(L: dict, z: float) -> float:
    """Rotation of the soft-tissue frame (the femur's above the knee, the tibia's below)."""
    return float(L["phi_t"] + (L["phi_f"] - L["phi_t"]) * _sstep(-30.0, 30.0, z))


def _fat_at(L: dict, z: float) -> float:
    return L["fat"] * float(np.interp(z, [-200.0, -60.0, 0.0, 60.0, 200.0], [0.75, 0.85, 0.9, 1.05, 1.2]))


def _outline(L: dict, z: float, x, y, hull):
    """Muscle compartment (fascia) and skin fields of one leg at height ``z`` (soft-tissue frame).

    The fascia is a perturbed ellipse joined with a hull around the bones (``hull``: distance to
    the nearest bone), the skin lies a (direction-dependent) fat thickness outside it; the fat is
    thinner where the bones shape the outline (patella, anteromedial tibia). Returns
    ``(fascia, skin, fat_thickness)`` (negative inside).
    """
    rx, ry = np.interp(z, _ZK, L["rx"]), np.interp(z, _ZK, L["ry"])
    ox, oy = np.interp(z, _ZK, L["ox"]), np.interp(z, _ZK, L["oy"])
    dx, dy = x - _F32(ox), y - _F32(oy)
    th = np.arctan2(dy, dx)
    pert = np.ones(np.broadcast(dx, dy).shape, _F32)
    for n_ in range(4):
        a_n = L["four_a"][n_] + L["four_b"][n_] * np.sin(z / 70.0 + n_)
        pert += _F32(a_n) * np.cos(_F32(n_ + 1) * th + _F32(L["four_ph"][n_] + L["four_w"][n_] * z))
    rho = np.sqrt((dx / _F32(rx)) ** 2 + (dy / _F32(ry)) ** 2)
    ell = (rho / pert - 1.0) * _F32(min(rx, ry))
    bh = hull - _F32(np.interp(z, _HULL_Z, _HULL_M))
    fascia = _smin(ell, bh, 6.0)
    fat_t = _fat_at(L, z) * (1.0 + L["fat_amp"] * np.cos(th - _F32(L["fat_dir"])))
    fat_t = fat_t * (0.35 + 0.65 * _sstep(-2.0, 10.0, bh - ell))
    return fascia, fascia - fat_t, fat_t


def _render_soft(S: _LegSlice, bones: dict | None, P: dict):
    """Soft tissue of one leg at the slice centre: ``(box, tissue, depth)`` (depth > 0 inside)."""
    L = S.L
    z = float(S.zr[_MID])
    F, T, Pt = L["F"], L["T"], L["P"]
    w = float(_sstep(-30.0, 30.0, z))
    phi = _soft_phi(L, z)
    rx, ry = np.interp(z, _ZK, L["rx"]), np.interp(z, _ZK, L["ry"])
    ox, oy = np.interp(z, _ZK, L["ox"]), np.interp(z, _ZK, L["oy"])
    amp = float(np.abs(L["four_a"]).sum() + np.abs(L["four_b"]).sum())
    fat_z = _fat_at(L, z)
    R = max(rx, ry) * (1.0 + amp) + np.hypot(ox, oy) + fat_z * (1.0 + L["fat_amp"]) + 20.0
    box = S.box((-R, R), (-R, R), phi, subs=[_MID], margin=2.0)
    if box is None:
        return None
    x, y = (a[0] for a in S.coords(box, phi, subs=[_MID]))
    shp = x.shape
    # bone hull (nearest bone at the slice centre) and joint spaces
    hull = np.full(shp, _BIG, _F32)
    dc = {}
    joint = np.zeros(shp, bool)
    if bones is not None:
        for bone, (bb, d) in bones["dist_c"].items():
            dc[bone] = _paste(shp, box, bb, d, _BIG)
        bmask = _paste(shp, box, bones["box"], bones["tissue"][_MID] > 0, False)
        if bmask.any():  # in-plane distance to the nearest bone (-1 inside)
            hull = ndi.distance_transform_edt(~bmask, sampling=SPACING[:2]).astype(_F32)
            hull[bmask] = -1.0
        big = np.full(shp, _BIG, _F32)
        d_f, d_t, d_p, d_b = (dc.get(k, big) for k in (1, 2, 3, 4))
        joint |= (d_f > 0) & (d_t > 0) & (d_f + d_t < F["gap"] + T["gap"] + 1.5)
        joint |= (d_f > 0) & (d_p > 0) & (d_f + d_p < 7.5)
        joint |= (d_t > 0) & (d_b > 0) & (d_t + d_b < 4.0)
        cap = float(np.interp(z, _CAP_Z, _CAP_T))
        if cap > 0:
            joint |= (hull > 0) & (hull < cap)
        if bones["env_c"] is not None:
            e = _paste(shp, box, bones["env_c"][0], bones["env_c"][1], _BIG)
            joint |= (e < 0) & (d_f > 0)
    fascia, skin, fat_t = _outline(L, z, x, y, hull)
    if P["table"]:
        Yp = _Y_MM[box[1]][None, :] - _F32(P["pad_top"]) + _X_MM[box[0]][:, None] ** 2 / _F32(2.0 * P["table_R"])
        skin = _smax(skin, Yp, 3.0)
        fascia = _smax(fascia, Yp + 0.45 * fat_t, 3.0)
    inside = skin <= 0
    tissue = np.where(fascia > 0, np.uint8(FAT), np.uint8(MUSCLE))
    musc = tissue == MUSCLE
    # muscle-free regions around the knee (muscle only behind y_lim)
    ylim = float(np.interp(z, _YLIM_Z, _YLIM_Y)) + L["ylim_jit"]
    wob = _F32(L["ylim_w"][0]) * np.sin(x * _F32(1.0 / L["ylim_w"][1]) + _F32(L["ylim_w"][2]))
    fat_zone = y > _F32(ylim) - _F32(L["ylim_c"]) * x * x + wob
    # popliteal fat with the popliteal vessels
    pfx, prx, pry = L["pop"]
    taper = float(_sstep(-35.0, -15.0, z) * (1.0 - _sstep(50.0, 78.0, z)))
    pyc = float(np.interp(z, [-30.0, 0.0, 30.0, 70.0], [-32.0, -38.0, -44.0, -38.0])) * L["s"]
    if taper > 0.05:
        fat_zone |= ((x - pfx) / (prx * taper)) ** 2 + ((y - pyc) / (pry * taper)) ** 2 < 1.0
    # bone centre of the soft-tissue frame (femoral shaft above, tibial shaft below)
    bxf, byf = F["sx"], F["sy"]
    _, _, tcx, tcy, _ = _tibia_frame(z + T["gap"], T)
    bx_, by_ = bxf * w + tcx * (1 - w), byf * w + tcy * (1 - w)
    xb, yb = x - _F32(bx_), y - _F32(by_)
    # anteromedial tibia is subcutaneous
    if z < -20.0:
        fat_zone |= (xb < 3.0) & (yb > -2.0)
    # fat septa between the muscles (radial planes) and the gastrocnemius/soleus plane
    for ang, drift, curv, width, start, wa, wl, wp in L["septa"]:
        a = ang + drift * z
        ca, sa = _F32(np.cos(a)), _F32(np.sin(a))
        pr = xb * ca + yb * sa
        bend = _F32(curv / 100.0) * pr * pr + _F32(wa) * np.sin(pr * _F32(1.0 / wl) + _F32(wp + 0.02 * z))
        dd = np.abs(xb * sa - yb * ca + bend)
        fat_zone |= (dd < width / 2.0) & (pr > start)
    if z < -35.0:
        rgs, wgs = L["gs_sep"]
        r_b = np.sqrt(xb * xb + yb * yb)
        fat_zone |= (np.abs(r_b - _F32(rgs)) < wgs / 2.0) & (yb < -12.0)
    tissue[musc & fat_zone] = FAT
    tissue[joint & (fascia <= 0)] = JOINT
    # tendons: quadriceps (femur frame) and patellar (tibia frame)
    pc, pr_ = Pt["c"], Pt["r"]
    zf = z - F["gap"]
    p_top, p_bot = pc[2] + 0.8 * pr_[2], pc[2] - 0.8 * pr_[2]
    if p_top - 4.0 < zf < p_top + 55.0:
        xf, yf = (a[0] for a in S.coords(box, L["phi_f"], subs=[_MID]))
        fr = (zf - p_top) / 55.0
        uu = _sstep(0.0, 1.0, (zf - F["z0"]) / F["flare"])
        front = F["yc"] + 0.15 * F["ay"] + (F["sy"] - F["yc"] - 0.15 * F["ay"]) * uu
        front = front + 0.8 * F["ay"] + (F["shy"] - 0.8 * F["ay"]) * uu
        yq = (pc[1] + 0.1 * pr_[1]) * (1 - fr) + (front + 9.0) * fr
        tq = ((xf - pc[0]) / (13.0 * L["s"])) ** 2 + ((yf - yq) / 3.6) ** 2 < 1.0
        tissue[tq & inside] = TENDON
    zt = z + T["gap"]
    z_pb = p_bot + F["gap"] + T["gap"]  # patella lower pole in the tibia frame
    if T["tub_z"] - 4.0 < zt < z_pb + 3.0:
        xt, yt = (a[0] for a in S.coords(box, L["phi_t"], subs=[_MID]))
        fr = float(np.clip((z_pb - zt) / (z_pb - T["tub_z"]), 0.0, 1.0))
        # patella position in the tibia frame (rotate by the femur-tibia rotation difference)
        dphi = L["phi_t"] - L["phi_f"]
        px_t = pc[0] * np.cos(dphi) + pc[1] * np.sin(dphi)
        py_t = -pc[0] * np.sin(dphi) + pc[1] * np.cos(dphi)
        _, hy25, _, cy25, _ = _tibia_frame(T["tub_z"], T)
        tx = px_t * (1 - fr) + T["tub_x"] * fr
        ty = (py_t + 0.3 * pr_[1]) * (1 - fr) + (cy25 + hy25 + 3.0 + 2.5) * fr
        tp = ((xt - tx) / (12.5 * L["s"])) ** 2 + ((yt - ty) / 3.0) ** 2 < 1.0
        tissue[tp & inside & ~joint] = TENDON
    # popliteal artery and vein (inside the fat or the muscle)
    if -60.0 < z < 110.0:
        vx = float(np.interp(z, [-60.0, 0.0, 60.0, 110.0], [6.0, pfx, pfx - 4.0, -22.0]))
        vy = float(np.interp(z, [-60.0, 0.0, 60.0, 110.0], [-30.0, pyc + 1.0, -36.0, -10.0])) * L["s"]
        artery = (x - (vx + 3.0)) ** 2 + (y - (vy + 3.0)) ** 2 < 3.0**2
        ves = artery | ((x - vx) ** 2 + (y - (vy - 3.0)) ** 2 < 4.3**2)
        tissue[ves & (fascia <= 0) & (tissue != JOINT)] = VESSEL
    # great saphenous vein in the subcutaneous fat
    ga, gr = L["gsv"]
    if fat_z > 5.0:
        ce = np.cos(ga), np.sin(ga)
        rr = 1.0 / np.sqrt((ce[0] / rx) ** 2 + (ce[1] / ry) ** 2) + 0.5 * fat_z
        gx, gy = ox + rr * ce[0], oy + rr * ce[1]
        tissue[((x - gx) ** 2 + (y - gy) ** 2 < gr * gr) & (fascia > 0) & inside] = VESSEL
    tissue[skin > -_F32(L["skin"])] = SKIN
    tissue[~inside] = AIR
    return box, tissue, -skin


def _background(P: dict):
    """Tissue map of the air, pad and table (the same on every slice)."""
    tissue = np.full(SHAPE_XY, AIR, np.uint8)
    if P["table"]:
        X = _X_MM[:, None].astype(np.float64)
        Y = _Y_MM[None, :].astype(np.float64)
        ytop = P["pad_top"] - X**2 / (2.0 * P["table_R"])  # pad top (rises at the sides)
        edge = np.abs(X) < P["table_hw"]
        t0 = ytop + P["pad"]
        s_, c_ = P["table_shell"], P["table_core"]
        if P["pad"] > 0:
            tissue[((Y >= ytop) & (Y < t0) & (np.abs(X) < P["table_hw"] - 20.0)).astype(bool)] = PAD
        tissue[(Y >= t0) & (Y < t0 + s_) & edge] = TABLE_SHELL
        tissue[(Y >= t0 + s_) & (Y < t0 + s_ + c_) & edge] = TABLE_CORE
        tissue[(Y >= t0 + s_ + c_) & (Y < t0 + 2 * s_ + c_) & edge] = TABLE_SHELL
    return tissue


def render_lower_limb_volume(
    rng_or_seed=0, num_slices: int = NUM_SLICES, return_tissues: bool = False, params: dict | None = None
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
        params: optional parameters from :func:`sample_lower_limb_params` (drawn from the
            generator when omitted; the generator is then also used for textures and noise).

    Returns:
        ``(image, label)``: ``int16`` HU of shape ``(512, 512, num_slices)`` and the ``uint8`` bone
        label (0 background, 1 bone); plus the tissue dict when ``return_tissues``. The affine is
        :func:`lower_limb_affine`.
    """
    rng = _as_rng(rng_or_seed)
    n = int(num_slices)
    if n < 1:
        raise ValueError(f"num_slices must be >= 1, got {n}")
    P = sample_lower_limb_params(rng, n) if params is None else params
    hu = {k: _F32(v) for k, v in P["hu"].items()}
    lut = np.array([P["hu"][k] for k in range(len(TISSUES))], _F32)
    bg = _background(P)
    z_world = (np.arange(n) - (n - 1) / 2.0) * SPACING[2]
    image = np.empty(SHAPE_XY + (n,), np.int16)
    label = np.zeros(SHAPE_XY + (n,), np.uint8)
    if return_tissues:
        t_map = np.empty(SHAPE_XY + (n,), np.uint8)
        b_map = np.zeros(SHAPE_XY + (n,), np.uint8)
        l_map = np.zeros(SHAPE_XY + (n,), np.uint8)
        z_rel = np.zeros((2, n))
        leg_x = np.zeros((2, n))
    if P["fov_mask"]:
        r2 = _X_MM[:, None] ** 2 + _Y_MM[None, :] ** 2
        outside_fov = r2 > _F32((SHAPE_XY[0] * SPACING[0] / 2.0) ** 2)
    for k in range(n):
        white = rng.standard_normal(SHAPE_XY, dtype=_F32)  # tissue textures (three scales)
        tex_fine = _unit_noise(white, 0.8)
        tex_coarse = _unit_noise(white, 4.0)
        tex_soft = _unit_noise(white, 2.5)
        noise = _unit_noise(rng.standard_normal(SHAPE_XY, dtype=_F32), P["noise_corr"])  # CT noise
        zs = z_world[k] + _SUB_OFFSETS
        tissue = bg.copy()
        best = np.zeros(SHAPE_XY, _F32)
        owner = np.zeros(SHAPE_XY, np.uint8)
        bone_list = []
        for li, L in enumerate(P["legs"]):
            S = _LegSlice(L, (zs - (P["z_joint"] + L["dz"])).astype(_F32))
            bones = _render_bones(S, hu, tex_fine, tex_coarse)
            soft = _render_soft(S, bones, P)
            if soft is not None:
                box, st, depth = soft
                win = (depth > best[box]) & (st != AIR)
                tissue[box][win] = st[win]
                best[box][win] = depth[win]
                owner[box][win] = li + 1
            if bones is not None:
                bone_list.append(bones)
            if return_tissues:
                z_rel[li, k] = S.zr[_MID]
                leg_x[li, k] = S.cX[_MID] / SPACING[0] + (SHAPE_XY[0] - 1) / 2.0
        soft_hu = lut[tissue]
        soft_hu += np.where(tissue == MUSCLE, 4.0 * tex_soft, 0.0).astype(_F32)
        soft_hu += np.where(tissue == FAT, 6.0 * tex_coarse + 3.0 * tex_fine, 0.0).astype(_F32)
        img = soft_hu.copy()
        if return_tissues:
            t_c = tissue.copy()
            b_c = np.zeros(SHAPE_XY, np.uint8)
        for bones in bone_list:
            box = bones["box"]
            m = bones["tissue"] > 0
            img[box] += (bones["mat"] - bones["cov"] * soft_hu[box][None]).sum(axis=0) / _F32(SUBSLICES)
            label[box + (k,)] |= (m.sum(axis=0) * 2 > SUBSLICES).astype(np.uint8)
            if return_tissues:
                mc = m[_MID]
                t_c[box][mc] = bones["tissue"][_MID][mc]
                b_c[box][mc] = bones["bone_id"][_MID][mc]
        img = ndi.gaussian_filter(img, P["blur"])
        img += _F32(P["noise_sd"]) * noise
        if P["fov_mask"]:
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


# --------------------------------------------------------------------------------------------
# data set writer
# --------------------------------------------------------------------------------------------


def volume_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of volume ``index`` of a data set with base ``seed`` (independent of the volume count)."""
    return volume_seed_sequence(seed, index, 5)


def _render_indexed(seed: int, index: int, num_slices: int) -> tuple:
    """Volume ``index`` of the data set with base ``seed`` and its log summary (for :func:`write_dataset`)."""
    img, lab = render_lower_limb_volume(np.random.default_rng(volume_seed(seed, index)), num_slices)
    summary = (
        f"bone {100 * float(lab.mean()):.1f} % of voxels, "
        f"{int(lab.any(axis=(0, 1)).sum())}/{num_slices} axial slices with bone"
    )
    return img, lab, lower_limb_affine(num_slices), summary


def write_lower_limb_dataset(
    out_dir: str | os.PathLike,
    num_volumes: int = 8,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    workers: int | None = 1,
    num_slices: int = NUM_SLICES,
) -> Path:
    """Render ``num_volumes`` synthetic lower-limb CT volumes and write them as an MSD-style data set.

    Layout: ``imagesTr/lowerlimb_000.nii.gz`` (``int16`` HU), ``labelsTr/lowerlimb_000.nii.gz``
    (``uint8``, 0 background, 1 bone) and ``datalist.json`` (split by volume: 6/1/1 for 8 volumes,
    see :func:`scripts.phantoms.split_counts`; paths relative to the datalist). Volume ``i``
    depends only on ``(seed, i, num_slices)``, and the files are byte-identical across runs and
    worker counts. A non-empty ``out_dir`` that was not written by this tool is refused
    (:class:`scripts.phantoms.OutputDirError`); nothing is deleted except stale files that this tool
    itself recorded in an earlier run.

    Args:
        out_dir: output directory (created if missing).
        num_volumes: number of volumes (>= 1).
        seed: base seed (>= 0).
        log: progress callback (one line per volume); ``None`` for silence.
        workers: worker processes (1 renders in this process; ``None``: up to 4, at most the CPU
            count and ``num_volumes``).
        num_slices: axial slices per volume (>= 1; 40 covers thigh, knee and leg).

    Returns:
        Path of ``datalist.json``.
    """
    return write_dataset(
        out_dir, BUNDLE, _render_indexed, num_volumes, seed, log, workers,
        file_prefix="lowerlimb",
        name="synthetic_lower_limb_ct",
        description=(
            "synthetic bilateral lower-limb CT volumes (distal thigh, knee, proximal leg; int16 HU) "
            "rendered by scripts/demo_data.py for the lower_limb_afu_unet bundle (not real data; "
            "stand-in for the paper's lower-limb CT). Bone labels (femur, patella, tibia, fibula as "
            "one class) from the un-blurred phantom. seed={seed}, {num_volumes} volumes of "
            "{num_slices} slices, split {split} by volume."
        ),
        labels=LABELS,
        modality="CT (synthetic)",
        spacing=SPACING,
        orientation="LPS (axis 0 R->L, axis 1 A->P, axis 2 I->S; array[:, :, k] is axial slice k)",
        options={"num_slices": num_slices},
    )
