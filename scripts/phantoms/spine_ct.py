"""Synthetic axial spine CT with a binary vertebra label.

Stand-in for the spine CT of the ``spine_msr_attention_unet`` bundle (MSR-attention U-Net, 2D binary
spine segmentation of 512x512 axial CT slices), which cannot be shipped. Each volume is a randomly
posed and sized trunk built from implicit surfaces, in Hounsfield units:

* vertebrae (T1-L5) along a curved spine (kyphosis/lordosis, a small scoliosis with axial rotation;
  sizes grow caudally): vertebral body with concave endplates, a waist and a posterior concavity,
  a 1-2 mm cortical shell (~900-1500 HU) around a cancellous core (~150-350 HU), pedicles, laminae,
  spinous, transverse and superior/inferior articular processes (facet joints);
* intervertebral discs (annulus ~90-100 HU, nucleus ~70-85 HU) between the bodies; spinal canal with
  epidural fat, thecal sac (CSF ~10 HU) and, above L1/L2, the cord (~35 HU);
* at thoracic levels: ribs (cortex + marrow) from the costovertebral joints at the bodies and
  transverse processes around the chest, costal cartilages, sternum; lungs (~-850 HU, denser
  posteriorly, with vessels), mediastinum (fat, heart, ascending/descending aorta, esophagus,
  azygos, trachea/bronchi); the diaphragm domes with their posterior recesses;
* at lumbar levels: liver, spleen, stomach, kidneys, small bowel and colon with gas, visceral fat,
  psoas and quadratus lumborum, aorta (~40 HU, anterior-left of the spine, calcified plaques in some
  volumes) and IVC; at the bottom of low lumbar volumes the sacrum and the iliac wings with the
  iliacus and gluteal muscles and the sacroiliac joints;
* trunk outline with skin, subcutaneous fat (~-100 HU, thickness varies with the body habitus), the
  chest/abdominal wall and paraspinal (erector spinae) muscles (~40-60 HU), a carbon-fibre table;
* CT physics: partial volume (each 3 mm slice is the mean of 3 sub-slices, then an in-plane blur of
  0.45-0.7 px for the reconstruction kernel), tissue textures and correlated noise (sd 10-25 HU);
  -1024 outside the circular reconstruction field of view.

Random per-volume variation: the level range (thoracic T4-T9, thoracolumbar T11-L1 or lumbar
L2/3-L4 centred), vertebra sizes, spinal curvature, body size and fat, position in the field of view,
organ positions, bone density, HU offsets, blur and noise.

Label (``uint8``, from the un-blurred anatomy at the voxel centres): 1 = vertebral bone of T1-L5
(cortex and cancellous core of the body and of all posterior elements, processes included); 0 =
everything else: discs, canal contents, ribs, costal cartilage, sternum, iliac bones and the sacrum.
The sacrum is labelled background on purpose: like TotalSegmentator, which keeps it apart from the
vertebrae, it is not counted as "spine" here, and together with the iliac wings it reproduces the
paper's known failure mode (hip bone below the spine mistaken for spine).

Geometry (fixed, other code depends on it): array shape ``(512, 512, num_slices)`` (``num_slices``
defaults to 40, i.e. 120 mm, about 3 lumbar or 4-5 thoracic vertebrae), spacing
``(0.8, 0.8, 3.0)`` mm; axis 0 runs from the patient's right to left, axis 1 anterior to posterior,
axis 2 inferior to superior (the DICOM LPS order, as in :mod:`scripts.phantoms.lower_limb_ct`), so
``array[:, :, k]`` is axial slice ``k`` (``k = 0`` the most caudal), ``array[:, :, k].T`` shown with
the first row at the top is the usual radiological view (anterior up, patient's right on the left of
the screen), and the affine (stored as a RAS+ affine) is ``diag(-0.8, -0.8, 3.0)`` with
``nibabel.aff2axcodes(affine) == ('L', 'P', 'S')``; the volume centre is at world (0, 0, 0). Images
are ``int16`` HU (clipped to -1024..3071, -1024 outside the 512-pixel reconstruction circle), labels
``uint8`` {0, 1}.

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
from .shapes import smax as _smax
from .shapes import smin as _smin
from .shapes import sstep as _sstep

__all__ = [
    "BUNDLE",
    "SHAPE_XY",
    "NUM_SLICES",
    "SPACING",
    "LABELS",
    "LEVEL_NAMES",
    "TISSUES",
    "TISSUE_HU",
    "SUPERSAMPLE",
    "HU_AIR",
    "HU_LUNG",
    "HU_FAT",
    "HU_MUSCLE",
    "HU_BLOOD",
    "HU_CSF",
    "HU_CORD",
    "HU_DISC",
    "HU_CANCELLOUS",
    "HU_CORTICAL",
    "HU_LIVER",
    "spine_affine",
    "sample_spine_params",
    "render_spine_volume",
    "volume_seed",
    "write_spine_dataset",
]

BUNDLE = "spine_msr_attention_unet"
#: In-plane array shape (axis 0 left->right, axis 1 posterior->anterior).
SHAPE_XY = (512, 512)
#: Default number of axial slices (axis 2, inferior->superior).
NUM_SLICES = 40
#: Voxel spacing in mm along the three array axes.
SPACING = (0.8, 0.8, 3.0)
#: Label values written to the label volumes.
LABELS = {0: "background", 1: "spine"}
#: Sub-slices per slice used for partial-volume rendering along z (odd: the middle sub-slice is the
#: voxel centre that the label and the tissue map are taken from).
SUPERSAMPLE = 3
#: Vertebra names by level index (0 = T1 ... 16 = L5, 17 = S1, the top of the sacrum).
LEVEL_NAMES = tuple([f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + ["S1"])

# ---- tissue codes of the internal (un-blurred) tissue map ----
AIR, TABLE, TABLE_FOAM, SKIN, FAT, VISCERAL_FAT, MUSCLE, LUNG, AIRWAY, BLOOD = range(10)
HEART, LIVER, SPLEEN, KIDNEY, BOWEL, BOWEL_CONTENT, GAS, FECES, CSF, CORD = range(10, 20)
DISC_ANNULUS, DISC_NUCLEUS, CANCELLOUS, CORTICAL, RIB_MARROW, RIB_CORTEX = range(20, 26)
COSTAL_CARTILAGE, STERNUM_MARROW, STERNUM_CORTEX, SACRUM_MARROW, SACRUM_CORTEX = range(26, 31)
ILIUM_MARROW, ILIUM_CORTEX, CALCIFICATION = range(31, 34)

#: Tissue names by code (for ``render_spine_volume(..., return_tissues=True)``).
TISSUES = {
    AIR: "air",
    TABLE: "table_shell",
    TABLE_FOAM: "table_foam",
    SKIN: "skin",
    FAT: "subcutaneous_fat",
    VISCERAL_FAT: "visceral_fat",
    MUSCLE: "muscle",
    LUNG: "lung",
    AIRWAY: "airway_air",
    BLOOD: "blood",
    HEART: "heart",
    LIVER: "liver",
    SPLEEN: "spleen",
    KIDNEY: "kidney",
    BOWEL: "bowel",
    BOWEL_CONTENT: "bowel_fluid",
    GAS: "bowel_gas",
    FECES: "feces",
    CSF: "csf",
    CORD: "spinal_cord",
    DISC_ANNULUS: "disc_annulus",
    DISC_NUCLEUS: "disc_nucleus",
    CANCELLOUS: "vertebral_cancellous_bone",
    CORTICAL: "vertebral_cortical_bone",
    RIB_MARROW: "rib_marrow",
    RIB_CORTEX: "rib_cortex",
    COSTAL_CARTILAGE: "costal_cartilage",
    STERNUM_MARROW: "sternum_marrow",
    STERNUM_CORTEX: "sternum_cortex",
    SACRUM_MARROW: "sacrum_marrow",
    SACRUM_CORTEX: "sacrum_cortex",
    ILIUM_MARROW: "ilium_marrow",
    ILIUM_CORTEX: "ilium_cortex",
    CALCIFICATION: "calcification",
}
#: Mean HU of each tissue before the per-volume jitter (bone values scale with the bone density).
TISSUE_HU = {
    AIR: -1000.0,
    TABLE: 150.0,
    TABLE_FOAM: -930.0,
    SKIN: 25.0,
    FAT: -105.0,
    VISCERAL_FAT: -95.0,
    MUSCLE: 50.0,
    LUNG: -855.0,
    AIRWAY: -990.0,
    BLOOD: 40.0,
    HEART: 45.0,
    LIVER: 58.0,
    SPLEEN: 48.0,
    KIDNEY: 32.0,
    BOWEL: 36.0,
    BOWEL_CONTENT: 15.0,
    GAS: -950.0,
    FECES: -60.0,
    CSF: 10.0,
    CORD: 34.0,
    DISC_ANNULUS: 95.0,
    DISC_NUCLEUS: 78.0,
    CANCELLOUS: 230.0,
    CORTICAL: 1250.0,
    RIB_MARROW: 220.0,
    RIB_CORTEX: 1000.0,
    COSTAL_CARTILAGE: 120.0,
    STERNUM_MARROW: 210.0,
    STERNUM_CORTEX: 900.0,
    SACRUM_MARROW: 230.0,
    SACRUM_CORTEX: 1050.0,
    ILIUM_MARROW: 210.0,
    ILIUM_CORTEX: 1100.0,
    CALCIFICATION: 600.0,
}
# Convenience HU constants (means before jitter).
HU_AIR = TISSUE_HU[AIR]
HU_LUNG = TISSUE_HU[LUNG]
HU_FAT = TISSUE_HU[FAT]
HU_MUSCLE = TISSUE_HU[MUSCLE]
HU_BLOOD = TISSUE_HU[BLOOD]
HU_CSF = TISSUE_HU[CSF]
HU_CORD = TISSUE_HU[CORD]
HU_DISC = TISSUE_HU[DISC_ANNULUS]
HU_CANCELLOUS = TISSUE_HU[CANCELLOUS]
HU_CORTICAL = TISSUE_HU[CORTICAL]
HU_LIVER = TISSUE_HU[LIVER]

_BONE_MARROW = (CANCELLOUS, RIB_MARROW, STERNUM_MARROW, SACRUM_MARROW, ILIUM_MARROW)
_BONE_CORTEX = (CORTICAL, RIB_CORTEX, STERNUM_CORTEX, SACRUM_CORTEX, ILIUM_CORTEX)
_OTHER_BONE = (RIB_MARROW, RIB_CORTEX, COSTAL_CARTILAGE, ILIUM_MARROW, ILIUM_CORTEX)
# texture amplitudes (HU): fine-grained (trabecular, lung) and coarse (soft-tissue mottling)
_TEX_FINE = {CANCELLOUS: 40.0, RIB_MARROW: 35.0, STERNUM_MARROW: 35.0, SACRUM_MARROW: 40.0,
             ILIUM_MARROW: 35.0, LUNG: 18.0, FECES: 70.0, CORTICAL: 60.0, ILIUM_CORTEX: 50.0}
_TEX_COARSE = {MUSCLE: 6.0, FAT: 7.0, VISCERAL_FAT: 9.0, LIVER: 4.0, SPLEEN: 4.0, KIDNEY: 4.0,
               BOWEL: 9.0, BOWEL_CONTENT: 5.0, LUNG: 22.0, CANCELLOUS: 25.0, DISC_ANNULUS: 5.0,
               DISC_NUCLEUS: 5.0, HEART: 3.0}

# ---- per-level anatomy tables (T1..T12, L1..L5, S1), mm and degrees ----
_NL = 18
_TAB = {
    # vertebral body width, depth and height; disc height below the level
    "W": [27, 28, 29, 30, 31, 32, 33, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 50],
    "D": [16, 17, 18, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 33, 30],
    "H": [14, 15, 16, 16.5, 17, 17.5, 18, 19, 20, 21, 22, 23, 24, 25, 26, 26, 25, 48],
    "disc": [3.5, 3.8, 4, 4, 4.2, 4.3, 4.5, 4.8, 5, 5.5, 6, 7, 8, 9, 10, 10.5, 10, 0],
    # canal width/depth; pedicle width/height/length; lamina thickness/height
    "cw": [18, 17, 16, 15.5, 15, 15, 15, 15.5, 16, 16.5, 17, 18.5, 20, 21, 22, 23, 24, 24],
    "cd": [14, 14, 14, 14, 14, 14, 14, 14.5, 15, 15, 15.5, 16, 16, 16, 16, 16, 16, 11],
    "pw": [7, 6, 5.5, 5, 5, 5, 5.5, 6, 6.5, 7, 8, 8.5, 8, 8.5, 9.5, 11, 14, 12],
    "ph": [9, 10, 10, 10.5, 11, 11.5, 12, 12.5, 13, 14, 15, 15, 15, 15, 15, 15, 14, 12],
    "pl": [6, 6.5, 7, 7, 7, 7, 7, 7, 7.5, 7.5, 8, 8, 8, 8.5, 9, 9, 9, 6],
    "lt": [5, 5, 5, 5.5, 5.5, 5.5, 5.5, 6, 6, 6, 6.5, 6.5, 7, 7, 7, 7, 7, 6],
    "lh": [11, 12, 12, 13, 13, 13, 14, 14, 15, 16, 17, 18, 19, 20, 20, 20, 19, 20],
    # spinous process length, downward slope, height, thickness
    "spl": [30, 32, 33, 34, 34, 35, 35, 35, 34, 32, 30, 28, 28, 30, 30, 28, 24, 10],
    "spa": [20, 35, 45, 55, 60, 60, 62, 60, 55, 45, 30, 20, 10, 8, 5, 5, 10, 20],
    "sph": [7, 8, 8, 8, 8, 8, 8, 8, 9, 10, 12, 14, 15, 17, 18, 17, 14, 8],
    "spt": [5, 5, 5, 5, 5, 5, 5, 5.5, 6, 6, 6.5, 7, 7, 7, 7.5, 7.5, 7, 5],
    # transverse process length, posterior angle from lateral, AP and vertical radius
    "tpl": [25, 25, 24, 23, 23, 22, 21, 20, 18, 16, 11, 7, 14, 20, 24, 22, 18, 0],
    "tpa": [20, 25, 30, 30, 32, 32, 33, 33, 33, 33, 30, 20, 10, 8, 5, 5, 5, 0],
    "tprh": [5, 5, 5, 5, 5, 5, 5, 4.8, 4.6, 4.4, 4.2, 4, 3.2, 3, 3, 3.5, 5.5, 3],
    "tprv": [5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 6, 6, 6.5, 7, 8, 3],
    # sagittal tilt of the vertebral axis (deg, + = top tilted anteriorly)
    "sag": [18, 15, 12, 8, 5, 2, 0, -3, -6, -9, -11, -12, -10, -6, 0, 8, 18, 40],
}
_TAB = {k: np.asarray(v, float) for k, v in _TAB.items()}
# rib tables (rib k articulates with T_k): height, thickness, anterior drop, end angle of the bony
# rib (deg from the posterior midline), whether a cartilage reaches the sternum
_RIB_H = [8, 10, 11, 12, 12.5, 13, 13, 13, 12.5, 12, 10, 9]
_RIB_T = [6.5, 6, 6, 5.8, 5.8, 5.8, 5.8, 5.8, 5.8, 5.6, 5.4, 5.2]
_RIB_DROP = [35, 62, 80, 92, 100, 106, 108, 106, 98, 85, 58, 32]
_RIB_END = [160, 158, 155, 152, 150, 147, 143, 138, 132, 124, 100, 70]
_RIB_CART = [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 0, 0]  # 1: to the sternum, 2: short, 0: none


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def spine_affine(num_slices: int = NUM_SLICES) -> np.ndarray:
    """The fixed voxel-to-world (RAS+, mm) affine of a volume with ``num_slices`` slices.

    Diagonal ``(-0.8, -0.8, 3.0)`` (axis 0 -> left, axis 1 -> posterior, axis 2 -> superior); the
    origin puts the volume centre at world (0, 0, 0). ``nibabel.aff2axcodes`` gives ``('L', 'P', 'S')``.
    """
    aff = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    centre = (np.array([SHAPE_XY[0], SHAPE_XY[1], num_slices], dtype=float) - 1.0) / 2.0
    aff[:3, 3] = -aff[:3, :3] @ centre
    return aff


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _ecaps(px, py, pz, a, b, rh, rv, up=(0.0, 0.0, 1.0), rh1=None, rv1=None):
    """Distance-like field of the segment a-b with an elliptic cross-section (negative inside).

    ``rh`` is the radius across the segment in the horizontal plane (perpendicular to ``up``), ``rv``
    the radius in the plane of the segment and ``up``; ``rh1``/``rv1`` taper them linearly to the end
    ``b``. For a segment parallel to ``up`` the two radii apply to the first and second axis.
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    e0 = b - a
    length = float(np.linalg.norm(e0))
    e0 = e0 / length
    e1 = np.cross(e0, np.asarray(up, float))
    if np.linalg.norm(e1) < 1e-3:
        e1 = np.cross(e0, (0.0, 1.0, 0.0))
    e1 = _unit(e1)
    e2 = np.cross(e1, e0)
    f32 = np.float32
    dx, dy, dz = px - f32(a[0]), py - f32(a[1]), pz - f32(a[2])
    t = dx * f32(e0[0]) + dy * f32(e0[1]) + dz * f32(e0[2])
    tc = np.clip(t, 0.0, length)
    q0 = t - tc
    q1 = dx * f32(e1[0]) + dy * f32(e1[1]) + dz * f32(e1[2])
    q2 = dx * f32(e2[0]) + dy * f32(e2[1]) + dz * f32(e2[2])
    if rh1 is None and rv1 is None:
        s = np.sqrt((q1 * f32(1 / rh)) ** 2 + (q2 * f32(1 / rv)) ** 2 + (q0 * f32(1 / rh)) ** 2)
        return (s - 1.0) * f32(min(rh, rv))
    rh1 = rh if rh1 is None else rh1
    rv1 = rv if rv1 is None else rv1
    fr = tc * f32(1.0 / length)
    rh_t = f32(rh) + f32(rh1 - rh) * fr
    rv_t = f32(rv) + f32(rv1 - rv) * fr
    s = np.sqrt((q1 / rh_t) ** 2 + (q2 / rv_t) ** 2 + (q0 / rh_t) ** 2)
    return (s - 1.0) * np.minimum(rh_t, rv_t)


