"""MONAI's ``ITKReader``, reading a DICOM folder as exactly the image series that the series check accepted.

Why: for a folder, MONAI's ``ITKReader`` asks GDCM for the folder's series and reads the **first** one, with only
a warning when there are several. A folder exported from a radiotherapy planning system holds the CT series
beside an RT Dose (a multi-frame image with its own series), an RT Plan and an RT Structure Set, so the first
series may be the dose grid. :class:`SeriesITKReader` reads the files that
:func:`~custom_networks.transforms.dicom_series.series_files` selects (image slices of the wanted modality, in
slice order; the other objects skipped) with ITK's series reader, so it reads what
:class:`~custom_networks.transforms.dicom_series.CheckDicomSeriesd` checked. Files, and folders holding one
series, read exactly as with MONAI's ``ITKReader`` (same values, same affine; ``tests/transforms``).
``LoadVolumed`` uses it wherever a config names ``"reader": "ITKReader"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from monai.data import ITKReader
from monai.utils import ensure_tuple

from .dicom_series import series_files

__all__ = ["SeriesITKReader"]


class SeriesITKReader(ITKReader):
    """``ITKReader`` that reads a DICOM folder as its one image series of ``modality``, ignoring the non-image
    objects beside it (RT Dose, RT Plan, RT Structure Set, SEG, reports ...).

    Args:
        modality: only slices of this ``Modality`` (``"CT"``, ``"MR"``) form the series; None (default): any
            modality, the folder must then hold one image series.
        args, kwargs: ``ITKReader``'s (``channel_dim``, ``series_meta``, ``reverse_indexing``, ...); with
            ``series_name`` (a GDCM series identifier) folders are read as ``ITKReader`` reads them.

    ``read`` raises :class:`~custom_networks.transforms.dicom_series.DicomSeriesError` for a folder with no
    image series or with several (the message lists them).
    """

    def __init__(self, *args, modality: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.modality = modality

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs):
        """Read each file as ``ITKReader`` does, and each folder as the files of its image series."""
        names = ensure_tuple(data)
        if self.series_name or not any(os.path.isdir(f"{name}") for name in names):  # a named GDCM series: ITK's
            return super().read(data, **kwargs)
        images = [self._read_folder(f"{n}", **kwargs) if os.path.isdir(f"{n}") else super().read(n, **kwargs)
                  for n in names]
        return images if len(names) > 1 else images[0]

    def _read_folder(self, folder: str, **kwargs):
        """ITK's series reader on the folder's series files, as ``ITKReader.read`` does for GDCM's file list."""
        import itk

        kwargs_ = {**self.kwargs, **kwargs}
        files = series_files(folder, self.modality)
        name = files[0] if len(files) == 1 else files
        image = itk.imread(name, **kwargs_)
        if self.series_meta:  # as ITKReader: the first slice's tags
            reader = itk.ImageSeriesReader.New(FileNames=name)
            reader.Update()
            meta = reader.GetMetaDataDictionaryArray()
            if len(meta) > 0:
                image.SetMetaDataDictionary(meta[0])
        return image
