"""Synthetic phantoms: the demo data of every bundle (``python -m scripts.demo_data``).

Every bundle in this repository was trained in its paper on data that cannot be shipped here, so each
one gets a deterministic, clearly labelled synthetic data set for smoke tests and demos. One
subpackage per body region, each split by what its parts draw:

* :mod:`scripts.phantoms.knee`: sagittal DESS-like knee MR with femoral and tibial cartilage labels
  (``knee_eas_unet``);
* :mod:`scripts.phantoms.lower_limb`: bilateral lower-limb CT with a whole-bone label
  (``lower_limb_afu_unet``);
* :mod:`scripts.phantoms.spine`: axial trunk CT with a vertebral-bone label (``spine_msr_attention_unet``);
* :mod:`scripts.phantoms.head_neck`: CT-like volumes rendered from real expert organ masks
  (``head_neck_two_stage_unet``).

Shared parts: :mod:`scripts.phantoms.io` (output folders, byte-reproducible NIfTI files, datalists,
the data set writer), :mod:`scripts.phantoms.shapes` (implicit-surface primitives),
:mod:`scripts.phantoms.geometry` (rotations, index boxes, splines) and :mod:`scripts.phantoms.fields`
(smooth random fields).

None of the data produced here is real patient data; every datalist says so in its description.
"""
