"""The networks of the four papers: AFU-Net (:class:`AFUNet`), MSR-attention U-Net (:class:`MSRAttentionUNet`),
the thesis's 3D U-Net and its two-stage pipeline (:class:`UNet3D`, :class:`TwoStageUNet`) and EAS U-Net
(:class:`EASUNet`), their shared base (:mod:`.base`) and output adapters (:mod:`.wrappers`).

Only ``nn.Module`` classes live here: no file I/O, no DICOM, no training logic. ``nets`` imports only
:mod:`custom_networks.blocks`, :mod:`custom_networks.ops` and the standard stack (torch, MONAI, numpy);
``tests/test_import_graph.py`` checks it. Bundle configs name them from the package root
(``custom_networks.<Net>``).
"""

from .afu_unet import AFUNet
from .base import PaperUNet
from .eas_unet import EASUNet
from .msr_attention_unet import MSRAttentionUNet
from .two_stage import TwoStageUNet
from .unet3d import UNet3D
from .wrappers import MainOutput

__all__ = ["AFUNet", "EASUNet", "MSRAttentionUNet", "TwoStageUNet", "UNet3D", "MainOutput", "PaperUNet"]
