"""Reading scans with MONAI's ``LoadImaged``, with one clear message when a file cannot be read."""

from __future__ import annotations

import os
from typing import Any

import nibabel as nib
import numpy as np
from monai.transforms import LoadImaged

TRUNCATION_SIGNS = ("ended before", "end of file", "end-of-stream", "fread got only", "truncated", "premature end",
                    "unexpected end", "Error -3", "Error -5")


class ImageReadError(ValueError):
    """A scan that cannot be read; the message names the file, the fault and the fix."""


def describe_read_error(path: Any, err: Exception) -> ImageReadError:
    text = f"{type(err).__name__}: {err}"
    detail = " ".join(text.split())[:300]
    if isinstance(err, EOFError) or any(sign in text for sign in TRUNCATION_SIGNS):
        return ImageReadError(f"{path} is truncated: the file ends before its image data does ({detail}). "
                              "Copy or export it again.")
    return ImageReadError(f"{path} is not a readable NIfTI, NRRD, MHA or DICOM image ({detail}). Check that it is "
                          "one of those formats with the right file extension, and export it again.")


def _nifti_has_non_finite(path: str) -> bool:
    """ITK's NIfTI reader turns NaN and Inf voxels into 0 silently; look at a float NIfTI's own voxels."""
    if not str(path).endswith((".nii", ".nii.gz")) or not os.path.isfile(path):
        return False
    image = nib.load(path)
    if not np.issubdtype(image.get_data_dtype(), np.floating):
        return False  # integer voxels cannot be NaN or Inf
    return not bool(np.isfinite(np.asanyarray(image.dataobj)).all())


class _CheckedLoader:
    """Wraps ``LoadImaged``'s ``LoadImage`` so an error names the file being read."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def __call__(self, filename, reader=None):
        try:
            image = self.loader(filename, reader)
        except Exception as err:
            raise describe_read_error(filename, err) from err
        if isinstance(filename, (str, os.PathLike)) and _nifti_has_non_finite(os.fspath(filename)):
            raise ImageReadError(f"{filename} contains NaN or infinite voxels. Fix or re-export the scan (for "
                                 "example replace them with the background value) before segmenting it.")
        return image

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __setattr__(self, name, value):  # e.g. MONAI Label sets ``image_only``: it belongs to the LoadImage
        if name == "loader":
            object.__setattr__(self, name, value)
        else:
            setattr(self.loader, name, value)


class LoadVolumed(LoadImaged):
    """MONAI's ``LoadImaged`` (same arguments and defaults) whose failures say which file is truncated or not an
    image, and which also refuses NaN/Inf voxels in float NIfTI files (ITK's reader would read them as 0)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loader = _CheckedLoader(self._loader)