def _std(a: np.ndarray) -> np.float32:
    """Standard deviation of a large random field, estimated on a regular subsample."""
    return np.float32(a[::3, ::3].std() + 1e-6)


def _upsample_xy(a: np.ndarray, shape) -> np.ndarray:
    """Bilinear upsampling of the first two axes of ``a`` to ``shape`` (pixel-centre aligned)."""
    out = a
    for ax, n_hi in enumerate(shape):
        n_lo = out.shape[ax]
        c = np.clip((np.arange(n_hi) + 0.5) * n_lo / n_hi - 0.5, 0, n_lo - 1)
        i0 = np.floor(c).astype(np.intp)
        i1 = np.minimum(i0 + 1, n_lo - 1)
        w = (c - i0).astype(np.float32).reshape((-1,) + (1,) * (out.ndim - 1 - ax))
        lo, hi = np.take(out, i0, axis=ax), np.take(out, i1, axis=ax)
        out = lo + (hi - lo) * w
    return out


def _catmull_rom(points: np.ndarray, step: float) -> np.ndarray:
    """Uniform Catmull-Rom spline through ``points`` (n, d), sampled about every ``step`` mm."""
    p = np.asarray(points, float)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = [p[0]]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        n = max(1, int(np.ceil(np.linalg.norm(p2 - p1) / step)))
        t = (np.arange(1, n + 1) / n)[:, None]
        seg = 0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                     + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        out.extend(seg)
    return np.asarray(out)


class _Harmonics:
    """Smooth random periodic function of an angle: ``1 + sum_k a_k cos(k psi + phi_k)``."""

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


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------


def sample_spine_params(rng: np.random.Generator) -> dict:
    """Draw the random anatomy, pose and contrast parameters of one trunk.

    Lengths in mm, angles in degrees, scanner frame x right, y anterior, z superior. The same
    generator state always gives the same parameters.

    Args:
        rng: numpy random generator (consumed).

    Returns:
        A flat dict of floats/arrays used by :func:`render_spine_volume`.
    """
    u = rng.uniform
    P: dict = {}
    kinds = ("thoracic", "thoracolumbar", "lumbar")
    P["kind"] = kinds[int(rng.choice(3, p=[0.35, 0.3, 0.35]))]
    P["center_level"] = {"thoracic": u(3.0, 8.5), "thoracolumbar": u(10.0, 12.0), "lumbar": u(13.6, 15.2)}[P["kind"]]
    P["z_anchor"] = u(-8.0, 8.0)
    s = u(0.88, 1.12)
    P["size"] = s
    P["vert_scale"] = float(np.sqrt(s) * u(0.95, 1.05))
    P["vert_jitter"] = rng.normal(0.0, 0.025, size=(_NL, 4))
    # curvature
    P["sag_scale"] = u(0.6, 1.25)
    P["sag_offset"] = u(-5.0, 5.0)
    P["sc_amp"] = u(0.0, 4.0) + (u() < 0.25) * u(2.0, 6.0)
    P["sc_period"] = u(8.0, 16.0)
    P["sc_phase"] = u(0.0, 20.0)
    P["rot_k"] = u(0.3, 1.0)
    P["rot_noise"] = rng.normal(0.0, 1.5, size=_NL)
    # position and habitus
    P["x_off"] = u(-15.0, 15.0)
    P["y_off"] = u(-5.0, 25.0)
    P["trunk_dx"] = rng.normal(0.0, 4.0)
    f = u(0.0, 1.0) ** 1.2
    P["fat"] = f
    P["fat_thor"] = 4.0 + 18.0 * f + u(0.0, 3.0)
    P["fat_lum"] = 6.0 + 30.0 * f + u(0.0, 4.0)
    P["belly"] = u(0.0, 1.0) * f
    P["visceral"] = float(np.clip(f + rng.normal(0.0, 0.2), 0.0, 1.0))
    P["A_thor"] = u(135.0, 155.0) * s
    P["A_lum"] = u(122.0, 145.0) * s
    P["B_thor"] = u(92.0, 108.0) * s
    P["B_lum"] = u(82.0, 100.0) * s
    P["back_thor"] = u(46.0, 54.0) * s
    P["back_lum"] = u(54.0, 64.0) * s
    P["wall_thor"] = u(9.0, 14.0)
    P["wall_lum"] = u(10.0, 16.0)
    P["skin"] = u(1.5, 2.5)
    P["erector"] = u(0.85, 1.2) * s
    P["psoas"] = u(0.8, 1.2) * s
    # organs (levels as fractional level indices)
    P["dome_level"] = u(8.4, 9.6)
    P["dome_lr"] = u(8.0, 18.0)
    P["liver_tip_level"] = u(14.0, 15.3)
    P["kidney_l_level"] = u(11.6, 12.4)
    P["kidney_r_level"] = P["kidney_l_level"] + u(0.2, 0.9)
    P["spleen_level"] = u(10.4, 11.2)
    P["stomach_level"] = u(10.2, 11.0)
    P["stomach_gas"] = u() < 0.6
    P["heart_level"] = u(7.3, 8.5)
    P["carina_level"] = u(4.2, 5.0)
    P["aorta_r"] = u(10.0, 13.0) * s
    P["age"] = u(0.0, 1.0)
    # pelvis (relative to the top of S1)
    P["crest_z"] = u(36.0, 48.0)
    P["pelvis_scale"] = s * u(0.94, 1.06)
    # bone and contrast
    P["bone_density"] = u(0.72, 1.25) * (1.1 - 0.25 * P["age"])
    P["cortex_gain"] = u(0.9, 1.2)
    P["cortex_t"] = u(1.2, 1.9)
    P["hu_jitter"] = rng.normal(0.0, 3.0, size=len(TISSUE_HU))
    P["hu_offset"] = rng.normal(0.0, 4.0)
    P["lung_grad"] = u(40.0, 110.0)
    P["noise_sd"] = u(10.0, 25.0)
    P["noise_corr"] = u(0.7, 1.1)
    P["psf"] = u(0.45, 0.7)
    P["table"] = u() < 0.9
    P["table_curv"] = u(0.0004, 0.0009)
    P["bowel_width"] = u(0.45, 0.75) * (1.15 - 0.5 * P["visceral"])
    P["gas_thr"] = u(0.9, 1.6)
    P["colon"] = np.stack([u(14.0, 24.0, 2), u(0.75, 1.3, 2), u(-0.2, 0.6, 2), u(-10.0, 10.0, 2)], 1)
    return P


