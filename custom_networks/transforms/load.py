"""Reading scans with MONAI's ``LoadImaged``, with one clear message when a file cannot be read (its header checked
first, :mod:`.volume_header`), and a DICOM folder read as the one image series that :class:`~.dicom_series.CheckDicomSeriesd` checked (:mod:`.dicom_reader`)."""

from __future__ import annotations

import inspect
import os
from typing import Any

import nibabel as nib
import numpy as np
from monai.data import ITKReader
from monai.transforms import LoadImaged

from .dicom_reader import SeriesITKReader
from .dicom_series import DicomSeriesError
from .volume_header import ImageReadError, check_volume_header

TRUNCATION_SIGNS = ("ended before", "end of file", "end-of-stream", "fread got only", "truncated", "premature end",
                    "unexpected end", "Error -3", "Error -5")


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
    try:
        image = nib.load(path)
    except Exception:  # a header nibabel cannot read (ITK could): its voxels were checked after reading
        return False
    if not np.issubdtype(image.get_data_dtype(), np.floating):
        return False  # integer voxels cannot be NaN or Inf
    return not bool(np.isfinite(np.asanyarray(image.dataobj)).all())


class _CheckedLoader:
    """Wraps ``LoadImaged``'s ``LoadImage`` so an error names the file being read, and a DICOM folder is read by
    the :class:`~.dicom_reader.SeriesITKReader` alone (when one is registered): MONAI would otherwise fall back
    to its other readers when it fails, and its own ITK reader reads a folder's first series, whichever it is."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def __call__(self, filename, reader=None):
        if reader is None and isinstance(filename, (str, os.PathLike)) and os.path.isdir(filename):
            reader = next((r for r in self.loader.readers if isinstance(r, SeriesITKReader)), None)
        try:
            if isinstance(filename, (str, os.PathLike)):
                check_volume_header(filename)  # before anything is allocated
            image = self.loader(filename, reader)
        except (DicomSeriesError, ImageReadError):
            raise  # names the file, the fault and the fix already
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


#: how configs name MONAI's ITK reader; LoadVolumed reads DICOM folders with SeriesITKReader instead
ITK_READER_NAMES = ("ITKReader", "monai.data.ITKReader", "monai.data.image_reader.ITKReader")


class LoadVolumed(LoadImaged):
    """MONAI's ``LoadImaged`` (same arguments and defaults) whose failures say which file is truncated or not an
    image, and which also refuses NaN/Inf voxels in float NIfTI files (ITK's reader would read them as 0).

    With ``reader="ITKReader"`` (what the CT configs name), a DICOM folder is read as its one image series by
    :class:`~custom_networks.transforms.dicom_reader.SeriesITKReader`: non-image objects beside the series (RT
    Dose, RT Plan, RT Structure Set, SEG) are ignored, as :class:`~.dicom_series.CheckDicomSeriesd` ignores them;
    files read exactly as with ``ITKReader``. Other readers, and no reader, are MONAI's.

    Args:
        keys, reader, args, kwargs: ``LoadImaged``'s.
        modality: with the ITK reader, only slices of this ``Modality`` (``"CT"``, ``"MR"``) form a folder's
            series; default None: any modality. Give ``CheckDicomSeriesd`` the same value.
    """

    def __init__(self, keys, reader=None, *args: Any, modality: str | None = None, **kwargs: Any) -> None:
        if reader is ITKReader or (isinstance(reader, str) and reader in ITK_READER_NAMES):
            own = inspect.signature(LoadImaged.__init__).parameters  # the rest of kwargs is the reader's
            reader = SeriesITKReader(modality=modality, **{k: v for k, v in kwargs.items() if k not in own})
        super().__init__(keys, reader, *args, **kwargs)
        self._loader = _CheckedLoader(self._loader)
