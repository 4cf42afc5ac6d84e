"""Outputs beyond the NIfTI label map that ``SaveImaged`` writes: DICOM SEG (:mod:`.dicom_seg`) and STL surface
meshes (:mod:`.surface_mesh`), both built on one writer base (:mod:`.base`: the checks, the output name and
:func:`~custom_networks.writers.base.write_atomically`, the one atomic write path of the package).

``writers`` imports :mod:`custom_networks.ops`, :mod:`custom_networks.transforms` (DICOM series headers) and the
standard stack (MONAI, highdicom, trimesh, scikit-image), never the networks.
"""
