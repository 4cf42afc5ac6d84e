"""Checks of a NIfTI or NRRD file's header, made before any voxel is read or allocated.

Why: ITK reads what a damaged header claims. It pads a truncated uncompressed file with zeros, allocates whatever
size the header announces (a flipped byte in ``dim`` or ``sizes`` asks for gigabytes), and silently "fixes" a zero,
negative or NaN spacing (to 1 or its absolute value), so the volume's geometry is wrong without a word.
:func:`check_volume_header` reads the header alone (a few hundred bytes; for a gzip file whose trailer does not
match, the stream is decompressed once to count its bytes, nothing kept) and refuses, with one
:class:`ImageReadError` naming the file, the fault and the fix:

* a dimension count or a size that is not positive, an unknown NIfTI ``datatype`` code or NRRD ``type``;
* a spacing (NIfTI ``pixdim``, NRRD ``spacings``) that is zero, negative or not finite; an orientation matrix (NIfTI
  ``srow``/quaternion, NRRD ``space directions``) that is not finite or singular;
* a header that claims more voxel data than the file holds (truncated file, or an enormous claimed size).

Other files (MHA, DICOM, detached NRRD data) and headers it cannot identify are left to the reader, whose errors
:mod:`.load` words. ``LoadVolumed`` runs the check on every file it reads.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import struct
import zlib

import numpy as np

__all__ = ["ImageReadError", "check_volume_header", "check_voxel_axes"]


class ImageReadError(ValueError):
    """A scan that cannot be read; the message names the file, the fault and the fix."""


REEXPORT = "Export the scan again from its source (or convert it again); the file is damaged."

#: NIfTI datatype code -> bytes per voxel (NIfTI-1 standard, ``nifti1.h``)
NIFTI_DATATYPES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8,
                   1536: 16, 1792: 16, 2048: 32, 2304: 4}
#: NRRD type names (NRRD format 0004) -> bytes per voxel
NRRD_TYPES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
                     "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t",
                     "float"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
                     "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t",
                     "double"), 8),
}


def _refuse(path: str, problem: str, fix: str = REEXPORT) -> ImageReadError:
    return ImageReadError(f"{path}: {problem}. {fix}")


def check_volume_header(path: str | os.PathLike) -> None:
    """Refuse a NIfTI (``.nii``, ``.nii.gz``) or attached NRRD (``.nrrd``) file whose header is implausible (see
    the module docstring); other files pass unchecked."""
    path = os.fspath(path)
    name = path.lower()
    if not os.path.isfile(path):
        return
    if name.endswith((".nii", ".nii.gz")):
        _check_nifti(path, name.endswith(".gz"))
    elif name.endswith(".nrrd"):
        _check_nrrd(path)


# ----------------------------------------------------------------------------------------------- data size
def _stream_size(path: str, offset: int, compressed: bool, need: int) -> int:
    """Bytes of the data from ``offset`` (decompressed when ``compressed``: gzip members one after another), counted
    up to ``need`` in chunks of 1 MiB, nothing kept."""
    if not compressed:
        return max(os.path.getsize(path) - offset, 0)
    total, pending, inflate = 0, b"", zlib.decompressobj(wbits=47)
    with open(path, "rb") as fp:
        fp.seek(offset)
        while total < need:
            pending = pending or fp.read(1 << 20)
            if not pending:
                break
            try:
                total += len(inflate.decompress(pending, 1 << 20))
            except zlib.error:
                break  # damaged data: the reader's error says what
            pending = inflate.unconsumed_tail
            if inflate.eof:  # the next gzip member, if any
                pending, inflate = inflate.unused_data, zlib.decompressobj(wbits=47)
    return total


def _check_data_size(path: str, need: int, have: int, what: str) -> None:
    if have < need:
        raise _refuse(path, f"is truncated, or its header claims more than it holds: {what} announces {need:,} "
                            f"bytes of header and voxel data, the file holds {have:,}",
                      "Copy or export it again (a header damaged in its sizes cannot be read either).")


# ----------------------------------------------------------------------------------------------- NIfTI
def _nifti_header(path: str, compressed: bool) -> bytes:
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as fp:
            return fp.read(540)
    except (OSError, EOFError, zlib.error):
        return b""  # not gzip, or cut inside the header: the reader's error says so


def _check_nifti(path: str, compressed: bool) -> None:
    raw = _nifti_header(path, compressed)
    if len(raw) < 348:
        return
    version = None
    for order in "<>":
        (size,) = struct.unpack_from(order + "i", raw, 0)
        if size in (348, 540):
            version = (1 if size == 348 else 2, order)
            break
    if version is None:  # sizeof_hdr damaged: tell the byte order by dim[0] (1..7), as the NIfTI library does
        for order in "<>":
            if 1 <= struct.unpack_from(order + "h", raw, 40)[0] <= 7:
                version = (1, order)
                break
    if version is None:
        raise _refuse(path, "is not a readable NIfTI: neither its header size nor its dim[0] can be read in either "
                            "byte order")
    if version[0] == 2 and len(raw) < 540:
        return
    import nibabel as nib

    header_class = nib.Nifti1Header if version[0] == 1 else nib.Nifti2Header
    dtype = header_class.template_dtype.newbyteorder(version[1])
    h = np.frombuffer(raw[: dtype.itemsize], dtype=dtype)[0]
    dim = [int(v) for v in h["dim"]]
    if not 1 <= dim[0] <= 7:
        raise _refuse(path, f"its NIfTI header is damaged: dim[0] (the number of dimensions) is {dim[0]}, not 1..7")
    sizes = dim[1: dim[0] + 1]
    if any(n < 1 for n in sizes):
        raise _refuse(path, f"its NIfTI header is damaged: the sizes {sizes} (dim[1..{dim[0]}]) must be positive")
    code = int(h["datatype"])
    if code not in NIFTI_DATATYPES:
        raise _refuse(path, f"its NIfTI header names the unknown datatype code {code} (known: "
                            f"{sorted(NIFTI_DATATYPES)})")
    pixdim = [float(v) for v in h["pixdim"][1: min(dim[0], 3) + 1]]
    bad = [f"pixdim[{i}] = {v:g}" for i, v in enumerate(pixdim, start=1) if not (math.isfinite(v) and v > 0)]
    if bad:
        raise _refuse(path, f"has an implausible voxel spacing ({', '.join(bad)}; spacings must be positive and "
                            "finite)", "Fix the header (or re-export the scan): its geometry cannot be trusted.")
    if int(h["sform_code"]) > 0:
        srow = np.array([h["srow_x"], h["srow_y"], h["srow_z"]], dtype=np.float64)
        check_voxel_axes(path, srow[:, :3], srow[:, 3], "sform (srow_x/y/z)")
    if int(h["qform_code"]) > 0:
        quatern = [float(h[k]) for k in ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y",
                                         "qoffset_z")]
        if not all(math.isfinite(v) for v in quatern):
            raise _refuse(path, f"has a qform (quaternion and offset) that is not finite ({quatern})",
                          "Fix the header (or re-export the scan): its geometry cannot be trusted.")
    offset = float(h["vox_offset"])
    if not math.isfinite(offset) or offset < 0:
        raise _refuse(path, f"its NIfTI header is damaged: vox_offset is {offset:g}")
    start = max(int(offset), 352 if version[0] == 1 else 544)
    voxels = math.prod(sizes) * NIFTI_DATATYPES[code]
    isize = _gzip_isize(path) if compressed else None
    if compressed and isize == (start + voxels) % (1 << 32):
        return  # the gzip trailer agrees with the header: no need to decompress
    have = _stream_size(path, 0, compressed, start + voxels)
    _check_data_size(path, start + voxels, have, f"its header (sizes {sizes}, datatype {code})")


def _gzip_isize(path: str) -> int | None:
    """The uncompressed size modulo 2**32 that a gzip file's last member records in its trailer."""
    with open(path, "rb") as fp:
        fp.seek(0, os.SEEK_END)
        if fp.tell() < 18:
            return None
        fp.seek(-4, os.SEEK_END)
        return struct.unpack("<I", fp.read(4))[0]


