"""The state a knee volume is painted into (:class:`KneeScene`), shared by the painters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import is_empty_box
from ..shapes import sstep
from .bones import femur_field, tibia_cross_section
from .grid import KneeGrid
from .params import KneeLandmarks, KneeParams

__all__ = ["KneeScene"]


@dataclass
class KneeScene:
    """Parameters, grid, tibia-frame coordinates and the tissue map of one knee being rendered.

    ``x, y, z`` are the tibia-frame coordinates (``float32``, mm) of the whole fine grid; ``tissue``
    (``uint8``, codes of :data:`~scripts.phantoms.knee.anatomy.TISSUES`) is what the painters fill in.
    The landmarks the painters share: ``patella_centre`` (femur frame), ``tuberosity`` (tibia frame),
    ``femur_front`` (femur-frame y of the anterior femur surface at the patella's height) and
    ``femur_z`` (tibia-frame height of the condyle centre).
    """

    P: KneeParams
    D: KneeLandmarks
    G: KneeGrid
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    tissue: np.ndarray
    patella_centre: np.ndarray
    tuberosity: np.ndarray
    femur_front: float
    femur_z: float

    @classmethod
    def build(cls, P: KneeParams) -> "KneeScene":
        """An empty scene (all air) for the knee ``P``."""
        D = KneeLandmarks.of(P)
        G = KneeGrid(P, D)
        x, y, z = G.local(tuple(slice(0, n) for n in G.shape))
        ay, az, yc = P.condyle_radius_ap, P.condyle_radius_si, P.condyle_centre_y
        pc = np.array([0.8, 0.0, az * (1.0 + P.patella_height)])
        line_y = np.arange(yc, yc + 2 * ay + 20, 0.1)
        on = femur_field(np.zeros_like(line_y), line_y, np.full_like(line_y, pc[2]), P, D) <= 0
        y_front = float(line_y[on].max()) if on.any() else yc + ay
        pc[1] = y_front + P.femoral_cartilage_thickness + P.patellar_cartilage_thickness + 0.5 + P.patella_half_depth * 0.85
        hx25, hy25, cy25 = tibia_cross_section(-26.0, P)
        tub = np.array([0.0, cy25 + hy25 + 2.0, -28.0])
        return cls(P, D, G, x, y, z, np.zeros(G.shape, np.uint8), pc, tub, y_front, float(G.c_loc[2]))

    def flexion_shear(self, z, y):
        """``y`` sheared with the femur above the joint (the soft tissue follows the flexed thigh)."""
        zc, tanf = self.femur_z, np.tan(np.deg2rad(self.P.flexion))
        return y - sstep(zc - 25.0, zc + 5.0, z) * (z - np.float32(zc)) * np.float32(tanf)

    def paint(self, box, mask, code: int, where=None) -> None:
        """Set ``tissue[box]`` to ``code`` where ``mask`` (and ``where[box]``, if given) holds."""
        if is_empty_box(box):
            return
        t = self.tissue[box]
        m = mask if where is None else (mask & where[box])
        t[m] = code