# --------------------------------------------------------------------------------------------
# volume context: spine chain, trunk outline as a function of z, sampling grids
# --------------------------------------------------------------------------------------------


class _Frame:
    """Local vertebra frame: ``world = c + R @ (u, v, w)`` (u right, v anterior, w superior)."""

    def __init__(self, c, R):
        self.c = np.asarray(c, float)
        self.R = np.asarray(R, float)

    def world(self, p) -> np.ndarray:
        return self.c + self.R @ np.asarray(p, float)

    def aabb(self, lo, hi):
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        pts = corners @ self.R.T + self.c
        return pts.min(0), pts.max(0)

    def local(self, x, y, z):
        f32 = np.float32
        d = (x - f32(self.c[0]), y - f32(self.c[1]), z - f32(self.c[2]))
        R = self.R
        return [d[0] * f32(R[0, i]) + d[1] * f32(R[1, i]) + d[2] * f32(R[2, i]) for i in range(3)]


class _Ctx:
    """Everything derived from the parameters that the painters share."""

    def __init__(self, P: dict, num_slices: int):
        self.P = P
        self.n = n = int(num_slices)
        ss = SUPERSAMPLE
        self.X = ((np.arange(SHAPE_XY[0]) - (SHAPE_XY[0] - 1) / 2) * SPACING[0]).astype(np.float32)
        self.Y = ((np.arange(SHAPE_XY[1]) - (SHAPE_XY[1] - 1) / 2) * SPACING[1]).astype(np.float32)
        self.zc = (np.arange(n) - (n - 1) / 2) * SPACING[2]
        self.zf = ((np.arange(n * ss) + 0.5) / ss - 0.5 - (n - 1) / 2) * SPACING[2]
        self.dzf = SPACING[2] / ss
        self._chain()
        self._anchor()

    # ---- spine chain ----
    def _chain(self):
        P = self.P
        vs = P["vert_scale"]
        jit = P["vert_jitter"]
        dims = {k: v * vs for k, v in _TAB.items() if k not in ("sag", "spa", "tpa")}
        dims["W"] = dims["W"] * (1 + jit[:, 0])
        dims["D"] = dims["D"] * (1 + jit[:, 1])
        dims["H"] = dims["H"] * (1 + jit[:, 2])
        dims["disc"] = dims["disc"] * (1 + 2 * jit[:, 3])
        dims["spa"] = _TAB["spa"].copy()
        dims["tpa"] = _TAB["tpa"].copy()
        self.dims = dims
        lv = np.arange(_NL, dtype=float)
        theta = np.deg2rad(_TAB["sag"] * P["sag_scale"] + P["sag_offset"])
        phi = np.deg2rad(P["sc_amp"] * np.sin(2 * np.pi * (lv - P["sc_phase"]) / P["sc_period"]))
        gamma = np.deg2rad(P["rot_k"] * np.rad2deg(phi) + P["rot_noise"])
        tang = np.stack([np.tan(phi), np.tan(theta), np.ones(_NL)], 1)
        tang /= np.linalg.norm(tang, axis=1, keepdims=True)
        C = np.zeros((_NL, 3))
        for i in range(_NL - 1):
            t = _unit(tang[i] + tang[i + 1])
            C[i + 1] = C[i] - t * (dims["H"][i] / 2 + dims["disc"][i] + dims["H"][i + 1] / 2)
        self.frames = []
        for i in range(_NL):
            w = tang[i]
            uu = _unit(np.array([1.0, 0, 0]) - w[0] * w)
            v = np.cross(w, uu)
            cg, sg = np.cos(gamma[i]), np.sin(gamma[i])
            u2, v2 = cg * uu + sg * v, -sg * uu + cg * v
            self.frames.append(np.stack([u2, v2, w], 1))
        self.C0 = C

    def _trunk_dims(self, lev: float) -> dict:
        P, d = self.P, self.dims
        lv = np.arange(_NL)
        b = float(np.interp(lev, lv, d["D"])) / 2
        wl = float(_sstep(10.5, 12.5, lev))
        fat_sub = P["fat_thor"] * (1 - wl) + P["fat_lum"] * wl
        back_lean = P["back_thor"] * (1 - wl) + P["back_lum"] * wl
        back_d = b + back_lean + 0.7 * fat_sub
        B_lean = P["B_thor"] * (1 - wl) + P["B_lum"] * wl
        fat_ant = fat_sub * (1 + 1.2 * wl * P["belly"])
        ap = 2 * B_lean + 0.7 * fat_sub + fat_ant
        B_post = 0.46 * ap
        return {"b": b, "wl": wl, "fat": fat_sub, "fat_ant": fat_ant, "back_d": back_d,
                "B_post": B_post, "B_ant": ap - B_post}

    def _anchor(self):
        P = self.P
        lc = P["center_level"]
        lv = np.arange(_NL, dtype=float)
        c_lc = np.array([np.interp(lc, lv, self.C0[:, k]) for k in range(3)])
        td = self._trunk_dims(lc)
        ys = P["y_off"] + td["back_d"] - td["B_post"]
        xs = P["x_off"] - P["trunk_dx"]
        shift = np.array([xs, ys, P["z_anchor"]]) - c_lc
        self.C = self.C0 + shift
        self.F = [_Frame(self.C[i], self.frames[i]) for i in range(_NL)]
        self.x_ref = xs
        # the sacrum: top-plate centre
        d = self.dims
        self.s1_top = self.F[17].world((0, 0, d["H"][17] / 2))

    # ---- z-dependent lookups ----
    def level_at(self, z):
        zs = self.C[:, 2]
        z = np.asarray(z, float)
        lev = np.interp(-z, -zs, np.arange(_NL, dtype=float))
        lev = np.where(z > zs[0], (zs[0] - z) / (zs[0] - zs[1]), lev)
        lev = np.where(z < zs[-1], _NL - 1 + (zs[-1] - z) / (zs[-2] - zs[-1]), lev)
        return lev

    def z_of_level(self, lev: float) -> float:
        return float(np.interp(lev, np.arange(_NL, dtype=float), self.C[:, 2]))

    def spine_xy(self, z):
        zs = self.C[:, 2]
        return float(np.interp(-z, -zs, self.C[:, 0])), float(np.interp(-z, -zs, self.C[:, 1]))

    def dim(self, key: str, lev: float) -> float:
        return float(np.interp(lev, np.arange(_NL), self.dims[key]))

    def trunk_at(self, z: float) -> dict:
        """Scalar description of the trunk cross-section at height ``z``."""
        P = self.P
        lev = float(self.level_at(z))
        T = self._trunk_dims(lev)
        xs, ys = self.spine_xy(z)
        wl = T["wl"]
        A_lean = (P["A_thor"] * (0.88 + 0.12 * _sstep(0.0, 5.0, lev))) * (1 - wl) + P["A_lum"] * wl
        # the pelvis widens the trunk below the iliac crests
        zp = z - self.s1_top[2]
        wp = float(_sstep(P["crest_z"] + 35.0, P["crest_z"] - 5.0, zp)) if lev > 14.0 else 0.0
        pel_half = 126.0 * P["pelvis_scale"] + 30.0
        A_lean = A_lean * (1 - wp) + max(A_lean, pel_half) * wp
        x_t = self.x_ref + P["trunk_dx"]
        A = min(A_lean + T["fat"], 196.0 - abs(x_t))
        y_back = ys - T["back_d"]
        T.update({
            "z": z, "lev": lev, "xs": xs, "ys": ys, "x_t": x_t, "y_t": y_back + T["B_post"], "A": A,
            "a": self.dim("W", lev) / 2, "wall": P["wall_thor"] * (1 - wl) + P["wall_lum"] * wl,
            "y_back": y_back, "pel": wp,
        })
        return T

    # ---- grid boxes ----
    def box(self, lo, hi, pad: float = 0.0):
        """Fine-grid index box (i, j, kf slices) covering the world AABB ``lo..hi``; None if empty."""
        lo = np.asarray(lo, float) - pad
        hi = np.asarray(hi, float) + pad
        n0, n1 = SHAPE_XY
        nf = self.n * SUPERSAMPLE
        i0 = int(np.floor(lo[0] / SPACING[0] + (n0 - 1) / 2)) - 1
        i1 = int(np.ceil(hi[0] / SPACING[0] + (n0 - 1) / 2)) + 2
        j0 = int(np.floor(lo[1] / SPACING[1] + (n1 - 1) / 2)) - 1
        j1 = int(np.ceil(hi[1] / SPACING[1] + (n1 - 1) / 2)) + 2
        kz = lambda zz: (zz / SPACING[2] + (self.n - 1) / 2 + 0.5) * SUPERSAMPLE - 0.5  # noqa: E731
        k0 = int(np.floor(kz(lo[2]))) - 1
        k1 = int(np.ceil(kz(hi[2]))) + 2
        i0, i1 = max(i0, 0), min(i1, n0)
        j0, j1 = max(j0, 0), min(j1, n1)
        k0, k1 = max(k0, 0), min(k1, nf)
        if i1 <= i0 or j1 <= j0 or k1 <= k0:
            return None
        return slice(i0, i1), slice(j0, j1), slice(k0, k1)

    def coords(self, sl):
        return (self.X[sl[0]][:, None, None], self.Y[sl[1]][None, :, None],
                self.zf[sl[2]].astype(np.float32)[None, None, :])


# --------------------------------------------------------------------------------------------
# soft tissue (per slice, 2D): trunk, lungs, mediastinum, abdomen
# --------------------------------------------------------------------------------------------