def check_voxel_axes(path: str, matrix: np.ndarray, origin: np.ndarray, what: str) -> None:
    """Refuse a voxel-to-world ``matrix`` (3 x 3, a column per voxel axis) or ``origin`` that is not finite, or a
    singular matrix (an axis of zero length, or two parallel axes), with an :class:`ImageReadError` naming
    ``path`` and ``what`` the matrix is."""
    fix = "Fix the header (or re-export the scan): its geometry cannot be trusted."
    if not (np.isfinite(matrix).all() and np.isfinite(origin).all()):
        raise _refuse(path, f"has a {what} that is not finite ({np.round(matrix, 4).tolist()}, origin "
                            f"{np.round(origin, 4).tolist()})", fix)
    norms = np.linalg.norm(matrix, axis=0)
    det = abs(float(np.linalg.det(matrix)))
    if norms.min() <= 0 or det <= 1e-6 * float(np.prod(norms)):
        raise _refuse(path, f"has a singular {what} ({np.round(matrix, 4).tolist()}): a voxel axis of zero length "
                            "or two parallel axes", fix)


# ----------------------------------------------------------------------------------------------- NRRD
def _nrrd_fields(path: str) -> tuple[dict[str, str], int] | None:
    """The header fields of an NRRD file (lower-case names) and where its data starts, or None when the file does
    not start like an NRRD header."""
    with open(path, "rb") as fp:
        head = fp.read(1 << 16)
    if not head.startswith(b"NRRD000"):
        return None
    end = head.find(b"\n\n")
    if end < 0:
        return None
    fields = {}
    for line in head[:end].decode("latin-1").splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":=" if ":=" in line else ":")
        fields[key.strip().lower()] = value.strip()
    return fields, end + 2


