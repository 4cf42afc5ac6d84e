"""What the writers of outputs beyond NIfTI share: one atomic write, one output name, one set of checks.

``SaveImaged`` writes a bundle's NIfTI label map; the writers here add other files next to it, DICOM SEG
(:mod:`.dicom_seg`) and STL surfaces (:mod:`.surface_mesh`), both as a :class:`LabelMapWriterd`. Any file this
package writes (these, ``summary.json``, compressed and two-stage checkpoints) goes through
:func:`write_atomically`.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_numpy

from ..ops.flags import as_bool

__all__ = ["LabelMapWriterd", "output_stem", "write_atomically"]

#: extensions stripped from an input's file name to name its outputs, as ``SaveImaged`` does
IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def write_atomically(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a new temporary file next to ``path``, then rename it over ``path``: a killed or failed
    write leaves the previous file (or none), never half a file, and no temporary file behind.

    The temporary name is ``.<name>.<random>.tmp<extensions of name>`` in ``path``'s folder: unique per call (two
    processes, even two containers that both run as PID 1, never share one), created empty with ``O_EXCL`` (an
    atomic create that fails rather than reuse a file), hidden, and ending in ``path``'s own extensions, so
    writers that pick the format from the name (``nibabel.save`` of ``.nii.gz``) write the right one. Its
    permissions are those of a plain ``open(path, "w")`` (the umask's). Two processes writing the same ``path`` at
    once each rename a complete file of their own: the last rename wins, and neither file is ever mixed.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp{''.join(Path(name).suffixes[-2:])}")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def output_stem(source: str | Sequence[str]) -> str:
    """The name of an input as ``SaveImaged`` names its output: the image file name without its extension, or the
    DICOM series folder name (the first entry of a list)."""
    source = source[0] if isinstance(source, (list, tuple)) else source
    name = os.path.basename(os.path.normpath(str(source)))
    for ext in IMAGE_EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


class LabelMapWriterd(MapTransform):
    """Base of the transforms that write each discrete label map in another format next to ``SaveImaged``'s output.

    Put a subclass after ``SaveImaged`` in ``inference.json``'s postprocessing, on the inverted, discrete prediction
    ``(1, X, Y, Z)``. For each key it checks that the value is a MetaTensor (its affine places the output) holding one
    label map, names the file ``<output_dir>/<input name>_<output_postfix><suffix>`` (:func:`output_stem`; the
    input name is the image file name without extension or the DICOM series folder name) and logs the path with
    what :meth:`write` reports when ``print_log``. ``enabled=False`` makes the transform a no-op (the configs'
    ``save_mesh`` / ``save_dicom_seg`` flags, also as text from the command line). Subclasses set ``suffix``,
    ``what`` and ``flag`` and implement :meth:`write` (through :func:`write_atomically`); :meth:`accepts` may
    skip inputs the format cannot serve.

    Args:
        keys: label-map keys (``"pred"``).
        output_dir: folder of the files (created when missing).
        output_postfix: suffix after the input's name (``"seg"``, as the label map).
        enabled: write files at all.
        print_log: log the path of each file (logger of the subclass's module, level INFO).
        allow_missing_keys: skip keys that are absent.
    """

    #: file extension of the output, e.g. ``".stl"``
    suffix: ClassVar[str] = ""
    #: what the log line calls the output, e.g. ``"surface mesh"``
    what: ClassVar[str] = "output"
    #: the config flag that sets ``enabled``, named in its error message
    flag: ClassVar[str] = "enabled"

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        output_postfix: str = "seg",
        enabled: bool = True,
        print_log: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = os.fspath(output_dir)
        self.output_postfix = output_postfix
        self.enabled = as_bool(enabled, f"enabled ({self.flag})")
        self.print_log = print_log

    def accepts(self, source: str) -> bool:
        """Whether to write an output for the input ``source`` (its ``filename_or_obj``); by default always."""
        return True

    def write(self, label: np.ndarray, affine: np.ndarray, source: str, path: str) -> str:
        """Write the ``(X, Y, Z)`` label map ``label`` (voxel-to-world ``affine``, RAS) of input ``source`` to
        ``path``; return what the log line says about it (e.g. ``"1204 triangles"``)."""
        raise NotImplementedError

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if not self.enabled:
            return d
        name = type(self).__name__
        for key in self.key_iterator(d):
            label = d[key]
            if not isinstance(label, MetaTensor):
                raise TypeError(f"{name} needs '{key}' as a MetaTensor with its affine, got {type(label)}.")
            source = label.meta.get("filename_or_obj", "")
            source = str(source[0] if isinstance(source, (list, tuple)) else source)
            if not self.accepts(source):
                continue
            array = convert_to_numpy(label)
            if array.ndim != 4 or array.shape[0] != 1:
                raise ValueError(
                    f"{name} needs a discrete label map (1, X, Y, Z) under '{key}', got shape "
                    f"{tuple(array.shape)}; put it after AsDiscreted and Invertd."
                )
            os.makedirs(self.output_dir, exist_ok=True)
            name = f"{output_stem(source or 'volume')}_{self.output_postfix}{self.suffix}"
            path = os.path.join(self.output_dir, name)
            report = self.write(array[0], convert_to_numpy(label.affine), source, path)
            if self.print_log:
                logging.getLogger(type(self).__module__).info("%s: %s (%s)", self.what, path, report)
        return d