class _Soft:
    """Per-volume random soft-tissue extras (vessels, plaques, fields) and the slice painter."""

    def __init__(self, ctx: _Ctx, rng: np.random.Generator):
        self.ctx = ctx
        P = ctx.P
        self.h_fat = _Harmonics(rng, 0.18)
        self.h_wall = _Harmonics(rng, 0.12)
        # lung vessels: (side, dxn, dyn, drift x, drift y, z0, half length, radius)
        nv = 170
        side = np.where(rng.uniform(size=nv) < 0.5, -1.0, 1.0)
        rr = np.sqrt(rng.uniform(0.0, 1.0, size=nv))
        ang = rng.uniform(0, 2 * np.pi, size=nv)
        self.vessels = np.stack([
            side, rr * np.cos(ang), rr * np.sin(ang), rng.normal(0, 0.15, nv), rng.normal(0, 0.15, nv),
            rng.uniform(ctx.zc[0] - 30, ctx.zc[-1] + 30, nv), rng.uniform(10, 40, nv), rng.uniform(0, 1, nv),
        ], 1)
        # aortic wall calcifications: (angle, z0, half height, radius)
        ncalc = int(P["age"] ** 2 * 12)
        self.calc = np.stack([rng.uniform(0, 2 * np.pi, ncalc), rng.uniform(ctx.zc[0] - 5, ctx.zc[-1] + 5, ncalc),
                              rng.uniform(1.5, 5.0, ncalc), rng.uniform(1.0, 2.2, ncalc)], 1)
        # low-resolution random fields (bowel loops, gas, boundary jitter), upsampled per slice
        low = (SHAPE_XY[0] // 4, SHAPE_XY[1] // 4, ctx.n)
        f = rng.standard_normal((4,) + low).astype(np.float32)
        self.fields = []
        self._cache = {}
        for c, sig in enumerate(((2.6, 2.6, 2.2), (1.4, 1.4, 1.2), (4.0, 4.0, 2.0), (0.65, 0.65, 0.25))):
            g = ndi.gaussian_filter(f[c], sig, mode="wrap")
            self.fields.append(g / (g.std() + 1e-6))
        X, Y = ctx.X, ctx.Y
        self.Xg = X[:, None]
        self.Yg = Y[None, :]

    def field(self, c: int, k: int):
        """Random field ``c`` (0 bowel, 1 gas/irregularity, 2 smooth boundary jitter, 3 soft-tissue
        texture) on slice ``k``, upsampled to the full grid."""
        if (c, k) not in self._cache:
            self._cache = {key: v for key, v in self._cache.items() if key[1] == k}
            self._cache[(c, k)] = _upsample_xy(self.fields[c][:, :, k], SHAPE_XY)
        return self._cache[(c, k)]

    def layers(self, T: dict, X, Y) -> dict:
        """Depth below the skin, layer limits and the cavity mask at points ``X, Y`` (broadcast)."""
        P = self.ctx.P
        f32 = np.float32
        wl = T["wl"]
        dx, dy = X - f32(T["x_t"]), Y - f32(T["y_t"])
        ant = dy >= 0
        r_ant = np.sqrt((dx / f32(T["A"])) ** 2 + (dy / f32(T["B_ant"])) ** 2)
        r_post = np.cbrt(np.abs(dx / f32(T["A"])) ** 3 + np.abs(dy / f32(T["B_post"])) ** 3)
        r = np.where(ant, r_ant, r_post)
        rho = np.sqrt(dx * dx + dy * dy)
        depth = rho * (1.0 / np.maximum(r, 1e-3) - 1.0)
        psi = np.arctan2(np.abs(dx), -dy)  # 0 posterior, pi anterior
        psis = np.arctan2(dx, -dy)
        back = np.clip(np.cos(psi + np.pi), 0, 1)
        fat_t = T["fat"] * self.h_fat(psis) * (0.75 + 0.35 * np.sin(psi) ** 2 + 0.35 * wl * P["belly"] * back)
        w_ant = _sstep(-0.3, 0.3, dy * np.float32(1.0 / T["B_ant"]))
        fat_t = fat_t * (1.0 + w_ant * ((T["fat_ant"] / max(T["fat"], 1e-3)) ** 0.5 - 1.0))
        wall = T["wall"] * self.h_wall(psis) * (1.0 + 0.3 * (1 - wl) * back)
        d_mus = P["skin"] + fat_t
        d_cav = d_mus + wall
        xs, ys, a, b = T["xs"], T["ys"], T["a"], T["b"]
        dxs = X - f32(xs)
        adxs = np.abs(dxs)
        pl = self.ctx.dim("pl", T["lev"])
        g0 = pl + 5.0 + 3.0 * wl
        d0 = a + 10.0 + 12.0 * wl
        y_pb = ys - b - g0 - 30.0 * (np.maximum(adxs - d0, 0.0) / 40.0) ** 2
        env = ((dxs / f32(a + 3.0)) ** 2 + ((Y - f32(ys)) / f32(b + 3.0)) ** 2) < 1.0
        column = (adxs < a + 3.0) & (Y < ys)
        cav = (depth > d_cav) & (Y > y_pb) & ~env & ~column
        return {"depth": depth, "d_mus": d_mus, "d_cav": d_cav, "psi": psi, "dx": dx, "cav": cav, "env": env}

    def paint(self, k: int) -> np.ndarray:
        ctx, P = self.ctx, self.ctx.P
        z = float(ctx.zc[k])
        T = ctx.trunk_at(z)
        X, Y = self.Xg, self.Yg
        f32 = np.float32
        tis = np.zeros(SHAPE_XY, np.uint8)
        lev, wl = T["lev"], T["wl"]
        xs, ys, a, b = T["xs"], T["ys"], T["a"], T["b"]
        x_t, y_t, A = T["x_t"], T["y_t"], T["A"]
        # ---- table (under the back) ----
        if P["table"]:
            y_top = T["y_back"] - 0.5 + P["table_curv"] * X**2  # centred in the gantry, not on the patient
            dtab = y_top - Y
            tis[(dtab >= 0) & (dtab < 42)] = TABLE_FOAM
            tis[((dtab >= 0) & (dtab < 2.5)) | ((dtab >= 39.5) & (dtab < 42))] = TABLE
        # ---- trunk outline: radial depth below the skin ----
        L = self.layers(T, X, Y)
        depth, d_mus, d_cav, psi, dx = L["depth"], L["d_mus"], L["d_cav"], L["psi"], L["dx"]
        Bp, Ba = T["B_post"], T["B_ant"]
        skin = P["skin"]
        tis[depth >= 0] = SKIN
        tis[depth >= skin] = FAT
        tis[depth >= d_mus] = MUSCLE
        # abdominal wall: a fat plane between the muscle layers (lateral)
        if wl > 0:
            wpl = 0.8 * wl * _sstep(0.7, 1.2, psi) * _sstep(2.7, 2.2, psi)
            plane = np.abs(depth - 0.5 * (d_mus + d_cav)) < wpl
            tis[plane] = VISCERAL_FAT
        cav, env = L["cav"], L["env"]
        pl = ctx.dim("pl", lev)
        # erector spinae
        e_a = (20.0 + 9.0 * wl) * P["erector"]
        e_b = (20.0 + 5.0 * wl) * P["erector"]
        cw, pw = ctx.dim("cw", lev), ctx.dim("pw", lev)
        for sg in (-1.0, 1.0):
            ex = xs + sg * (cw / 2 + pw + e_a * 0.55)
            ey = ys - b - pl - 3.0 - e_b
            re = np.sqrt(((X - f32(ex)) / f32(e_a)) ** 2 + ((Y - f32(ey)) / f32(e_b)) ** 2)
            tis[(re < 1.0) & (depth > d_mus + 1.0)] = MUSCLE
        tis[env & (depth > d_mus)] = VISCERAL_FAT  # paravertebral fat (bone is painted later)
        lung_w = float(_sstep(12.8, 11.0, lev))  # lungs only in the thorax / upper abdomen
        # diaphragm: two domes (right higher) with deep posterior recesses
        dxn = dx / f32(A)
        dyn = (Y - f32(y_t)) / f32(0.5 * (Ba + Bp))
        z_dome = ctx.z_of_level(P["dome_level"])
        domes = []
        for sg, zz in ((1.0, z_dome), (-1.0, z_dome - P["dome_lr"])):
            dd = (zz - 110.0 * (dxn - f32(0.42 * sg)) ** 2 - 95.0 * np.maximum(-dyn - 0.05, 0) ** 2
                  - 45.0 * np.maximum(dyn - 0.1, 0) ** 2)
            domes.append(dd)
        z_d = _smax(domes[0], domes[1], 12.0)
        above = (z > z_d + 2.0) & (lung_w > 0)
        below = z < z_d - 3.0
        if lung_w <= 0:
            above[:] = False
            below[:] = True
        tis[cav & ~above] = VISCERAL_FAT
        tis[cav & ~above & ~below] = MUSCLE  # diaphragm
        # preperitoneal fat line inside the wall (abdomen)
        tis[cav & below & (depth < d_cav + 1.5)] = VISCERAL_FAT
        thor = cav & above
        if thor.any():
            self._thorax(tis, thor, T, z, X, Y, depth, d_cav)
        abd = cav & below
        if abd.any():
            self._abdomen(tis, abd, T, z, k, X, Y, depth, d_cav, psi, dx)
        self._vessels(tis, T, z, X, Y, cav | env)
        # retroperitoneal muscles (lumbar): psoas, quadratus lumborum
        if lev > 11.3:
            rp = (4.0 + 16.0 * float(_sstep(11.3, 16.5, lev))) * P["psoas"]
            tl = ctx.dim("tpl", lev)
            for sg in (-1.0, 1.0):
                px = xs + sg * (a + 0.8 * rp)
                py = ys + b * (0.05 + 0.6 * float(_sstep(14.0, 17.0, lev)))
                m = ((X - f32(px)) / f32(rp)) ** 2 + ((Y - f32(py)) / f32(1.15 * rp)) ** 2 < 1.0
                tis[m & (cav | env)] = MUSCLE
                if lev < 16.2:
                    qa, qb = 16.0 * P["psoas"], 10.0 * P["psoas"]
                    qx = xs + sg * (cw / 2 + pw + tl + 0.6 * qa)
                    qy = ys - b - pl + 2.0
                    m = ((X - f32(qx)) / f32(qa)) ** 2 + ((Y - f32(qy)) / f32(qb)) ** 2 < 1.0
                    tis[m & (depth > d_mus)] = MUSCLE
        return tis

    def _thorax(self, tis, thor, T, z, X, Y, depth, d_cav):
        ctx, P = self.ctx, self.ctx.P
        f32 = np.float32
        lev, xs, ys, a, b = T["lev"], T["xs"], T["ys"], T["a"], T["b"]
        x_t, y_t = T["x_t"], T["y_t"]
        tis[thor] = LUNG
        # mediastinum: a band from the spine to the sternum
        y_front = y_t + T["B_ant"] - P["skin"] - T["fat_ant"] - T["wall"]
        t = np.clip((Y - f32(ys + b)) / f32(max(y_front - ys - b, 10.0)), 0.0, 1.0)
        hw = (a + 7.0) * (1 - t) + 16.0 * t
        xm = xs * (1 - t) + (x_t - 4.0) * t
        med = thor & (np.abs(X - xm) < hw) & (Y > ys - 0.3 * b)
        tis[med] = VISCERAL_FAT
        # heart (ellipsoid, long axis to the anterior left) with pericardial fat
        s = P["size"]
        zh = ctx.z_of_level(P["heart_level"])
        ch = 60.0 * s
        if abs(z - zh) < ch:
            k = np.sqrt(1.0 - ((z - zh) / ch) ** 2)
            hx, hy = x_t - 22.0 * s, ys + b + 58.0 * s
            ca, sa = np.cos(np.deg2rad(35)), np.sin(np.deg2rad(35))
            ddx, ddy = X - f32(hx), Y - f32(hy)
            p1 = (ddx * f32(ca) + ddy * f32(sa)) / f32(60.0 * s * k)
            p2 = (-ddx * f32(sa) + ddy * f32(ca)) / f32(45.0 * s * k)
            rh = np.sqrt(p1 * p1 + p2 * p2)
            m = thor & (rh < 1.0 + 4.0 / (45.0 * s * k))
            tis[m] = VISCERAL_FAT
            tis[m & (rh < 1.0)] = HEART
        # great vessels above the heart: ascending aorta, pulmonary trunk, SVC; aortic arch
        if abs(z - zh) > 0.7 * ch:
            # (x offset from the trunk centre, y offset from the body front, radius, level range)
            for ox, oy, r, l0, l1 in ((10.0, 62.0, 15.0, 4.0, 7.2), (-14.0, 55.0, 13.0, 4.6, 6.8),
                                      (32.0, 45.0, 10.0, 3.4, 7.2)):
                if l0 < lev < l1:
                    m = ((X - f32(x_t + ox * s)) ** 2 + (Y - f32(ys + b + oy * s)) ** 2) < (r * s) ** 2
                    tis[m & thor] = BLOOD
        if 2.6 < lev < 3.8:
            # arch: a sausage from the ascending (anterior right) to the descending (posterior left) aorta
            p = _ecaps(X[:, :, None], Y[:, :, None], np.float32(0.0), (x_t + 10.0 * s, ys + b + 60 * s, 0),
                       (xs - a - 10.0, ys + 0.2 * b, 0), 13.0 * s, 13.0 * s)[:, :, 0]
            tis[(p < 0) & thor] = BLOOD
        # trachea / main bronchi
        cl = P["carina_level"]
        if lev < cl + 1.2:
            ty = ys + b + 20.0 * s
            pos = [(xs + 2.0, 9.5 * s, 7.8 * s)] if lev < cl else [
                (xs + 2.0 + sg * (8.0 + 24.0 * (lev - cl)), 6.8 * s, 5.0 * s) for sg in (-1.0, 1.0)]
            for (px, ro, ri) in pos:
                rr = (X - f32(px)) ** 2 + (Y - f32(ty)) ** 2
                tis[(rr < ro * ro) & thor] = MUSCLE
                tis[(rr < ri * ri) & thor] = AIRWAY
        # esophagus (left of the midline, in front of the spine)
        ex, ey = xs - 5.0, ys + b + 7.0
        rr = ((X - f32(ex)) / 9.0) ** 2 + ((Y - f32(ey)) / 6.5) ** 2
        tis[(rr < 1.0) & (thor | (Y > ys))] = MUSCLE
        # lung vessels
        A_in = T["A"] - P["skin"] - T["fat"] - T["wall"]
        B_in = 0.5 * (T["B_ant"] + T["B_post"]) - T["fat"] - T["wall"]
        lung = tis == LUNG
        for side, xn, yn, ddx, ddy, z0, hl, rr0 in self.vessels.tolist():
            if abs(z - z0) > hl:
                continue
            cx = x_t + side * (0.18 + 0.75 * (0.5 + 0.5 * xn)) * A_in + ddx * (z - z0)
            cy = y_t + 0.8 * yn * B_in + ddy * (z - z0)
            rad = 0.8 + 2.6 * rr0 * (1.0 - 0.6 * (0.5 + 0.5 * xn))
            i0 = int((cx - rad) / SPACING[0] + 255.5)
            j0 = int((cy - rad) / SPACING[1] + 255.5)
            n_ = int(2 * rad / SPACING[0]) + 3
            if i0 < 0 or j0 < 0 or i0 + n_ > SHAPE_XY[0] or j0 + n_ > SHAPE_XY[1]:
                continue
            xx = self.ctx.X[i0:i0 + n_][:, None] - cx
            yy = self.ctx.Y[j0:j0 + n_][None, :] - cy
            m = (xx * xx + yy * yy < rad * rad) & lung[i0:i0 + n_, j0:j0 + n_]
            tis[i0:i0 + n_, j0:j0 + n_][m] = BLOOD

    def _abdomen(self, tis, abd, T, z, k, X, Y, depth, d_cav, psi, dx):
        ctx, P = self.ctx, self.ctx.P
        f32 = np.float32
        lev, xs, ys, a, b = T["lev"], T["xs"], T["ys"], T["a"], T["b"]
        x_t, y_t, A = T["x_t"], T["y_t"], T["A"]
        s = P["size"]
        dxn = dx / f32(A)
        dyn = (Y - f32(y_t)) / f32(T["B_ant"])
        depth_in = depth - d_cav
        organ = np.zeros(SHAPE_XY, bool)
        # liver: right side, shrinking towards its inferior tip
        z_top = ctx.z_of_level(P["dome_level"])
        z_tip = ctx.z_of_level(P["liver_tip_level"])
        if z < z_top + 5 and z > z_tip:
            fr = float(np.clip((z_top - z) / max(z_top - z_tip, 1.0), 0.0, 1.0))
            up = float(_sstep(0.45, 0.1, fr))
            cut = (-0.12 - 0.45 * up * np.clip(dyn, 0, 1) + 0.75 * fr**1.6 + 0.3 * (dyn - 0.1) ** 2
                   + 0.05 * self.field(2, k))
            thick = 220.0 * (1.0 - fr) ** 1.5 + 18.0
            m = abd & (dxn > cut) & (depth_in < thick)
            m &= ((X - f32(xs)) / f32(a + 24.0)) ** 2 + ((Y - f32(ys)) / f32(b + 20.0)) ** 2 > 1.0
            tis[m] = LIVER
            organ |= m
        # spleen: left posterolateral, against the wall
        zs_ = ctx.z_of_level(P["spleen_level"])
        cs = 52.0 * s
        if abs(z - zs_) < cs:
            kk = np.sqrt(1.0 - ((z - zs_) / cs) ** 2)
            ang = np.exp(-(((psi - 1.15) / 0.55) ** 2))
            m = abd & (dxn < -0.2) & (depth_in < 38.0 * s * kk * ang)
            tis[m] = SPLEEN
            organ |= m
        # stomach: left upper quadrant, gas anteriorly
        zst = ctx.z_of_level(P["stomach_level"])
        cst = 60.0 * s
        if abs(z - zst) < cst:
            kk = np.sqrt(1.0 - ((z - zst) / cst) ** 2)
            sx, sy = x_t - 0.33 * A, y_t + 0.12 * T["B_ant"]
            rr = np.sqrt(((X - f32(sx)) / f32(48.0 * s * kk)) ** 2 + ((Y - f32(sy)) / f32(40.0 * s * kk)) ** 2)
            rr = rr + 0.08 * self.field(1, k)
            m = abd & (rr < 1.0) & ~organ
            tis[m] = BOWEL
            tis[m & (rr < 1.0 - 3.0 / (40.0 * s * kk))] = BOWEL_CONTENT
            if P["stomach_gas"]:
                tis[m & (rr < 0.9) & (Y > sy + 12.0 * s * kk)] = GAS
            organ |= m
        # kidneys (with renal sinus fat, hilum anteromedial)
        for sg, key in ((1.0, "kidney_r_level"), (-1.0, "kidney_l_level")):
            zk = ctx.z_of_level(P[key])
            ck = 52.0 * s
            if abs(z - zk) >= ck:
                continue
            kk = np.sqrt(1.0 - ((z - zk) / ck) ** 2)
            kx, ky = xs + sg * (a + 46.0 * s), ys - 0.1 * b - 2.0
            th = np.deg2rad(sg * 35.0)
            ddx, ddy = X - f32(kx), Y - f32(ky)
            p1 = (ddx * f32(np.cos(th)) + ddy * f32(np.sin(th))) / f32(30.0 * s * kk)
            p2 = (-ddx * f32(np.sin(th)) + ddy * f32(np.cos(th))) / f32(20.0 * s * kk)
            rk = p1 * p1 + p2 * p2
            m = (rk < 1.0) & (abd | (tis == VISCERAL_FAT))
            tis[m & (depth > d_cav)] = KIDNEY
            hx, hy = kx - sg * 12.0 * s, ky + 8.0 * s
            rs = ((X - f32(hx)) ** 2 + (Y - f32(hy)) ** 2) < (9.0 * s * kk) ** 2
            tis[m & rs & (depth > d_cav)] = VISCERAL_FAT
            organ |= m
        # colon (ascending right, descending left) with feces and gas
        if lev > 12.5:
            for ci, sg in enumerate((-1.0, 1.0)):
                rc, asp, gas, off = P["colon"][ci].tolist()
                rc *= s
                cx = x_t + sg * (0.6 * A + off) + 6.0 * np.sin(0.05 * z + sg)
                cy = y_t - 0.1 * T["B_ant"] + 6.0 * np.cos(0.04 * z + off)
                rr = ((X - f32(cx)) / f32(rc * asp)) ** 2 + ((Y - f32(cy)) / f32(rc / asp)) ** 2
                m = abd & (rr < 1.0) & ~organ
                tis[m] = BOWEL
                fe = m & (rr < 0.75)
                tis[fe] = FECES
                if gas > 0:
                    tis[fe & (Y > cy + (1.0 - 2.0 * gas) * rc / asp)] = GAS
                organ |= m
        # small bowel: tubular loops along the zero crossings of a random field, some with gas
        if lev > 11.3:
            fb = self.field(0, k)
            fg = self.field(1, k)
            fn = self.field(2, k)
            lim = ys + b + 4.0 - 35.0 * np.clip((np.abs(X - xs) - (a + 25.0)) / 60.0, 0, 1) + 6.0 * fn
            reg = abd & ~organ & (Y > lim)
            afb = np.abs(fb)
            bw = P["bowel_width"]
            loops = reg & (afb < bw)
            tis[loops] = BOWEL
            tis[loops & (afb < 0.55 * bw)] = BOWEL_CONTENT
            tis[loops & (afb < 0.6 * bw) & (fg > P["gas_thr"])] = GAS

    def _vessels(self, tis, T, z, X, Y, where):
        P = self.ctx.P
        f32 = np.float32
        lev, xs, ys, a, b = T["lev"], T["xs"], T["ys"], T["a"], T["b"]
        s = P["size"]
        if lev < 3.0:
            return
        tA = float(_sstep(6.0, 12.5, lev))
        r = P["aorta_r"] * (1.0 - 0.22 * tA)
        ax = xs - ((a + r) * 0.95 * (1 - tA) + 0.35 * a * tA)
        ay = ys + 0.15 * b * (1 - tA) + (b + r + 2.0) * tA
        if lev < 15.6:
            centres = [(ax, ay, r)]
        else:  # bifurcation into the common iliac arteries
            sp = 18.0 * (lev - 15.6) + 6.0
            centres = [(ax + sp, ay + 2.0, 0.65 * r), (ax - sp + 8.0, ay + 2.0, 0.65 * r)]
        for cx, cy, rc in centres:
            rr = (X - f32(cx)) ** 2 + (Y - f32(cy)) ** 2
            tis[(rr < rc * rc) & where] = BLOOD
            if len(centres) == 1:
                for ang, z0, hh, rcal in self.calc.tolist():
                    if abs(z - z0) < hh:
                        px, py = cx + (rc - 0.8) * np.cos(ang), cy + (rc - 0.8) * np.sin(ang)
                        tis[((X - f32(px)) ** 2 + (Y - f32(py)) ** 2 < rcal**2) & where] = CALCIFICATION
        # IVC (abdomen) and azygos (thorax)
        if lev > 9.8:
            ix, iy = xs + a * 0.55 + 10.0 * s, ys + b + 12.0 * s
            m = (((X - f32(ix)) / f32(13.0 * s)) ** 2 + ((Y - f32(iy)) / f32(9.0 * s)) ** 2) < 1.0
            tis[m & (where | (tis == LIVER))] = BLOOD
        if lev < 12.0:
            m = ((X - f32(xs + 0.45 * a)) ** 2 + (Y - f32(ys + 0.55 * b)) ** 2) < 16.0
            tis[m & where] = BLOOD


# --------------------------------------------------------------------------------------------
# vertebrae, discs and canal (3D, on the fine grid)
# --------------------------------------------------------------------------------------------


def _clip_box(sl, box):
    """Intersection of two index boxes (None if empty or if ``sl`` is None)."""
    if sl is None:
        return None
    out = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(sl, box))
    return None if any(s.stop <= s.start for s in out) else out


