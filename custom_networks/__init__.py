"""Network code of the four papers' bundles (referenced from bundle configs as ``custom_networks.<Class>``)."""

from .afu_unet import AFUNet
from .eas_unet import EASUNet

__all__ = ["AFUNet", "EASUNet"]
