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

Modules, by what they draw: :mod:`.anatomy` (geometry, labels, tissues), :mod:`.params` (the random
knee), :mod:`.bones` (implicit bones and articulating regions), :mod:`.grid` and :mod:`.scene` (frames and
the state being painted), :mod:`.soft_tissue`, :mod:`.skeleton`, :mod:`.cartilage`, :mod:`.mr_contrast`,
:mod:`.render` and :mod:`.dataset`.
"""

from .anatomy import BUNDLE, LABELS, SHAPE, SPACING, TISSUES, knee_affine
from .dataset import volume_seed, write_knee_dataset
from .params import KneeParams, sample_knee_params
from .render import render_knee_volume

__all__ = [
    "SHAPE",
    "SPACING",
    "LABELS",
    "TISSUES",
    "BUNDLE",
    "KneeParams",
    "knee_affine",
    "sample_knee_params",
    "render_knee_volume",
    "volume_seed",
    "write_knee_dataset",
]
