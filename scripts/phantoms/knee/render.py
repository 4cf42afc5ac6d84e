"""One synthetic knee volume: :func:`render_knee_volume`."""

from __future__ import annotations

import numpy as np

from ..fields import PlaneWaveField
from ..shapes import as_rng
from .anatomy import FEM_CART, SHAPE, SUPERSAMPLE, TIB_CART, knee_affine
from .cartilage import paint_joint
from .mr_contrast import mr_image
from .params import KneeParams, sample_knee_params
from .scene import KneeScene
from .skeleton import paint_bone_interior, place_bones
from .soft_tissue import paint_soft_tissue

__all__ = ["render_knee_volume"]


def render_knee_volume(rng_or_seed=0, params: KneeParams | None = None, return_tissues: bool = False):
    """Render one synthetic DESS-like sagittal knee MR volume with FC/TC labels.

    Args:
        rng_or_seed: ``numpy.random.Generator`` or an int seed. The volume is a deterministic
            function of it.
        params: optional :class:`~scripts.phantoms.knee.params.KneeParams` from
            :func:`~scripts.phantoms.knee.params.sample_knee_params` (drawn from the generator when
            omitted; the generator is then also used for the textures and noise).
        return_tissues: also return a dict of un-blurred masks on the output grid (``femur``,
            ``tibia``, ``patella``, ``fibula``, ``bone``, ``tissue`` code map, see
            :data:`~scripts.phantoms.knee.anatomy.TISSUES`) and the parameters (``params``), for tests
            and inspection.

    Returns:
        ``(image, label, affine)``: ``float32`` image of shape :data:`SHAPE` (arbitrary MR units,
        roughly 0-1000), ``uint8`` label (0 background, 1 femoral cartilage, 2 tibial cartilage) and
        the 4x4 affine (:func:`~scripts.phantoms.knee.anatomy.knee_affine`); plus the tissue dict
        when ``return_tissues``.
    """
    rng = as_rng(rng_or_seed)
    P = sample_knee_params(rng) if params is None else params
    scene = KneeScene.build(P)
    # smooth random fields (drawn in a fixed order: keeps the volume a function of the seed)
    f_fc = PlaneWaveField(rng, 8, (18.0, 45.0))
    f_tc = PlaneWaveField(rng, 8, (15.0, 40.0))
    f_fat = PlaneWaveField(rng, 6, (40.0, 90.0))
    f_sept = PlaneWaveField(rng, 6, (20.0, 50.0))
    f_film = PlaneWaveField(rng, 8, (10.0, 30.0))
    paint_soft_tissue(scene, f_fat, f_sept)
    bones = place_bones(scene)
    joint = paint_joint(scene, bones, (f_fc, f_tc, f_film))
    paint_bone_interior(scene, bones)
    img = mr_image(scene.tissue, joint, P, rng)

    # labels and masks at the voxel centres (middle sub-sample, un-blurred)
    mid = slice(SUPERSAMPLE // 2, None, SUPERSAMPLE)
    tis_c = scene.tissue[:, :, mid]
    label = np.zeros(SHAPE, np.uint8)
    label[tis_c == FEM_CART] = 1
    label[tis_c == TIB_CART] = 2
    affine = knee_affine()
    if not return_tissues:
        return img, label, affine
    bid_c = bones.bone_id[:, :, mid]
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
