"""CT-like head-and-neck volumes rendered from real expert organ masks (``shared/data/hn_oar_masks``).

Stand-in for the private planning CT of the ``head_neck_two_stage_unet`` bundle (two-stage 3D U-Net,
8 organs at risk). The 24 cases of Nikolov et al. 2018 (CC BY 4.0) ship only expert masks (21 organs,
one NRRD each, LPS, ~1 x 1 x 2.5 mm); this module turns one case into an ``int16`` HU volume and a
``uint8`` label map on the masks' own grid. The organ geometry is real; the intensities are NOT.

Anatomy (tissue codes :data:`TISSUES`, mean HU :data:`TISSUE_HU`, jittered a few HU per case; bone
values scaled by a per-case density factor 0.9-1.1):

* air -1000 outside the body. The body outline is synthesised per axial slice as the convex hull of
  all organ masks, the skull, the midface/nose block in front of the eyes, a neck ellipse around the
  spinal canal and, from 30 mm above the lung apices down, shoulders widening to ~40 cm; the hull is
  grown by a soft-tissue margin (6 mm over the skull, 12 mm at the neck and face, 22 mm around the
  lungs) and smoothed along z;
* skin 2 mm (+30), subcutaneous fat 3-10 mm (-100), muscle (+45) everywhere else inside the body,
  with intermuscular fat (~15 % of the muscle, -90) from a smooth random field;
* skull: a shell of 4-8 mm (smoothly varying) around brain + brainstem, 1.5 mm of CSF (+8) between,
  inner/outer cortical tables (+1350) around diploe (+500; cancellous bone of all bones gets a smooth +-80 HU texture, cortical bone +-200); lateral ventricles (CSF) in the brain;
* cervical/upper thoracic vertebrae built around the spinal canal mask: vertebral body anterior to
  the canal (1.2 mm cortex +1100, cancellous +250, discs +90 every ~16 mm), a ring-shaped arch,
  spinous and transverse processes (+700); CSF (+10) in the canal around the cord (+35);
* brain +38 (smooth texture of a few HU) and brainstem +33: only 5 HU apart, below the noise;
* mandible as bone: 2 mm cortex (+1300) over marrow (+300), each voxel the mix of its cortical
  coverage (so coarse grids get partial-volume values); a maxillary alveolar process of the same
  bone (the part of the mandible in front of 10 mm behind its centroid, shifted 22 mm up; background
  in the labels). Same HU family as skull and vertebrae, so bone HU alone does not identify it;
* parotids +32 with fatty lobules (30 % at -60): median ~+20, between fat and muscle; submandibular
  glands +40, lacrimal glands +40;
* eyes: vitreous +10 inside a 1 mm sclera (+50), lens +90; optic nerves +35 in orbital fat (-80)
  within 7 mm of globe and nerve, with four extraocular-muscle bands (+45) running from the globe to
  the orbital apex and a thin bony orbital wall (+900) behind the globe equator;
* cochleae: fluid (+20) inside dense petrous bone (+1600, 9 mm around the cochlea);
* nasal cavity and maxillary sinuses (air with thin bony walls) below and between the eyes; pharynx
  and trachea (air) anterior to the vertebral bodies, from the bottom up to the nasal cavity;
* lungs -850 with a posterior density gradient and vessel-like texture (+40).

CT physics: partial volume is modelled by the system point-spread function (the masks have no
sub-voxel detail): Gaussian in-plane sigma ``sqrt(0.6^2 + s^2 / 12)`` mm (0.6 mm reconstruction
kernel plus the voxel's own box) and a slice sensitivity profile with FWHM 1.15 x the slice
thickness along z; then correlated noise (white noise smoothed by ~0.7 voxel in-plane) with a
per-case sd of 12-18 HU; clipped to [-1024, 3071] and rounded to ``int16``.

Labels (``uint8``, :data:`custom_networks.labels.head_neck.CLASS_NAMES`): 0 background, 1 brainstem,
2/3 left/right eye, 4/5 left/right optic nerve, 6/7 left/right parotid, 8 mandible, each the largest
26-connected component of the expert mask. Overlap rule: organs are painted in the order of
:data:`LABEL_PAINT_ORDER` (largest first: mandible, parotids, brainstem, eyes, optic nerves), so a
voxel claimed by two organs goes to the smaller one (e.g. the optic nerve where it enters the globe).
The image follows the label there too: thesis organs are painted last in the image as well. Lens and
sclera voxels stay labelled as eye. Other organ masks (brain, cord, lungs, ...) only shape the
anatomy and are background in the labels.

No thesis organ can be found by its intensity alone: :func:`intensity_identifiability` measures, per
organ, the best Dice any single HU interval reaches against the organ mask inside the head region;
neighbours share each organ's HU range, so it stays below 0.5 (tested).

Fast path: ``voxel_size=(sx, sy, sz)`` resamples each mask onto a coarser grid covering the same
extent (exact area averaging, threshold 0.5; an organ that would vanish keeps its best-covered voxel)
before rendering, e.g. ``(4, 4, 5)`` gives about 125 x 125 x 75 voxels.

Axes: arrays are ``(x, y, z)`` in the NRRD's index order (LPS: axis 0 towards the patient's left,
axis 1 posterior, axis 2 superior); all 24 cases have an identity direction. :func:`ras_affine` gives
the NIfTI (RAS+) affine, so a voxel has the same world position in the NIfTI as in the NRRD.

Everything is deterministic given ``(case name, seed)``.

Modules: :mod:`.masks` (reading, cleaning and resampling the expert masks; the label map),
:mod:`.tissues` (tissue codes and HU), :mod:`.render` (the CT-like volume) and :mod:`.identifiability`
(the "no organ identifiable by intensity alone" check).
"""

from .identifiability import best_interval_dice, head_region, intensity_identifiability
from .masks import BUNDLE, LABEL_PAINT_ORDER, SOURCE_ORGANS, CaseMasks, build_labels, list_cases, load_case, ras_affine
from .render import render_case, render_case_dir
from .tissues import TISSUE_HU, TISSUES

__all__ = [
    "BUNDLE",
    "SOURCE_ORGANS",
    "LABEL_PAINT_ORDER",
    "TISSUES",
    "TISSUE_HU",
    "CaseMasks",
    "list_cases",
    "load_case",
    "build_labels",
    "render_case",
    "render_case_dir",
    "ras_affine",
    "best_interval_dice",
    "intensity_identifiability",
    "head_region",
]
