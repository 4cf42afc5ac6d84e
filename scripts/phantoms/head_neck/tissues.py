"""Tissue codes and mean HU of the rendered head-and-neck volumes."""

from __future__ import annotations

__all__ = ["TISSUES", "TISSUE_CODE", "TISSUE_HU", "BONE_TISSUES"]

_NAMES = (
    "air skin subcutaneous_fat muscle intermuscular_fat lung lung_vessel airway csf brain brainstem "
    "skull_cortex skull_diploe vertebra_cortex vertebra_cancellous disc vertebra_arch spinal_csf "
    "spinal_cord mandible_cortex mandible_marrow parotid parotid_fat submandibular lacrimal "
    "vitreous sclera lens optic_nerve orbital_fat extraocular_muscle orbit_wall petrous_bone cochlea "
    "sinus_wall"
).split()
#: Tissue code -> name.
TISSUES = dict(enumerate(_NAMES))
#: Tissue name -> code.
TISSUE_CODE = {n: i for i, n in TISSUES.items()}
#: Tissue code -> mean HU before the per-case jitter.
TISSUE_HU = {
    TISSUE_CODE[n]: v
    for n, v in dict(
        air=-1000, skin=30, subcutaneous_fat=-100, muscle=45, intermuscular_fat=-90, lung=-850,
        lung_vessel=40, airway=-990, csf=8, brain=38, brainstem=33, skull_cortex=1350,
        skull_diploe=500, vertebra_cortex=1100, vertebra_cancellous=250, disc=90, vertebra_arch=700,
        spinal_csf=10, spinal_cord=35, mandible_cortex=1300, mandible_marrow=300, parotid=32,
        parotid_fat=-60, submandibular=40, lacrimal=40, vitreous=10, sclera=50, lens=90,
        optic_nerve=35, orbital_fat=-80, extraocular_muscle=45, orbit_wall=900, petrous_bone=1600,
        cochlea=20, sinus_wall=900,
    ).items()
}
#: Codes of the bone tissues (their HU scale with the per-case density).
BONE_TISSUES = {TISSUE_CODE[n] for n in _NAMES if any(k in n for k in ("skull", "vertebra", "mandible", "wall", "petrous"))}
