"""Network code of the four papers' bundles (referenced from bundle configs as ``custom_networks.<Class>``)."""

from .afu_unet import AFUNet
from .eas_unet import EASUNet
from .msr_attention_unet import MSRAttentionUNet
from .two_stage import TwoStageUNet
from .unet3d import UNet3D

__all__ = ["AFUNet", "EASUNet", "MSRAttentionUNet", "TwoStageUNet", "UNet3D"]