def _body_sdf(u, v, w, a, b, H, dip, waist, conc, wedge):
    """Vertebral body: rounded superelliptic cylinder with a waist, concave endplates, a posterior
    concavity and an anterior/posterior wedge."""
    f32 = np.float32
    hw = H / 2
    wn = w * f32(1.0 / hw)
    aa = f32(a) * (1.0 - f32(waist) * np.clip(1.0 - wn * wn, 0.0, 1.0))
    vv = v - f32(conc) * np.exp(-((u * f32(1.0 / (0.45 * a))) ** 2)) * (v < 0)
    un, vn = u / aa, vv * f32(1.0 / b)
    r = np.where(vv >= 0, np.sqrt(un * un + vn * vn), np.cbrt(np.abs(un) ** 3 + np.abs(vn) ** 3))
    sd2 = (r - 1.0) * np.minimum(aa, f32(b))
    rc = np.clip(r, 0.0, 1.0)
    hh = f32(hw) - f32(dip) * (1.0 - rc * rc) + f32(wedge) * np.clip(vn, -1.0, 1.0)
    return _smax(sd2, np.abs(w) - hh, 1.5), r


class _Spine:
    """Vertebral bone (implicit, smooth union), discs and canal on the fine grid around the spine."""

    def __init__(self, ctx: _Ctx):
        self.ctx = ctx
        zlo, zhi = ctx.zf[0] - 4.0, ctx.zf[-1] + 4.0
        zc = ctx.C[:, 2]
        self.levels = [i for i in range(_NL) if zlo - 60.0 < zc[i] < zhi + 60.0]
        self.comps = []  # (box, fn(x, y, z) -> sdf, level)
        for i in self.levels:
            self._vertebra(i)

    def _add(self, i, lo, hi, fn, pad=1.5):
        F = self.ctx.F[i]
        wlo, whi = F.aabb(lo, hi)
        box = self.ctx.box(wlo, whi, pad)
        if box is not None:
            self.comps.append((box, fn, i))

    def _vertebra(self, i):
        d, F = self.ctx.dims, self.ctx.F[i]
        a, b, H = d["W"][i] / 2, d["D"][i] / 2, d["H"][i]
        cw, cd, pw, ph, pl = d["cw"][i], d["cd"][i], d["pw"][i], d["ph"][i], d["pl"][i]
        lt, lh = d["lt"][i], d["lh"][i]
        disc_below = d["disc"][i]
        disc_above = d["disc"][i - 1] if i > 0 else 4.0
        wl = float(_sstep(10.5, 12.5, i))
        sac = i == _NL - 1
        dip = 0.04 * H if not sac else 0.5
        wedge = (-0.03 + 0.07 * wl) * H if i < 16 else 0.08 * H
        waist = 0.05 if not sac else 0.0
        if sac:
            def body(x, y, z, F=F):
                u, v, w = F.local(x, y, z)
                # the sacrum narrows caudally
                sc = 1.0 - 0.35 * np.clip(0.5 - w / H, 0.0, 1.0)
                return _body_sdf(u / sc, v, w, a, b, H, dip, waist, 2.0, 0.0)[0] * np.minimum(sc, 1.0)
        else:
            def body(x, y, z, F=F):
                u, v, w = F.local(x, y, z)
                return _body_sdf(u, v, w, a, b, H, dip, waist, 2.0, wedge)[0]
        self._add(i, (-a - 1, -b - 1, -H / 2 - 1), (a + 1, b + 1, H / 2 + 1), body)
        caps = []  # (A, B, rh, rv, rh1, rv1) in the local frame
        w_p = H / 2 - ph / 2 - 1.0 if not sac else H / 2 - 8.0
        if not sac:
            for sg in (-1.0, 1.0):
                ux = cw / 2 + pw / 2
                caps.append(((sg * (ux - 0.5), -b + 4.0, w_p), (sg * (ux + 1.0), -b - pl, w_p),
                             pw / 2, ph / 2, None, None))
        w_lam = w_p - 3.0 if not sac else H / 2 - 14.0
        s_base = (0.0, -b - cd - lt / 2, w_lam)
        for sg in (-1.0, 1.0):
            j = (sg * (cw / 2 + pw / 2), -b - pl - 1.0, w_lam)
            caps.append((j, s_base, lt / 2, lh / 2, None, None))
        # spinous process
        al = np.deg2rad(d["spa"][i])
        sp0 = (0.0, -b - cd - lt / 2 + 2.0, w_lam)
        tip = (0.0, sp0[1] - d["spl"][i] * np.cos(al), w_lam - d["spl"][i] * np.sin(al))
        club = 1.25 if i < 12 else 1.05
        caps.append((sp0, tip, d["spt"][i] / 2, d["sph"][i] / 2, d["spt"][i] / 2 * club, d["sph"][i] / 2 * club))
        # transverse processes
        if d["tpl"][i] > 0:
            ga = np.deg2rad(d["tpa"][i])
            w_tp = w_p - (1.0 if i < 12 else 0.25 * H)
            for sg in (-1.0, 1.0):
                r0 = np.array([sg * (cw / 2 + pw), -b - pl + 1.0, w_tp])
                tipp = r0 + d["tpl"][i] * np.array([sg * np.cos(ga), -np.sin(ga), 0.06])
                rh, rv = d["tprh"][i], d["tprv"][i]
                club = 1.2 if i < 11 else 1.0
                caps.append((tuple(r0), tuple(tipp), rh, rv, rh * club, rv * club))
        # articular processes (facet joints): thoracic coronal, lumbar sagittal
        du_s, dv_s = 3.0 * wl, 2.0 * (1 - wl)
        du_i, dv_i = -4.8 * wl, -4.8 * (1 - wl)
        for sg in (-1.0, 1.0):
            ux = cw / 2 + pw / 2 + 1.5
            sa = (sg * (ux + du_s), -b - pl - 1.0 + dv_s, w_p)
            sb = (sg * (ux + du_s + 0.5), -b - pl - 2.0 + dv_s, H / 2 + disc_above * 0.5 + 3.0)
            caps.append((sa, sb, 3.6, 4.6, None, None))
            if not sac:
                ia = (sg * (ux + du_i), -b - pl - 5.0 + dv_i, w_lam - 2.0)
                ib = (sg * (ux + du_i), -b - pl - 6.5 + dv_i, -H / 2 - disc_below * 0.5 - 3.0)
                caps.append((ia, ib, 3.2, 4.4, None, None))
        if sac:
            # alae (lateral masses to the sacroiliac joints) and the fused posterior plate
            for sg in (-1.0, 1.0):
                caps.append(((sg * a * 0.4, -b * 0.3, H / 2 - 12.0), (sg * (a + 22.0), -b * 0.55, H / 2 - 13.0),
                             14.0, 11.0, 13.0, 12.0))
                caps.append(((sg * (a + 18.0), -b * 0.6, H / 2 - 14.0), (sg * (a + 14.0), -b * 0.8, -H / 2 + 6.0),
                             9.0, 14.0, 7.0, 11.0))
                caps.append(((sg * (cw / 2 + 4.0), -b - 3.0, H / 2 - 10.0),
                             (sg * (cw / 2 + 5.0), -b - 6.0, -H / 2 + 6.0), 5.0, 9.0, None, None))
        for (pa, pb, rh, rv, rh1, rv1) in caps:
            pa, pb = np.asarray(pa, float), np.asarray(pb, float)
            rmax = max(rh, rv, rh1 or 0, rv1 or 0)
            lo, hi = np.minimum(pa, pb) - rmax, np.maximum(pa, pb) + rmax

            def fn(x, y, z, F=F, pa=pa, pb=pb, rh=rh, rv=rv, rh1=rh1, rv1=rv1):
                u, v, w = F.local(x, y, z)
                return _ecaps(u, v, w, pa, pb, rh, rv, rh1=rh1, rv1=rv1)

            self._add(i, lo, hi, fn)

    def build(self, tissue: np.ndarray):
        """Paint canal contents, discs and vertebral bone into the fine tissue map (in place).

        Returns ``(box, vertebra_id)``: the box of the spine region and the level index + 1 of every
        vertebral bone voxel in it (0 elsewhere).
        """
        ctx, P, d = self.ctx, self.ctx.P, self.ctx.dims
        if not self.comps:
            return None, None
        lo = [min(c[0][a].start for c in self.comps) for a in range(3)]
        hi = [max(c[0][a].stop for c in self.comps) for a in range(3)]
        box = tuple(slice(l_, h_) for l_, h_ in zip(lo, hi))
        shape = tuple(h_ - l_ for l_, h_ in zip(lo, hi))
        acc = np.full(shape, 1e3, np.float32)
        vid = np.zeros(shape, np.uint8)
        for sl, fn, i in self.comps:
            loc = tuple(slice(s.start - o, s.stop - o) for s, o in zip(sl, lo))
            sdf = fn(*ctx.coords(sl))
            cur = acc[loc]
            closer = sdf < cur
            vid[loc][closer] = i + 1
            acc[loc] = _smin(cur, sdf, 1.5)
        bone = acc < 0
        sub = tissue[box]
        # canal (per vertebra, along its axis over the body and half of each disc)
        for i in self.levels:
            F = ctx.F[i]
            a, b, H = d["W"][i] / 2, d["D"][i] / 2, d["H"][i]
            cw, cd = d["cw"][i], d["cd"][i]
            w0 = -H / 2 - d["disc"][i] / 2 - 0.5
            w1 = H / 2 + (d["disc"][i - 1] if i > 0 else 4.0) / 2 + 0.5
            if i == _NL - 1:
                cd, w0 = cd * 0.8, -H / 2
            vc = -b - cd / 2 + 1.0
            wlo, whi = F.aabb((-cw / 2, vc - cd / 2, w0), (cw / 2, vc + cd / 2, w1))
            sl = _clip_box(ctx.box(wlo, whi, 1.0), box)
            if sl is None:
                continue
            loc = tuple(slice(s.start - o, s.stop - o) for s, o in zip(sl, lo))
            u, v, w = F.local(*ctx.coords(sl))
            rc = (u * np.float32(2.0 / cw)) ** 2 + ((v - np.float32(vc)) * np.float32(2.0 / cd)) ** 2
            inw = (w >= w0) & (w <= w1)
            canal = (rc < 1.0) & inw & ~bone[loc]
            t = sub[loc]
            t[canal] = VISCERAL_FAT  # epidural fat
            sac_ = (rc < 0.62) & canal
            t[sac_] = CSF
            if i < 13:
                cord_w = _sstep(13.0, 12.2, i + 0.5 - w / H) if i >= 11 else 1.0
                rcord = ((u * np.float32(1 / 4.6)) ** 2 + ((v - np.float32(vc + 1.2)) * np.float32(1 / 3.6)) ** 2)
                t[sac_ & (rcord < cord_w)] = CORD
        # discs between consecutive bodies
        for i in self.levels:
            j = i + 1
            if j not in self.levels:
                continue
            Fi, Fj = ctx.F[i], ctx.F[j]
            ai, bi, Hi = d["W"][i] / 2, d["D"][i] / 2, d["H"][i]
            aj, bj, Hj = d["W"][j] / 2, d["D"][j] / 2, d["H"][j]
            if j == _NL - 1:
                aj, bj = ai * 1.0, bi * 1.0
            pi_ = Fi.world((0, 0, -Hi / 2))
            pj_ = Fj.world((0, 0, Hj / 2))
            Rm = 0.5 * (Fi.R + Fj.R)
            q_, r_ = np.linalg.qr(Rm)
            Rm = q_ * np.sign(np.diag(r_))[None, :]
            Fm = _Frame(0.5 * (pi_ + pj_), Rm)
            ad, bd = 0.5 * (ai + aj) + 1.0, 0.5 * (bi + bj) + 1.0
            gap = float(np.linalg.norm(pi_ - pj_))
            hh = gap / 2 + 0.08 * max(Hi, Hj) + 6.0
            wlo, whi = Fm.aabb((-ad, -bd, -hh), (ad, bd, hh))
            sl = _clip_box(ctx.box(wlo, whi, 1.0), box)
            if sl is None:
                continue
            loc = tuple(slice(s.start - o, s.stop - o) for s, o in zip(sl, lo))
            xyz = ctx.coords(sl)
            um, vm, wm = Fm.local(*xyz)
            vv = vm - np.float32(2.0) * np.exp(-((um * np.float32(1 / (0.45 * ad))) ** 2)) * (vm < 0)
            rd = np.sqrt((um * np.float32(1 / ad)) ** 2 + (vv * np.float32(1 / bd)) ** 2)
            wi = Fi.local(*xyz)[2]
            wj = Fj.local(*xyz)[2]
            rc = np.clip(rd, 0, 1)
            disc = (rd < 1.0) & (wi <= -Hi / 2 + 0.06 * Hi * (1 - rc * rc) + 1.0)
            disc &= wj >= Hj / 2 - 0.06 * Hj * (1 - rc * rc) - 1.0
            disc &= ~bone[loc]
            t = sub[loc]
            disc &= (t != CSF) & (t != CORD)
            t[disc] = DISC_ANNULUS
            t[disc & (rd < 0.55) & (np.abs(wm) < 0.35 * gap + 1.0)] = DISC_NUCLEUS
        # keep a joint space between the spine and ribs / ilium
        near = acc < 1.6
        other = np.isin(sub, _OTHER_BONE) & near & ~bone
        sub[other] = MUSCLE
        # cortex / cancellous core from the exact distance to the bone surface
        ii = np.nonzero(bone.any(axis=(1, 2)))[0]
        jj = np.nonzero(bone.any(axis=(0, 2)))[0]
        kk = np.nonzero(bone.any(axis=(0, 1)))[0]
        if len(ii):
            bb = (slice(max(ii[0] - 1, 0), ii[-1] + 2), slice(max(jj[0] - 1, 0), jj[-1] + 2),
                  slice(max(kk[0] - 1, 0), kk[-1] + 2))
            sub_b = bone[bb]
            edt = ndi.distance_transform_edt(sub_b, sampling=(SPACING[0], SPACING[1], ctx.dzf))
            cort = sub_b & (edt <= P["cortex_t"])
            sacral = vid[bb] == _NL
            t = sub[bb]
            t[sub_b] = CANCELLOUS
            t[cort] = CORTICAL
            t[sub_b & sacral & ~cort] = SACRUM_MARROW
            t[cort & sacral] = SACRUM_CORTEX
        vid[~bone] = 0
        return box, vid


