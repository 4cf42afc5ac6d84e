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
axis 2 inferior to superior (the DICOM LPS order, as in :mod:`scripts.phantoms.lower_limb`), so
``array[:, :, k]`` is axial slice ``k`` (``k = 0`` the most caudal), ``array[:, :, k].T`` shown with
the first row at the top is the usual radiological view (anterior up, patient's right on the left of
the screen), and the affine (stored as a RAS+ affine) is ``diag(-0.8, -0.8, 3.0)`` with
``nibabel.aff2axcodes(affine) == ('L', 'P', 'S')``; the volume centre is at world (0, 0, 0). Images
are ``int16`` HU (clipped to -1024..3071, -1024 outside the 512-pixel reconstruction circle), labels
``uint8`` {0, 1}.

Everything is deterministic given the seed. The data are synthetic and are not real patient data.

Modules, by what they draw: :mod:`.anatomy` (geometry, labels, tissues, HU), :mod:`.levels` (vertebra
and rib sizes per level), :mod:`.params` (the random trunk), :mod:`.scene` (spine chain, trunk outline,
grids), :mod:`.soft_tissue` and :mod:`.organs` (slice by slice), :mod:`.vertebrae`, :mod:`.ribs`,
:mod:`.pelvis` (3D, on the fine grid), :mod:`.render` and :mod:`.dataset`.
"""

from .anatomy import (
    BUNDLE,
    HU_AIR,
    HU_BLOOD,
    HU_CANCELLOUS,
    HU_CORD,
    HU_CORTICAL,
    HU_CSF,
    HU_DISC,
    HU_FAT,
    HU_LIVER,
    HU_LUNG,
    HU_MUSCLE,
    LABELS,
    LEVEL_NAMES,
    NUM_SLICES,
    SHAPE_XY,
    SPACING,
    SUPERSAMPLE,
    TISSUE_HU,
    TISSUES,
    spine_affine,
)
from .dataset import volume_seed, write_spine_dataset
from .params import SpineParams, sample_spine_params
from .render import render_spine_volume

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
    "SpineParams",
    "spine_affine",
    "sample_spine_params",
    "render_spine_volume",
    "volume_seed",
    "write_spine_dataset",
]
