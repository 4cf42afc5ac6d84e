"""Nominal vertebra and rib sizes per spinal level (T1..T12, L1..L5, S1), mm and degrees.

:data:`NOMINAL_LEVELS` holds one value per level for every field of :class:`LevelTable`; each volume
scales and jitters them (:class:`~scripts.phantoms.spine.scene.SpineScene`). The rib tables hold one
value per rib (rib ``k`` articulates with ``T(k+1)``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

__all__ = ["NUM_LEVELS", "LevelTable", "NOMINAL_LEVELS", "RIB_HEIGHT", "RIB_THICKNESS", "RIB_DROP", "RIB_END_ANGLE",
           "RIB_CARTILAGE"]

#: Number of levels (T1..T12, L1..L5, S1).
NUM_LEVELS = 18


@dataclass
class LevelTable:
    """Per-level vertebra dimensions, each an array of :data:`NUM_LEVELS` values (mm, degrees)."""

    body_width: np.ndarray  #: vertebral body width, depth and height
    body_depth: np.ndarray
    body_height: np.ndarray
    disc_height: np.ndarray  #: disc below the level
    canal_width: np.ndarray
    canal_depth: np.ndarray
    pedicle_width: np.ndarray
    pedicle_height: np.ndarray
    pedicle_length: np.ndarray
    lamina_thickness: np.ndarray
    lamina_height: np.ndarray
    spinous_length: np.ndarray  #: spinous process length, downward slope (deg), height, thickness
    spinous_angle: np.ndarray
    spinous_height: np.ndarray
    spinous_thickness: np.ndarray
    transverse_length: np.ndarray  #: transverse process length, posterior angle from lateral (deg), radii
    transverse_angle: np.ndarray
    transverse_radius_ap: np.ndarray
    transverse_radius_vertical: np.ndarray
    sagittal_tilt: np.ndarray  #: tilt of the vertebral axis (deg, + = top tilted anteriorly)

    def scaled(self, scale: float, jitter: np.ndarray) -> "LevelTable":
        """Lengths times ``scale`` (angles kept); body width/depth/height and disc height also times
        ``1 + jitter[:, 0..2]`` and ``1 + 2 * jitter[:, 3]`` (``jitter``: ``(NUM_LEVELS, 4)``)."""
        angles = ("sagittal_tilt", "spinous_angle", "transverse_angle")
        out = replace(self, **{f.name: getattr(self, f.name) * scale for f in fields(self) if f.name not in angles})
        out.body_width = out.body_width * (1 + jitter[:, 0])
        out.body_depth = out.body_depth * (1 + jitter[:, 1])
        out.body_height = out.body_height * (1 + jitter[:, 2])
        out.disc_height = out.disc_height * (1 + 2 * jitter[:, 3])
        out.spinous_angle = self.spinous_angle.copy()
        out.transverse_angle = self.transverse_angle.copy()
        return out


def _levels(*values) -> np.ndarray:
    return np.asarray(values, float)


#: Nominal sizes of an adult spine.
NOMINAL_LEVELS = LevelTable(
    body_width=_levels(27, 28, 29, 30, 31, 32, 33, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 50),
    body_depth=_levels(16, 17, 18, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 33, 30),
    body_height=_levels(14, 15, 16, 16.5, 17, 17.5, 18, 19, 20, 21, 22, 23, 24, 25, 26, 26, 25, 48),
    disc_height=_levels(3.5, 3.8, 4, 4, 4.2, 4.3, 4.5, 4.8, 5, 5.5, 6, 7, 8, 9, 10, 10.5, 10, 0),
    canal_width=_levels(18, 17, 16, 15.5, 15, 15, 15, 15.5, 16, 16.5, 17, 18.5, 20, 21, 22, 23, 24, 24),
    canal_depth=_levels(14, 14, 14, 14, 14, 14, 14, 14.5, 15, 15, 15.5, 16, 16, 16, 16, 16, 16, 11),
    pedicle_width=_levels(7, 6, 5.5, 5, 5, 5, 5.5, 6, 6.5, 7, 8, 8.5, 8, 8.5, 9.5, 11, 14, 12),
    pedicle_height=_levels(9, 10, 10, 10.5, 11, 11.5, 12, 12.5, 13, 14, 15, 15, 15, 15, 15, 15, 14, 12),
    pedicle_length=_levels(6, 6.5, 7, 7, 7, 7, 7, 7, 7.5, 7.5, 8, 8, 8, 8.5, 9, 9, 9, 6),
    lamina_thickness=_levels(5, 5, 5, 5.5, 5.5, 5.5, 5.5, 6, 6, 6, 6.5, 6.5, 7, 7, 7, 7, 7, 6),
    lamina_height=_levels(11, 12, 12, 13, 13, 13, 14, 14, 15, 16, 17, 18, 19, 20, 20, 20, 19, 20),
    spinous_length=_levels(30, 32, 33, 34, 34, 35, 35, 35, 34, 32, 30, 28, 28, 30, 30, 28, 24, 10),
    spinous_angle=_levels(20, 35, 45, 55, 60, 60, 62, 60, 55, 45, 30, 20, 10, 8, 5, 5, 10, 20),
    spinous_height=_levels(7, 8, 8, 8, 8, 8, 8, 8, 9, 10, 12, 14, 15, 17, 18, 17, 14, 8),
    spinous_thickness=_levels(5, 5, 5, 5, 5, 5, 5, 5.5, 6, 6, 6.5, 7, 7, 7, 7.5, 7.5, 7, 5),
    transverse_length=_levels(25, 25, 24, 23, 23, 22, 21, 20, 18, 16, 11, 7, 14, 20, 24, 22, 18, 0),
    transverse_angle=_levels(20, 25, 30, 30, 32, 32, 33, 33, 33, 33, 30, 20, 10, 8, 5, 5, 5, 0),
    transverse_radius_ap=_levels(5, 5, 5, 5, 5, 5, 5, 4.8, 4.6, 4.4, 4.2, 4, 3.2, 3, 3, 3.5, 5.5, 3),
    transverse_radius_vertical=_levels(5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 6, 6, 6.5, 7, 8, 3),
    sagittal_tilt=_levels(18, 15, 12, 8, 5, 2, 0, -3, -6, -9, -11, -12, -10, -6, 0, 8, 18, 40),
)

#: Rib height and thickness (mm), anterior drop (mm), end angle of the bony rib (deg from the posterior
#: midline), and whether a costal cartilage reaches the sternum (1), is short (2) or absent (0).
RIB_HEIGHT = [8, 10, 11, 12, 12.5, 13, 13, 13, 12.5, 12, 10, 9]
RIB_THICKNESS = [6.5, 6, 6, 5.8, 5.8, 5.8, 5.8, 5.8, 5.8, 5.6, 5.4, 5.2]
RIB_DROP = [35, 62, 80, 92, 100, 106, 108, 106, 98, 85, 58, 32]
RIB_END_ANGLE = [160, 158, 155, 152, 150, 147, 143, 138, 132, 124, 100, 70]
RIB_CARTILAGE = [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 0, 0]