# --------------------------------------------------------------------------------------------
# ribs, costal cartilage, sternum, pelvis (3D, on the fine grid)
# --------------------------------------------------------------------------------------------


def _paint_caps_chain(ctx: _Ctx, tissue, pts, rh, rv, marrow, cortex, cort_t=0.9):
    """Paint a chain of elliptic capsules through ``pts`` (world mm, with per-point radii)."""
    zlo, zhi = ctx.zf[0] - 1.0, ctx.zf[-1] + 1.0
    for j in range(len(pts) - 1):
        pa, pb = pts[j], pts[j + 1]
        r = max(rh[j], rv[j], rh[j + 1], rv[j + 1])
        if max(pa[2], pb[2]) + r < zlo or min(pa[2], pb[2]) - r > zhi:
            continue
        if np.linalg.norm(pb - pa) < 1e-3:
            continue
        sl = ctx.box(np.minimum(pa, pb) - r, np.maximum(pa, pb) + r, 0.5)
        if sl is None:
            continue
        sdf = _ecaps(*ctx.coords(sl), pa, pb, rh[j], rv[j], rh1=rh[j + 1], rv1=rv[j + 1])
        t = tissue[sl]
        inside = sdf < 0
        if cortex is None:
            t[inside & ~np.isin(t, _BONE_MARROW + _BONE_CORTEX)] = marrow
            continue
        t[inside & (t != marrow)] = cortex
        t[inside & (sdf < -cort_t)] = marrow


