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

Modules, by what they draw: :mod:`.anatomy` (geometry, labels, tissues, HU), :mod:`.params` and
:mod:`.sampling` (the random legs), :mod:`.outline` (leg axis, fascia and skin), :mod:`.bone_fields` (implicit bones),
:mod:`.leg_slice` (one leg on one slice), :mod:`.bones` (bone tissue and partial-volume HU),
:mod:`.soft_tissue` (soft tissue and table), :mod:`.render` and :mod:`.dataset`.
"""

from .anatomy import (
    BONE_TISSUES,
    BONES,
    BUNDLE,
    HU_MAX,
    HU_MIN,
    LABELS,
    NUM_SLICES,
    SHAPE_XY,
    SPACING,
    SUBSLICES,
    TISSUE_HU,
    TISSUES,
    lower_limb_affine,
)
from .dataset import volume_seed, write_lower_limb_dataset
from .params import LowerLimbParams
from .sampling import sample_lower_limb_params
from .render import render_lower_limb_volume

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
    "HU_MIN",
    "HU_MAX",
    "LowerLimbParams",
    "lower_limb_affine",
    "sample_lower_limb_params",
    "render_lower_limb_volume",
    "volume_seed",
    "write_lower_limb_dataset",
]
