"""Random anatomy, pose and contrast of one synthetic knee (:class:`KneeParams`) and what follows from it.

Lengths are in mm in the knee's local frame (x lateral, y anterior, z superior, origin at the centre of
the tibial plateau), angles in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import BASE_INTENSITY

__all__ = ["KneeParams", "KneeLandmarks", "sample_knee_params"]


@dataclass
class KneeParams:
    """Everything random about one knee volume, drawn by :func:`sample_knee_params`.

    Femur sizes are in the femur frame (condyle bottoms at z = 0 before placement), tibia sizes in
    the local frame; the pose places the local frame in the scanner-aligned frame (X lateral,
    Y anterior, Z superior).
    """

    size_scale: float  #: global size factor (0.92-1.08)
    # --- femur ---
    femur_width: float  #: bicondylar width (narrow: the field of view is 60 mm)
    notch_width: float  #: intercondylar notch width
    condyle_radius_ap: float  #: medial condyle sagittal semi-axis, anterior-posterior
    condyle_radius_si: float  #: medial condyle sagittal semi-axis, superior-inferior
    lateral_condyle_radius_ap: float  #: the lateral condyle's (a bit smaller)
    lateral_condyle_radius_si: float
    condyle_centre_y: float  #: condyle centre (AP) relative to the plateau centre
    femur_shaft_half_width: float
    femur_shaft_half_depth: float
    metaphysis_flare: float  #: length over which the metaphysis narrows into the shaft
    trochlear_groove_depth: float
    notch_roof_angle: float  #: Blumensaat line angle
    femoral_cartilage_anterior_angle: float  #: arc of the femoral cartilage around the condyle centre
    femoral_cartilage_posterior_angle: float
    flexion: float
    femur_varus: float
    femur_rotation: float
    # --- tibia ---
    tibia_width: float
    tibia_depth: float
    tibial_slope: float  #: tangent of the posterior slope of the plateau
    medial_plateau_concavity: float
    lateral_plateau_concavity: float
    eminence_height: float  #: intercondylar eminence
    eminence_width: float
    tibia_shaft_half_width: float
    tibia_shaft_half_depth: float
    # --- cartilage and menisci ---
    femoral_cartilage_thickness: float
    tibial_cartilage_thickness: float
    patellar_cartilage_thickness: float
    joint_gap: float  #: gap between the femoral and tibial cartilage
    meniscus_height: float
    meniscus_inner_radius: float  #: inner edge of the meniscal ring (fraction of the compartment)
    # --- patella and soft tissue ---
    patella_half_width: float
    patella_half_depth: float
    patella_half_height: float
    patella_height: float  #: height above the condyle centre, as a fraction of the condyle radius
    effusion: float  #: joint effusion, 0 (none) to 1
    posterior_skin: float  #: distance of the posterior skin from the plateau centre
    anterior_fat: float
    posterior_fat: float
    skin_thickness: float
    fluid_film: float  #: fraction of the cartilage surface with a visible fluid film
    # --- pose in the scanner ---
    laterality: float  #: +1 right knee (lateral = +R), -1 left knee
    pose_rotation_x: float
    pose_rotation_y: float
    pose_rotation_z: float
    pose_translation: np.ndarray  #: (3,) mm
    # --- contrast and acquisition ---
    gain: float
    tissue_jitter: np.ndarray  #: per-tissue intensity factors, in the order of the tissue codes
    noise_fraction: float  #: noise sigma relative to the cartilage intensity
    bias_amplitude: float  #: amplitude of the multiplicative bias field
    blur: float  #: in-plane blur sigma (voxels)


def sample_knee_params(rng: np.random.Generator) -> KneeParams:
    """Draw the random anatomy, pose and contrast parameters of one knee.

    The same generator state always gives the same parameters (the draws happen in a fixed order).

    Args:
        rng: numpy random generator (consumed).

    Returns:
        The :class:`KneeParams` used by :func:`scripts.phantoms.knee.render_knee_volume`.
    """
    u = rng.uniform
    s = u(0.92, 1.08)
    femur_width = u(42.0, 46.5) * (0.5 + 0.5 * s)
    notch_width = femur_width * u(0.22, 0.27)
    condyle_radius_ap = u(19.0, 22.0) * s
    condyle_radius_si = u(17.0, 20.5) * s
    lateral_condyle_radius_ap = condyle_radius_ap * u(0.9, 0.98)
    lateral_condyle_radius_si = condyle_radius_si * u(0.92, 1.0)
    condyle_centre_y = u(-5.0, -1.0)
    femur_shaft_half_width = u(12.0, 14.0) * s
    femur_shaft_half_depth = u(11.0, 13.0) * s
    metaphysis_flare = u(38.0, 50.0) * s
    trochlear_groove_depth = u(2.5, 4.5)
    notch_roof_angle = u(34.0, 44.0)
    femoral_cartilage_anterior_angle = u(48.0, 58.0)
    femoral_cartilage_posterior_angle = u(120.0, 135.0)
    flexion = u(0.0, 12.0)
    femur_varus = u(-2.0, 2.0)
    femur_rotation = u(-3.0, 3.0)
    tibia_width = femur_width * u(1.02, 1.08)
    tibia_depth = u(38.0, 44.0) * s
    tibial_slope = float(np.tan(np.deg2rad(u(3.0, 9.0))))
    medial_plateau_concavity = u(1.0, 2.2)
    lateral_plateau_concavity = u(0.0, 0.8)
    eminence_height = u(4.0, 6.5)
    eminence_width = u(2.5, 3.5)
    tibia_shaft_half_width = u(11.0, 13.0) * s
    tibia_shaft_half_depth = u(10.0, 12.0) * s
    femoral_cartilage_thickness = u(1.9, 2.4)
    tibial_cartilage_thickness = u(1.8, 2.3)
    patellar_cartilage_thickness = u(2.4, 3.0)
    joint_gap = u(0.0, 0.8)
    meniscus_height = u(5.0, 7.5)
    meniscus_inner_radius = u(0.55, 0.66)
    patella_half_width = u(10.5, 12.5) * s
    patella_half_depth = u(7.5, 9.0) * s
    patella_half_height = u(15.0, 18.0) * s
    patella_height = u(0.45, 0.8)
    effusion = u(0.0, 1.0) ** 2
    posterior_skin = u(46.0, 51.0)
    anterior_fat = u(3.5, 6.5)
    posterior_fat = u(5.0, 10.0)
    skin_thickness = u(1.2, 1.8)
    fluid_film = u(0.2, 0.7)
    laterality = 1.0 if u() < 0.5 else -1.0
    pose_rotation_x = u(-5.0, 5.0)
    pose_rotation_y = u(-3.0, 3.0)
    pose_rotation_z = u(-6.0, 6.0)
    pose_translation = np.array([u(-2.5, 2.5), u(0.0, 5.0), u(-5.0, 5.0)])
    gain = u(0.85, 1.15)
    tissue_jitter = u(0.9, 1.1, size=len(BASE_INTENSITY))
    noise_fraction = u(0.05, 0.085)
    bias_amplitude = u(0.18, 0.30)
    blur = u(0.4, 0.6)
    return KneeParams(
        size_scale=s, femur_width=femur_width, notch_width=notch_width, condyle_radius_ap=condyle_radius_ap,
        condyle_radius_si=condyle_radius_si, lateral_condyle_radius_ap=lateral_condyle_radius_ap,
        lateral_condyle_radius_si=lateral_condyle_radius_si, condyle_centre_y=condyle_centre_y,
        femur_shaft_half_width=femur_shaft_half_width, femur_shaft_half_depth=femur_shaft_half_depth,
        metaphysis_flare=metaphysis_flare, trochlear_groove_depth=trochlear_groove_depth,
        notch_roof_angle=notch_roof_angle, femoral_cartilage_anterior_angle=femoral_cartilage_anterior_angle,
        femoral_cartilage_posterior_angle=femoral_cartilage_posterior_angle, flexion=flexion,
        femur_varus=femur_varus, femur_rotation=femur_rotation, tibia_width=tibia_width, tibia_depth=tibia_depth,
        tibial_slope=tibial_slope, medial_plateau_concavity=medial_plateau_concavity,
        lateral_plateau_concavity=lateral_plateau_concavity, eminence_height=eminence_height,
        eminence_width=eminence_width, tibia_shaft_half_width=tibia_shaft_half_width,
        tibia_shaft_half_depth=tibia_shaft_half_depth, femoral_cartilage_thickness=femoral_cartilage_thickness,
        tibial_cartilage_thickness=tibial_cartilage_thickness,
        patellar_cartilage_thickness=patellar_cartilage_thickness, joint_gap=joint_gap,
        meniscus_height=meniscus_height, meniscus_inner_radius=meniscus_inner_radius,
        patella_half_width=patella_half_width, patella_half_depth=patella_half_depth,
        patella_half_height=patella_half_height, patella_height=patella_height, effusion=effusion,
        posterior_skin=posterior_skin, anterior_fat=anterior_fat, posterior_fat=posterior_fat,
        skin_thickness=skin_thickness, fluid_film=fluid_film, laterality=laterality,
        pose_rotation_x=pose_rotation_x, pose_rotation_y=pose_rotation_y, pose_rotation_z=pose_rotation_z,
        pose_translation=pose_translation, gain=gain, tissue_jitter=tissue_jitter, noise_fraction=noise_fraction,
        bias_amplitude=bias_amplitude, blur=blur,
    )


@dataclass(frozen=True)
class KneeLandmarks:
    """Positions that follow from :class:`KneeParams`: condyle and plateau-compartment centres (x, mm)."""

    medial_condyle_x: float  #: medial condyle centre (x < 0 is medial)
    lateral_condyle_x: float
    condyle_half_width: float  #: half-width of each condyle (superellipsoid)
    compartment_half_width: float  #: half-width of each tibial plateau compartment
    medial_compartment_x: float
    lateral_compartment_x: float

    @classmethod
    def of(cls, P: KneeParams) -> "KneeLandmarks":
        """The landmarks of the knee ``P``."""
        W, wn = P.femur_width, P.notch_width
        cond_w = (W - wn) / 2.0
        ew = P.eminence_width
        half = (P.tibia_width / 2 - ew) / 2
        return cls(
            medial_condyle_x=-(wn / 2 + cond_w / 2),
            lateral_condyle_x=wn / 2 + cond_w / 2,
            condyle_half_width=cond_w / 2 * 1.08,
            compartment_half_width=half,
            medial_compartment_x=-(ew + half),
            lateral_compartment_x=ew + half,
        )