def _numbers(text: str) -> list[float]:
    return [float(v) for v in text.replace("(", " ").replace(")", " ").replace(",", " ").split()]



def _check_nrrd(path: str) -> None:
    parsed = _nrrd_fields(path)
    if parsed is None:
        return
    fields, start = parsed
    damaged = "its NRRD header is damaged"
    try:
        ndim = int(fields.get("dimension", ""))
        sizes = [int(v) for v in fields.get("sizes", "").split()]
    except ValueError:
        raise _refuse(path, f"{damaged}: dimension {fields.get('dimension')!r}, sizes {fields.get('sizes')!r} "
                            "must be whole numbers") from None
    if not 1 <= ndim <= 16 or len(sizes) != ndim or any(n < 1 for n in sizes):
        raise _refuse(path, f"{damaged}: dimension {ndim} with sizes {sizes} (one positive size per dimension)")
    kind = fields.get("type", "").lower()
    if kind not in NRRD_TYPES and kind != "block":
        raise _refuse(path, f"its NRRD header names the unknown type {fields.get('type')!r}")
    fix = "Fix the header (or re-export the scan): its geometry cannot be trusted."
    if "space directions" in fields:
        text = fields["space directions"]
        vectors = re.findall(r"\(([^)]*)\)", text)
        try:
            matrix = np.array([_numbers(v) for v in vectors], dtype=np.float64).T
            origin = np.array(_numbers(fields.get("space origin", "")) or [0.0] * len(vectors), dtype=np.float64)
        except ValueError:
            raise _refuse(path, f"{damaged}: space directions ({text}) or origin are not numbers", fix) from None
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or origin.shape != (matrix.shape[0],):
            raise _refuse(path, f"{damaged}: space directions ({text}) do not form a square matrix with the origin",
                          fix)
        check_voxel_axes(path, matrix, origin, "space directions matrix")
    if "spacings" in fields:  # "nan" marks an axis without spacing (NRRD 0004); zero, negative or infinite is wrong
        try:
            values = [float(v) for v in fields["spacings"].split()]
        except ValueError:
            raise _refuse(path, f"{damaged}: spacings {fields['spacings']!r} are not numbers", fix) from None
        if any(v <= 0 or math.isinf(v) for v in values):
            raise _refuse(path, f"has an implausible voxel spacing (spacings {fields['spacings']}; spacings must "
                                "be positive and finite)", fix)
    if "data file" in fields or "datafile" in fields or kind == "block":
        return  # detached data or opaque blocks: the reader checks them
    encoding = fields.get("encoding", "raw").lower()
    if encoding not in ("raw", "gzip", "gz"):
        return
    need = math.prod(sizes) * NRRD_TYPES[kind]
    have = _stream_size(path, start, encoding != "raw", need)
    _check_data_size(path, start + need, start + have, f"its header (sizes {sizes}, type {kind})")
