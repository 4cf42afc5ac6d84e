"""The MONAI transforms the bundles' configs call: loading with clear errors (:mod:`.load`), input checks
(:mod:`.validate`, :mod:`.dicom_series`; the CT input chain is described there), paper 000's bone-ratio crop
(:mod:`.bone_crop`), paper 002's stage-2 organ crops (:mod:`.organ_crop`) and partially labelled cases
(:mod:`.partial_labels`).

``transforms`` imports :mod:`custom_networks.ops` and the standard stack (torch, MONAI, numpy, nibabel, pydicom),
never the networks, the engine or the writers.
"""
