"""The random anatomy, pose and acquisition of one bilateral lower-limb CT (:class:`LowerLimbParams`).

Drawn by :func:`scripts.phantoms.lower_limb.sampling.sample_lower_limb_params`.

Lengths in mm, angles in radians where stored (sampled in degrees). Each leg has its own frames
(x lateral, y anterior, z superior): the femur frame (z from the distal condyle surface), the tibia
frame (z from the plateau) and the soft-tissue frame; the scanner frame has X towards the patient's
left, Y posterior, z superior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FemurParams",
    "PatellaParams",
    "TibiaParams",
    "FibulaParams",
    "LegParams",
    "BodyHabitus",
    "LowerLimbParams",
]


@dataclass
class FemurParams:
    """Distal femur in the femur frame (x lateral, y anterior, z superior from the distal condyle surface)."""

    width: float  #: bicondylar width
    notch_width: float
    medial_condyle_x: float
    lateral_condyle_x: float
    condyle_half_width: float
    condyle_radius_ap: float  #: medial condyle sagittal semi-axes
    condyle_radius_si: float
    lateral_condyle_radius_ap: float
    lateral_condyle_radius_si: float
    condyle_centre_y: float
    trochlea_centre: tuple
    trochlea_radii: tuple
    trochlea_front: float  #: y of the front of the trochlea
    groove_depth: float  #: trochlear groove
    shaft_half_width: float
    shaft_half_depth: float
    shaft_x: float
    shaft_y: float
    metaphysis_z: float  #: where the metaphysis starts flaring into the shaft
    flare: float  #: length of the flare
    linea_aspera: float  #: height of the posterior ridge of the shaft
    notch_x: float
    notch_roof: tuple  #: ``(z, y, dy/dz)`` of the notch roof line
    cortex_epiphysis: float  #: cortical thickness at the epiphysis
    cortex_shaft: float
    marrow_cavity_z: float  #: where the fatty marrow cavity opens
    joint_gap: float  #: distal condyle surface above the joint line


@dataclass
class PatellaParams:
    """Patella in the femur frame: ellipsoid ``centre``/``radii`` with a tilt (rad) and its ``cortex`` (mm)."""

    radii: tuple
    centre: tuple
    tilt: float
    cortex: float


@dataclass
class TibiaParams:
    """Proximal tibia in the tibia frame (x lateral, y anterior, z superior from the plateau)."""

    width: float
    depth: float
    slope: float  #: tangent of the posterior slope of the plateau
    medial_concavity: float
    lateral_concavity: float
    eminence_height: float
    eminence_width: float
    compartment_half_width: float
    medial_compartment_x: float
    lateral_compartment_x: float
    shaft_half_width: float
    shaft_half_depth: float
    shaft_x: float
    shaft_y: float
    taper: float  #: length over which the plateau narrows into the shaft
    triangularity: float  #: of the shaft (anterior crest)
    tuberosity_z: float
    tuberosity_x: float
    tuberosity_radii: tuple
    posterior_notch: tuple  #: half-width and depth of the posterior intercondylar notch
    cortex_epiphysis: float
    cortex_shaft: float
    marrow_cavity_depth: float
    joint_gap: float  #: plateau below the joint line


@dataclass
class FibulaParams:
    """Fibula in the tibia frame: head ellipsoid and a shaft capsule 250 mm long."""

    head_centre: list
    head_radii: tuple
    shaft_radius: float
    shaft_offset: tuple  #: (x, y) offset of the shaft end 250 mm below the head
    cortex_epiphysis: float
    cortex_shaft: float


@dataclass
class BodyHabitus:
    """What both legs of one patient share: size, muscularity, fat, knee flexion (deg) and tilt (tangent)."""

    size: float
    muscularity: float
    fat: float
    flexion: float
    tilt: float


@dataclass
class LegParams:
    """Anatomy, pose and soft tissue of one leg (``side`` -1 right, +1 left)."""

    side: int
    lateral_sign: float  #: ``float(side)``: scanner X of the leg's lateral direction
    size: float
    femur: FemurParams
    femur_flexion: float  #: degrees
    tibia_flexion: float
    patella: PatellaParams
    tibia: TibiaParams
    fibula: FibulaParams
    knee_dz: float  #: knee level relative to the volume's knee level
    femur_rotation: float  #: external rotation (rad)
    tibia_rotation: float
    femur_valgus: float  #: tangents
    tibia_valgus: float
    femur_flexion_tan: float
    tibia_flexion_tan: float
    tilt: float
    outline_rx: np.ndarray  #: muscle-compartment radii and offsets at the outline keyframes
    outline_ry: np.ndarray
    outline_ox: np.ndarray
    outline_oy: np.ndarray
    outline_amplitude: np.ndarray  #: four harmonics that perturb the outline, their drift along z, phases
    outline_amplitude_drift: np.ndarray
    outline_phase: np.ndarray
    outline_phase_drift: np.ndarray
    fat: float  #: subcutaneous fat thickness
    fat_direction: float  #: where the fat is thickest (rad)
    fat_asymmetry: float
    skin: float
    muscle_front_shift: float  #: anterior limit of muscle around the knee: shift, curvature, wobble
    muscle_front_curvature: float
    muscle_front_wobble: tuple
    septa: list  #: fat septa: (angle, drift, curvature, width, start, wobble amplitude, wavelength, phase)
    gastrocnemius_soleus_plane: tuple  #: radius and width
    popliteal_fat: tuple  #: x, rx, ry
    saphenous_vein: tuple  #: angle, radius
    x: float = 0.0  #: scanner position of the leg axis (set when both legs are placed)
    y: float = 0.0


@dataclass
class LowerLimbParams:
    """Everything random about one bilateral lower-limb CT volume (:func:`sample_lower_limb_params`)."""

    num_slices: int
    knee_z: float  #: world z of the knee joint line
    habitus: BodyHabitus
    tissue_hu: dict  #: tissue code -> HU of this volume
    noise_sd: float
    noise_corr: float
    blur: float
    fov_mask: bool  #: -1024 outside the reconstruction circle
    table: bool
    table_radius: float
    table_shell: float
    table_core: float
    table_half_width: float
    pad: float  #: foam pad thickness (0: none)
    legs: list  #: right leg first
    pad_top: float  #: Y of the pad (or table) top at X = 0