def _lung_centre(T: dict, side: float):
    """A point in the middle of one half of the chest cavity (rib paths are traced around it)."""
    return T["x_t"] + side * 0.45 * T["A"], T["y_t"] - 0.1 * T["B_post"]


def _cavity_edge(ctx: _Ctx, T: dict, phi, side: float, soft: _Soft) -> np.ndarray:
    """Points ``(m, 2)`` where rays from the lung centre at angles ``phi`` (0 posterior, pi/2
    lateral, pi anterior) leave the chest cavity."""
    cx, cy = _lung_centre(T, side)
    phi = np.atleast_1d(np.asarray(phi, float))
    rho = np.arange(0.0, 260.0, 0.5)
    ex, ey = side * np.sin(phi)[:, None], -np.cos(phi)[:, None]
    x, y = cx + rho[None, :] * ex, cy + rho[None, :] * ey
    cav = soft.layers(T, x.astype(np.float32), y.astype(np.float32))["cav"]
    first_out = np.argmin(cav, axis=1)  # first sample outside the cavity
    first_out = np.where(cav.all(axis=1), len(rho) - 1, np.maximum(first_out - 1, 0))
    r = rho[first_out]
    return np.stack([cx + r * ex[:, 0], cy + r * ey[:, 0]], 1), r


def _paint_ribs(ctx: _Ctx, tissue, soft: _Soft):
    """Ribs 1-12 (cortex + marrow) from the costovertebral joints around the chest wall, and the
    costal cartilages."""
    d, P = ctx.dims, ctx.P
    zlo, zhi = ctx.zf[0], ctx.zf[-1]

    def edge_point(z, phi, sg, extra):
        T = ctx.trunk_at(float(z))
        _, r = _cavity_edge(ctx, T, [phi], sg, soft)
        cx, cy = _lung_centre(T, sg)
        rr = float(r[0]) + extra
        x, y = cx + rr * sg * np.sin(phi), cy - rr * np.cos(phi)
        psi = float(np.arctan2(abs(x - T["x_t"]), -(y - T["y_t"])))
        return np.array([x, y, z]), psi

    for k in range(12):
        F = ctx.F[k]
        H = d["H"][k]
        z_head = F.world((0, 0, H / 2))[2]
        drop = _RIB_DROP[k] * P["size"]
        if z_head < zlo - 12.0 or z_head - drop - 20.0 > zhi:
            continue
        a, b = d["W"][k] / 2, d["D"][k] / 2
        cw, pw, pl = d["cw"][k], d["pw"][k], d["pl"][k]
        ga = np.deg2rad(d["tpa"][k])
        rh_r, rv_r = _RIB_T[k] / 2 * P["size"] ** 0.5, _RIB_H[k] / 2 * P["size"] ** 0.5
        psi_e = np.deg2rad(_RIB_END[k])
        for sg in (-1.0, 1.0):
            head = F.world((sg * (a - 1.0), -0.55 * b, H / 2 - 1.5))
            w_tp = H / 2 - d["ph"][k] / 2 - 2.0
            r0 = np.array([sg * (cw / 2 + pw), -b - pl + 1.0, w_tp])
            tipl = r0 + d["tpl"][k] * np.array([sg * np.cos(ga), -np.sin(ga), 0.06])
            tub = F.world(tipl + np.array([sg * 1.0, d["tprh"][k] + rh_r + 0.8, -2.0]))
            T = ctx.trunk_at(float(tub[2]))
            cx, cy = _lung_centre(T, sg)
            p_ang = (tub[0] + sg * 14.0, tub[1] - 5.0)
            phi = float(np.arctan2(sg * (p_ang[0] - cx), -(p_ang[1] - cy)))
            p0, psi_s = edge_point(tub[2] - 2.0, phi, sg, rh_r + 0.7)
            pts = [head, tub, p0]
            psi_prev, z = psi_s, tub[2] - 2.0
            step = np.deg2rad(11.0)
            dz = 0.0
            for _ in range(40):
                phi += step
                # the chest outline is taken at the height predicted from the previous step
                pt, psi = edge_point(z + dz, phi, sg, rh_r + 0.7)
                fr = min(max((psi - psi_s) / max(psi_e - psi_s, 0.1), 0.0), 1.0)
                z_new = tub[2] - 2.0 - drop * fr**1.2
                dz, z = z_new - z, z_new
                pt[2] = z
                if psi >= psi_e or phi > np.pi * 0.98:
                    # shorten the last step to end at psi_e
                    frac = (psi_e - psi_prev) / max(psi - psi_prev, 1e-6)
                    if 0.05 < frac < 1.0:
                        pt = pts[-1] + frac * (pt - pts[-1])
                    if frac > 0.05:
                        pts.append(pt)
                    break
                pts.append(pt)
                psi_prev = psi
            pts = np.asarray(pts)
            path = _catmull_rom(pts, 8.0)
            # radii: rounder neck near the spine, flat ribbon around the chest
            cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
            s_t = float(np.linalg.norm(pts[1] - pts[0]))
            blend = _sstep(s_t, s_t + 30.0, cum)
            rh = 3.6 * (1 - blend) + rh_r * blend
            rv = 4.2 * (1 - blend) + rv_r * blend
            _paint_caps_chain(ctx, tissue, path, rh, rv, RIB_MARROW, RIB_CORTEX, 0.9)
            # costal cartilage towards the sternum
            if _RIB_CART[k]:
                end = path[-1]
                rise = 5.0 * max(k - 3, 0)
                Te = ctx.trunk_at(float(end[2] + rise))
                if _RIB_CART[k] == 1:
                    y_st = Te["y_t"] + Te["B_ant"] - P["skin"] - Te["fat_ant"] - 7.0
                    tgt = np.array([Te["x_t"] + sg * 14.0 * P["size"], y_st, end[2] + rise])
                else:
                    tgt, _ = edge_point(end[2] + rise, min(phi + 0.35, np.pi * 0.97), sg, rh_r)
                mid = 0.5 * (end + tgt)
                Tm = ctx.trunk_at(float(mid[2]))
                cxm, cym = _lung_centre(Tm, sg)
                phm = float(np.arctan2(sg * (mid[0] - cxm), -(mid[1] - cym)))
                mid, _ = edge_point(mid[2], phm, sg, rh_r)
                cpath = _catmull_rom(np.array([end, mid, tgt]), 8.0)
                nn = len(cpath)
                _paint_caps_chain(ctx, tissue, cpath, np.full(nn, rh_r * 1.1), np.full(nn, rv_r * 0.9),
                                  COSTAL_CARTILAGE, None)


