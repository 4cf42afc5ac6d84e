"""Random anatomy, pose and contrast of one synthetic trunk (:class:`SpineParams`).

Lengths in mm, angles in degrees, scanner frame x right, y anterior, z superior; levels are fractional
level indices (0 = T1 ... 16 = L5, 17 = S1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import TISSUE_HU
from .levels import NUM_LEVELS

__all__ = ["SpineParams", "sample_spine_params"]


@dataclass
class SpineParams:
    """Everything random about one spine CT volume, drawn by :func:`sample_spine_params`."""

    kind: str  #: level range: "thoracic" (T4-T9), "thoracolumbar" (T11-L1) or "lumbar" (L2/3-L4)
    centre_level: float  #: level at the centre of the field of view
    z_anchor: float  #: world z of that level
    size: float
    vertebra_scale: float
    vertebra_jitter: np.ndarray  #: ``(NUM_LEVELS, 4)`` relative jitter of body width, depth, height, disc
    # curvature
    sagittal_curve_scale: float  #: kyphosis/lordosis: scale of and offset to the nominal tilts
    sagittal_curve_offset: float
    scoliosis_amplitude: float  #: degrees
    scoliosis_period: float  #: levels
    scoliosis_phase: float
    axial_rotation_gain: float  #: axial rotation per degree of scoliosis
    axial_rotation_noise: np.ndarray  #: ``(NUM_LEVELS,)`` degrees
    # position and habitus
    x_offset: float
    y_offset: float
    trunk_x_shift: float  #: trunk centre relative to the spine
    fat: float  #: habitus, 0 lean to 1 obese
    thoracic_fat: float  #: subcutaneous fat thickness
    lumbar_fat: float
    belly: float
    visceral_fat: float
    thoracic_half_width: float
    lumbar_half_width: float
    thoracic_half_depth: float
    lumbar_half_depth: float
    thoracic_back_depth: float  #: skin of the back behind the vertebral bodies
    lumbar_back_depth: float
    thoracic_wall: float  #: chest / abdominal wall thickness
    lumbar_wall: float
    skin: float
    erector_scale: float
    psoas_scale: float
    # organs (levels)
    diaphragm_level: float  #: top of the right dome
    diaphragm_left_drop: float  #: left dome below the right one (mm)
    liver_tip_level: float
    left_kidney_level: float
    right_kidney_level: float
    spleen_level: float
    stomach_level: float
    stomach_gas: bool
    heart_level: float
    carina_level: float
    aorta_radius: float
    age: float  #: 0-1: more aortic calcification, lower bone density
    # pelvis (relative to the top of S1)
    iliac_crest_z: float
    pelvis_scale: float
    # bone and contrast
    bone_density: float
    cortex_gain: float
    cortex_thickness: float
    hu_jitter: np.ndarray  #: per tissue code
    hu_offset: float
    lung_gradient: float  #: dependent lung density (HU)
    noise_sd: float
    noise_corr: float
    blur: float  #: reconstruction kernel sigma (pixels)
    table: bool
    table_curvature: float
    bowel_width: float
    bowel_gas_threshold: float
    colon: np.ndarray  #: ``(2, 4)``: radius, aspect, gas level, offset of the right and left colon


def sample_spine_params(rng: np.random.Generator) -> SpineParams:
    """Draw the random anatomy, pose and contrast parameters of one trunk.

    The same generator state always gives the same parameters (the draws happen in a fixed order).

    Args:
        rng: numpy random generator (consumed).

    Returns:
        The :class:`SpineParams` used by :func:`scripts.phantoms.spine.render_spine_volume`.
    """
    u = rng.uniform
    kinds = ("thoracic", "thoracolumbar", "lumbar")
    kind = kinds[int(rng.choice(3, p=[0.35, 0.3, 0.35]))]
    centre_level = {"thoracic": u(3.0, 8.5), "thoracolumbar": u(10.0, 12.0), "lumbar": u(13.6, 15.2)}[kind]
    z_anchor = u(-8.0, 8.0)
    s = u(0.88, 1.12)
    vertebra_scale = float(np.sqrt(s) * u(0.95, 1.05))
    vertebra_jitter = rng.normal(0.0, 0.025, size=(NUM_LEVELS, 4))
    sagittal_curve_scale = u(0.6, 1.25)
    sagittal_curve_offset = u(-5.0, 5.0)
    scoliosis_amplitude = u(0.0, 4.0) + (u() < 0.25) * u(2.0, 6.0)
    scoliosis_period = u(8.0, 16.0)
    scoliosis_phase = u(0.0, 20.0)
    axial_rotation_gain = u(0.3, 1.0)
    axial_rotation_noise = rng.normal(0.0, 1.5, size=NUM_LEVELS)
    x_offset = u(-15.0, 15.0)
    y_offset = u(-5.0, 25.0)
    trunk_x_shift = rng.normal(0.0, 4.0)
    f = u(0.0, 1.0) ** 1.2
    thoracic_fat = 4.0 + 18.0 * f + u(0.0, 3.0)
    lumbar_fat = 6.0 + 30.0 * f + u(0.0, 4.0)
    belly = u(0.0, 1.0) * f
    visceral_fat = float(np.clip(f + rng.normal(0.0, 0.2), 0.0, 1.0))
    thoracic_half_width = u(135.0, 155.0) * s
    lumbar_half_width = u(122.0, 145.0) * s
    thoracic_half_depth = u(92.0, 108.0) * s
    lumbar_half_depth = u(82.0, 100.0) * s
    thoracic_back_depth = u(46.0, 54.0) * s
    lumbar_back_depth = u(54.0, 64.0) * s
    thoracic_wall = u(9.0, 14.0)
    lumbar_wall = u(10.0, 16.0)
    skin = u(1.5, 2.5)
    erector_scale = u(0.85, 1.2) * s
    psoas_scale = u(0.8, 1.2) * s
    diaphragm_level = u(8.4, 9.6)
    diaphragm_left_drop = u(8.0, 18.0)
    liver_tip_level = u(14.0, 15.3)
    left_kidney_level = u(11.6, 12.4)
    right_kidney_level = left_kidney_level + u(0.2, 0.9)
    spleen_level = u(10.4, 11.2)
    stomach_level = u(10.2, 11.0)
    stomach_gas = u() < 0.6
    heart_level = u(7.3, 8.5)
    carina_level = u(4.2, 5.0)
    aorta_radius = u(10.0, 13.0) * s
    age = u(0.0, 1.0)
    iliac_crest_z = u(36.0, 48.0)
    pelvis_scale = s * u(0.94, 1.06)
    bone_density = u(0.72, 1.25) * (1.1 - 0.25 * age)
    cortex_gain = u(0.9, 1.2)
    cortex_thickness = u(1.2, 1.9)
    hu_jitter = rng.normal(0.0, 3.0, size=len(TISSUE_HU))
    hu_offset = rng.normal(0.0, 4.0)
    lung_gradient = u(40.0, 110.0)
    noise_sd = u(10.0, 25.0)
    noise_corr = u(0.7, 1.1)
    blur = u(0.45, 0.7)
    table = u() < 0.9
    table_curvature = u(0.0004, 0.0009)
    bowel_width = u(0.45, 0.75) * (1.15 - 0.5 * visceral_fat)
    bowel_gas_threshold = u(0.9, 1.6)
    colon = np.stack([u(14.0, 24.0, 2), u(0.75, 1.3, 2), u(-0.2, 0.6, 2), u(-10.0, 10.0, 2)], 1)
    return SpineParams(
        kind=kind, centre_level=centre_level, z_anchor=z_anchor, size=s, vertebra_scale=vertebra_scale,
        vertebra_jitter=vertebra_jitter, sagittal_curve_scale=sagittal_curve_scale,
        sagittal_curve_offset=sagittal_curve_offset, scoliosis_amplitude=scoliosis_amplitude,
        scoliosis_period=scoliosis_period, scoliosis_phase=scoliosis_phase, axial_rotation_gain=axial_rotation_gain,
        axial_rotation_noise=axial_rotation_noise, x_offset=x_offset, y_offset=y_offset, trunk_x_shift=trunk_x_shift,
        fat=f, thoracic_fat=thoracic_fat, lumbar_fat=lumbar_fat, belly=belly, visceral_fat=visceral_fat,
        thoracic_half_width=thoracic_half_width, lumbar_half_width=lumbar_half_width,
        thoracic_half_depth=thoracic_half_depth, lumbar_half_depth=lumbar_half_depth,
        thoracic_back_depth=thoracic_back_depth, lumbar_back_depth=lumbar_back_depth, thoracic_wall=thoracic_wall,
        lumbar_wall=lumbar_wall, skin=skin, erector_scale=erector_scale, psoas_scale=psoas_scale,
        diaphragm_level=diaphragm_level, diaphragm_left_drop=diaphragm_left_drop, liver_tip_level=liver_tip_level,
        left_kidney_level=left_kidney_level, right_kidney_level=right_kidney_level, spleen_level=spleen_level,
        stomach_level=stomach_level, stomach_gas=stomach_gas, heart_level=heart_level, carina_level=carina_level,
        aorta_radius=aorta_radius, age=age, iliac_crest_z=iliac_crest_z, pelvis_scale=pelvis_scale,
        bone_density=bone_density, cortex_gain=cortex_gain, cortex_thickness=cortex_thickness, hu_jitter=hu_jitter,
        hu_offset=hu_offset, lung_gradient=lung_gradient, noise_sd=noise_sd, noise_corr=noise_corr, blur=blur,
        table=table, table_curvature=table_curvature, bowel_width=bowel_width,
        bowel_gas_threshold=bowel_gas_threshold, colon=colon,
    )
