"""Network code of the four papers' bundles and the runtime pieces their configs call.

The one installed package, vendored whole into every bundle zip (``scripts/package.py``), so a config that names
``custom_networks.<...>`` runs from the repo, a bundle folder or an extracted zip. One subpackage per job:
:mod:`.nets` (the networks), :mod:`.blocks` (their layers), :mod:`.ops` (pure helpers), :mod:`.transforms`,
:mod:`.losses`, :mod:`.engine` (ignite/MONAI handlers), :mod:`.writers` (DICOM SEG, STL), :mod:`.bundle` (bundle
root, datalists, weights), :mod:`.labels` (class lists and maps), :mod:`.runtimes` (ONNX export, ONNX Runtime,
OpenVINO) and :mod:`.compression`. Configs name the networks from here (``custom_networks.<Net>``), so
``network_def`` targets and the state-dict keys of trained weights stay put.

Docstrings cite the papers by section, formula, figure and table, and tag defaults: [P] stated in the paper,
[D] this project's default where the paper is silent (always an argument or config key). Papers 000-003 and
where each part of them is: ``docs/design.md``.
"""

from .nets import AFUNet, EASUNet, MainOutput, MSRAttentionUNet, TwoStageUNet, UNet3D

__all__ = ["AFUNet", "EASUNet", "MSRAttentionUNet", "TwoStageUNet", "UNet3D", "MainOutput"]