def _paint_sternum(ctx: _Ctx, tissue):
    P = ctx.P
    z_top, z_bot = ctx.z_of_level(2.3), ctx.z_of_level(9.8)
    for kf, z in enumerate(ctx.zf):
        if not (z_bot < z < z_top):
            continue
        T = ctx.trunk_at(float(z))
        fr = (z_top - z) / (z_top - z_bot)
        hw = (24.0 - 10.0 * _sstep(0.0, 0.25, fr) - 8.0 * _sstep(0.85, 1.0, fr)) * P["size"]
        ht = 5.5 - 2.0 * _sstep(0.85, 1.0, fr)
        yc = T["y_t"] + T["B_ant"] - P["skin"] - T["fat_ant"] - 7.0
        xc = T["x_t"]
        sl = ctx.box((xc - hw - 2, yc - ht - 2, z), (xc + hw + 2, yc + ht + 2, z))
        if sl is None:
            continue
        x = ctx.X[sl[0]][:, None] - np.float32(xc)
        y = ctx.Y[sl[1]][None, :] - np.float32(yc)
        qx = np.maximum(np.abs(x) - np.float32(hw - ht), 0.0)
        sd = np.sqrt(qx * qx + y * y) - np.float32(ht)
        t = tissue[sl[0], sl[1], kf]
        t[sd < 0] = STERNUM_CORTEX
        t[sd < -1.1] = STERNUM_MARROW


def _paint_pelvis(ctx: _Ctx, tissue):
    """Iliac wings (with iliacus/gluteal muscles) down to the sacroiliac joints.

    In the axial plane each wing is an arc concave towards the anteromedial side (iliac fossa), from
    the posterior superior iliac spine next to the sacrum to the anterior superior iliac spine; the
    crest is highest over the posterior half. Below the top of S1 the posterior part thickens medially
    towards the sacral ala (the joint space is cut out later around the sacrum).
    """
    P = ctx.P
    s = P["pelvis_scale"]
    x0, y0, z0 = ctx.s1_top
    zc0 = P["crest_z"]
    if ctx.zf[0] > z0 + zc0 + 2.0:
        return
    ks = [kf for kf, z in enumerate(ctx.zf) if z - z0 < zc0 + 4.0]
    k0, k1 = ks[0], ks[-1] + 1
    f32 = np.float32
    for sg in (-1.0, 1.0):
        xlo, xhi = (x0 + 5.0, x0 + 175.0 * s) if sg > 0 else (x0 - 175.0 * s, x0 - 5.0)
        sl = ctx.box((xlo, y0 - 100.0 * s, ctx.zf[k0]), (xhi, y0 + 100.0 * s, ctx.zf[k1 - 1]))
        if sl is None:
            continue
        sl = (sl[0], sl[1], slice(k0, k1))
        x, y, z = ctx.coords(sl)
        zp = z - f32(z0)
        # arc of radius R around a centre anteromedial to the wing
        cx = f32(10.0 * s) + 0.12 * np.maximum(zp, 0)
        R = f32(115.0 * s)
        dxp = f32(sg) * (x - f32(x0)) - cx
        dyp = (y - f32(y0)) - f32(60.0 * s)
        rho = np.sqrt(dxp * dxp + dyp * dyp)
        rd = rho - R  # > 0 outside (posterolateral)
        beta = np.rad2deg(np.arctan2(dxp, -dyp))  # 0 posterior, 90 lateral
        kside = np.where(beta < 40.0, f32(60.0), f32(45.0))
        z_crest = f32(zc0) - kside * ((beta - 40.0) / 45.0) ** 2
        rim = np.exp(-(((z_crest - zp) / 8.0) ** 2))
        post = _sstep(36.0, 18.0, beta)
        th_out = 1.6 + 3.0 * rim + 5.0 * post
        th_in = 1.6 + 3.0 * rim + (4.0 + 22.0 * _sstep(15.0, -10.0, zp)) * post
        arc = np.deg2rad(np.maximum(14.0 - beta, beta - 90.0)) * rho
        band = np.where(rd > 0, rd - th_out, -rd - th_in)
        sdf = _smax(_smax(band, zp - z_crest, 2.0), arc, 3.0)
        t = tissue[sl]
        musc = (rd > -th_in - 16.0 * s) & (rd < th_out + 24.0 * s) & (zp < z_crest + 3.0) & (arc < 10.0)
        t[musc & ~np.isin(t, (SKIN, FAT, AIR, TABLE, TABLE_FOAM) + _BONE_MARROW + _BONE_CORTEX)] = MUSCLE
        t[sdf < 0] = ILIUM_CORTEX
        t[sdf < -1.3] = ILIUM_MARROW


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


def _slice_structures(ctx: _Ctx) -> list:
    """What the spine axis passes through at each slice centre: ("body"|"disc"|"none", name)."""
    d = ctx.dims
    out = []
    for z in ctx.zc:
        xs, ys = ctx.spine_xy(float(z))
        p = np.array([xs, ys, float(z)])
        found = ("none", "")
        for i in range(_NL):
            w = float(ctx.F[i].R[:, 2] @ (p - ctx.F[i].c))
            if abs(w) <= d["H"][i] / 2 - 1.0:
                found = ("body", LEVEL_NAMES[i])
                break
            if i + 1 < _NL:
                wj = float(ctx.F[i + 1].R[:, 2] @ (p - ctx.F[i + 1].c))
                if w < -d["H"][i] / 2 - 0.5 and wj > d["H"][i + 1] / 2 + 0.5:
                    found = ("disc", f"{LEVEL_NAMES[i]}/{LEVEL_NAMES[i + 1]}")
                    break
        out.append(found)
    return out


def render_spine_volume(rng_or_seed=0, num_slices: int = NUM_SLICES, return_tissues: bool = False,
                        params: dict | None = None):
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
        params: optional parameter dict from :func:`sample_spine_params` (drawn from the generator
            when omitted; the generator is then also used for textures and noise).

    Returns:
        ``(image, label)``: ``int16`` HU image of shape ``(512, 512, num_slices)`` and ``uint8``
        label (0 background, 1 vertebral bone of T1-L5); plus the tissue dict when ``return_tissues``.
        The affine is :func:`spine_affine` ``(num_slices)``.
    """
    num_slices = int(num_slices)
    if num_slices < 1:
        raise ValueError(f"num_slices must be >= 1, got {num_slices}")
    rng = _as_rng(rng_or_seed)
    P = sample_spine_params(rng) if params is None else params
    ctx = _Ctx(P, num_slices)
    ss = SUPERSAMPLE
    n0, n1 = SHAPE_XY
    soft = _Soft(ctx, rng)
    # textures and noise drawn now, in a fixed order
    white = rng.standard_normal((n0, n1, num_slices), dtype=np.float32)

    coarse = np.empty((n0, n1, num_slices), np.uint8)
    for k in range(num_slices):
        coarse[:, :, k] = soft.paint(k)
    tissue = np.repeat(coarse, ss, axis=2)
    del coarse
    _paint_pelvis(ctx, tissue)
    _paint_sternum(ctx, tissue)
    _paint_ribs(ctx, tissue, soft)
    spine = _Spine(ctx)
    box, vid = spine.build(tissue)

    # ---- intensities ----
    hu = np.array([TISSUE_HU[c] for c in range(len(TISSUE_HU))], np.float32)
    hu = hu + np.asarray(P["hu_jitter"], np.float32) + np.float32(P["hu_offset"])
    hu[AIR] = -1000.0
    for c in _BONE_MARROW:
        hu[c] = TISSUE_HU[c] * P["bone_density"]
    for c in _BONE_CORTEX:
        hu[c] = TISSUE_HU[c] * P["cortex_gain"]
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
    for c, v in _TEX_COARSE.items():
        amp[c] = v
    img += amp[tis_c] * _upsample_xy(soft.fields[3], SHAPE_XY)
    y_ref = ctx.trunk_at(0.0)["y_t"]
    grad = (P["lung_grad"] * np.clip((y_ref - ctx.Y) / 110.0, -0.4, 1.0)).astype(np.float32)
    img += (tis_c == LUNG) * grad[None, :, None]
    # reconstruction kernel, then correlated noise; the same fine-grained field, with a tissue
    # dependent extra amplitude, is the trabecular / lung parenchyma texture
    img = ndi.gaussian_filter(img, (P["psf"], P["psf"], 0.0), truncate=3.0)
    noise = ndi.gaussian_filter(white, (P["noise_corr"], P["noise_corr"], 0.0), truncate=3.0)
    del white
    noise *= np.float32(1.0) / _std(noise)
    amp[:] = P["noise_sd"]
    for c, v in _TEX_FINE.items():
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
    tissues = {"tissue": tis_c, "vertebra": vert_c, "slices": _slice_structures(ctx), "levels": names, "params": P}
    return image, label, tissues


# --------------------------------------------------------------------------------------------
# data set writer
# --------------------------------------------------------------------------------------------


def volume_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of volume ``index`` of a data set with base ``seed`` (independent of the volume count)."""
    return volume_seed_sequence(seed, index, 7)


def _render_indexed(seed: int, index: int, num_slices: int) -> tuple:
    """Volume ``index`` of the data set with base ``seed`` and its log summary (for :func:`write_dataset`)."""
    img, lab, tis = render_spine_volume(np.random.default_rng(volume_seed(seed, index)), num_slices, True)
    levels = tis["levels"]
    lv = f"{levels[0]}-{levels[-1]}" if levels else "none"
    summary = (
        f"{tis['params']['kind']}, vertebrae {lv}, spine {int(lab.sum())} vox, "
        f"{int(lab.any(axis=(0, 1)).sum())}/{num_slices} slices with spine"
    )
    return img, lab, spine_affine(num_slices), summary


def write_spine_dataset(
    out_dir: str | os.PathLike,
    num_volumes: int = 8,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    workers: int | None = 1,
    num_slices: int = NUM_SLICES,
) -> Path:
    """Render ``num_volumes`` synthetic spine CT volumes and write them as an MSD-style data set.

    Layout: ``imagesTr/spine_000.nii.gz`` (int16 HU), ``labelsTr/spine_000.nii.gz`` (uint8, 0/1) and
    ``datalist.json`` (split by volume: 6/1/1 for 8, see :func:`scripts.phantoms.split_counts`;
    paths relative to the datalist). Volume ``i`` depends only on ``(seed, i, num_slices)``, and
    the files are byte-identical across runs and worker counts. A non-empty ``out_dir`` that was
    not written by this tool is refused (:class:`scripts.phantoms.OutputDirError`); nothing is
    deleted except stale files that this tool itself recorded in an earlier run.

    Args:
        out_dir: output directory (created if missing).
        num_volumes: number of volumes (>= 1).
        seed: base seed (>= 0).
        log: progress callback (one line per volume); ``None`` for silence.
        workers: worker processes (1 renders in this process; ``None``: up to 4, at most the CPU
            count and ``num_volumes``).
        num_slices: axial slices per volume (3 mm each).

    Returns:
        Path of ``datalist.json``.
    """
    return write_dataset(
        out_dir, BUNDLE, _render_indexed, num_volumes, seed, log, workers,
        file_prefix="spine",
        name="synthetic_spine_ct",
        description=(
            "synthetic axial spine CT volumes (HU) rendered by scripts/demo_data.py for the "
            "spine_msr_attention_unet bundle (not real data). Label 1 = vertebral bone T1-L5 (bodies and "
            "posterior elements) from the un-blurred phantom; discs, ribs, sternum, sacrum and iliac bones "
            "are background. seed={seed}, {num_volumes} volumes of {num_slices} slices, split "
            "{split} by volume."
        ),
        labels=LABELS,
        modality="CT (synthetic)",
        spacing=SPACING,
        orientation="LPS (axis 0 R->L, axis 1 A->P, axis 2 I->S; array[:, :, k] is axial slice k)",
        options={"num_slices": num_slices},
    )
