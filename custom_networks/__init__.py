"""Network code of the four papers' bundles (referenced from bundle configs as ``custom_networks.<Class>``)."""

from .afu_unet import AFUNet
from .eas_unet import EASUNet
from .msr_attention_unet import MSRAttentionUNet

__all__ = ["AFUNet", "EASUNet", "MSRAttentionUNet"]
