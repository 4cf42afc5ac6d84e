"""Damaged inputs made from real files, for the fuzz campaign of the readers (``test_fuzzed_inputs.py``).

Each family writes one damaged input per call, drawn from a seeded ``random.Random``: NIfTI and NRRD files cut at a
random offset, with random bytes of their header flipped, with a zero / negative / NaN / infinite spacing or a
singular orientation, with an unknown voxel type, or with a header claiming an enormous size; DICOM series with a
slice missing a geometry tag, a slice of another size or orientation, or implausible geometry values; damaged
datalists; damaged checkpoints. The sources are the head-and-neck bundle's sample CT (``pt_201``, real OpenKBP
data), the shared TotalSegmentator CT and MR where present, and small CT series of :mod:`tests.dicom_factory`.

:func:`probe` runs one input through what a bundle's ``inference.json`` does with it before the network (its own
``preprocessing``, parsed from the config; the datalist through the config's ``dataset``; a checkpoint through the
config's loader handler) and classifies the outcome: ``"handled"`` (refused by one of this package's errors whose
message names the file), ``"read"`` (a plausible image: finite values, positive finite spacings), or ``"bad"``
with the reason.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import signal
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tests.conftest import REPO, SHARED_DATA

SAMPLE_CT = REPO / "bundles" / "head_neck_two_stage_unet" / "sample" / "images" / "pt_201.nii.gz"
SHARED_CT = SHARED_DATA / "totalsegmentator_example" / "example_ct.nii.gz"
SHARED_MR = SHARED_DATA / "totalsegmentator_example" / "example_mr_sm.nii.gz"
SHARED_SERIES = SHARED_DATA / "totalsegmentator_example" / "example_ct_dicom"
#: a probe taking longer than this is a hang
HANG_SECONDS = 30.0


@dataclass
class FuzzInput:
    """One damaged input: ``kind`` ``"image"`` (a file or DICOM folder), ``"datalist"`` or ``"checkpoint"``;
    ``path`` what is given to the bundle; ``culprit`` what the message must name; ``bundle`` the bundle that
    reads it; ``note`` what was done to it."""

    family: str
    kind: str
    path: Path
    culprit: Path
    bundle: str
    note: str


class Sources:
    """The real files the damage starts from, prepared once in ``work``: the sample CT as NIfTI (raw and gzip) and
    as NRRD (raw and gzip encodings, written by ITK), the shared CT and MR where present, and a small CT series."""

    def __init__(self, work: Path) -> None:
        import itk

        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.ct_nifti = gzip.decompress(SAMPLE_CT.read_bytes())
        self.niftis = [("pt_201", self.ct_nifti, "head_neck_two_stage_unet")]
        if SHARED_CT.is_file():
            self.niftis.append(("example_ct", gzip.decompress(SHARED_CT.read_bytes()), "spine_msr_attention_unet"))
        if SHARED_MR.is_file():
            self.niftis.append(("example_mr", gzip.decompress(SHARED_MR.read_bytes()), "knee_eas_unet"))
        image = itk.imread(str(SAMPLE_CT))
        self.nrrds = []
        for compress in (False, True):
            out = work / f"pt_201_{'gz' if compress else 'raw'}.nrrd"
            itk.imwrite(image, str(out), compression=compress)
            self.nrrds.append(out.read_bytes())
        self.series = work / "series"
        from tests.dicom_factory import write_ct_series

        write_ct_series(self.series, rows=40, cols=56, n=8)
        self.shared_series = SHARED_SERIES if SHARED_SERIES.is_dir() else None


# ------------------------------------------------------------------------------------------------ NIfTI / NRRD
def _write(out: Path, name: str, data: bytes, compress: bool) -> Path:
    path = out / (name + (".nii.gz" if compress else ".nii"))
    path.write_bytes(gzip.compress(data, compresslevel=1) if compress else data)
    return path


def _pick_nifti(rng: random.Random, src: Sources):
    name, data, bundle = rng.choice(src.niftis)
    return name, bytearray(data), bundle, rng.random() < 0.5


def nifti_truncated(rng, src, out):
    name, data, bundle, compress = _pick_nifti(rng, src)
    blob = bytes(gzip.compress(bytes(data), compresslevel=1) if compress else data)
    cut = rng.randrange(0, len(blob))
    path = out / (name + (".nii.gz" if compress else ".nii"))
    path.write_bytes(blob[:cut])
    return FuzzInput("NIfTI truncated", "image", path, path, bundle, f"cut at byte {cut} of {len(blob)}")


def nifti_header_flip(rng, src, out):
    name, data, bundle, compress = _pick_nifti(rng, src)
    flips = []
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(0, 348)
        data[i] ^= 1 << rng.randrange(8)
        flips.append(i)
    path = _write(out, name, bytes(data), compress)
    return FuzzInput("NIfTI header byte flips", "image", path, path, bundle, f"bits flipped at bytes {flips}")


def nifti_spacing(rng, src, out):
    name, data, bundle, compress = _pick_nifti(rng, src)
    value = rng.choice([0.0, -rng.uniform(0.1, 5), float("nan"), float("inf")])
    if rng.random() < 0.5:
        axis = rng.randrange(1, 4)
        struct.pack_into("<f", data, 76 + 4 * axis, value)
        note = f"pixdim[{axis}] = {value}"
    else:  # the sform: a NaN entry, or a zero column (a singular orientation)
        axis = rng.randrange(3)
        for row in range(3):
            struct.pack_into("<f", data, 280 + 16 * row + 4 * axis, value if value != value else 0.0)
        note = f"sform column {axis} = {'NaN' if value != value else 0}"
    path = _write(out, name, bytes(data), compress)
    return FuzzInput("NIfTI zero/negative/NaN spacing", "image", path, path, bundle, note)


def nifti_datatype(rng, src, out):
    name, data, bundle, compress = _pick_nifti(rng, src)
    code = rng.choice([0, 1, 3, 5, 1234, 4096, -2, 32767])
    struct.pack_into("<h", data, 70, code)
    path = _write(out, name, bytes(data), compress)
    return FuzzInput("NIfTI unknown datatype", "image", path, path, bundle, f"datatype {code}")


def nifti_huge(rng, src, out):
    name, data, bundle, compress = _pick_nifti(rng, src)
    dims = list(struct.unpack_from("<8h", data, 40))
    for axis in rng.sample([1, 2, 3], rng.randint(1, 3)):
        dims[axis] = rng.choice([30000, 32767, rng.randrange(1000, 32767)])
    if rng.random() < 0.3:
        dims[0], dims[4:] = 7, [32767] * 4
    struct.pack_into("<8h", data, 40, *dims)
    path = _write(out, name, bytes(data), compress)
    return FuzzInput("NIfTI enormous claimed size", "image", path, path, bundle, f"dim {dims}")


def _nrrd(rng, src):
    blob = rng.choice(src.nrrds)
    end = blob.index(b"\n\n") + 2
    return blob[:end].decode("latin-1"), blob[end:]


def _nrrd_file(out: Path, header: str, body: bytes) -> Path:
    path = out / "pt_201.nrrd"
    path.write_bytes(header.encode("latin-1") + body)
    return path


def nrrd_truncated(rng, src, out):
    blob = rng.choice(src.nrrds)
    cut = rng.randrange(0, len(blob))
    path = out / "pt_201.nrrd"
    path.write_bytes(blob[:cut])
    return FuzzInput("NRRD truncated", "image", path, path, "head_neck_two_stage_unet",
                     f"cut at byte {cut} of {len(blob)}")


def nrrd_header_flip(rng, src, out):
    header, body = _nrrd(rng, src)
    data = bytearray(header.encode("latin-1"))
    flips = []
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(0, len(data) - 2)
        data[i] = rng.choice(b"0123456789-.eN( )x:") if rng.random() < 0.7 else data[i] ^ (1 << rng.randrange(7))
        flips.append(i)
    path = _nrrd_file(out, data.decode("latin-1"), body)
    return FuzzInput("NRRD header byte flips", "image", path, path, "head_neck_two_stage_unet",
                     f"bytes changed at {flips}")


def nrrd_spacing(rng, src, out):
    header, body = _nrrd(rng, src)
    lines = header.split("\n")
    k = next(i for i, li in enumerate(lines) if li.startswith("space directions:"))
    vectors = [[float(v) for v in part.strip("() ").split(",")] for part in lines[k].split(":", 1)[1].split()]
    axis = rng.randrange(3)
    kind = rng.choice(["zero", "nan", "inf", "parallel", "negative_spacings"])
    if kind == "zero":
        vectors[axis] = [0.0, 0.0, 0.0]
    elif kind == "nan":
        vectors[axis][rng.randrange(3)] = float("nan")
    elif kind == "inf":
        vectors[axis][rng.randrange(3)] = float("inf")
    elif kind == "parallel":
        vectors[axis] = list(vectors[(axis + 1) % 3])
    lines[k] = "space directions: " + " ".join("(" + ",".join(repr(v) for v in vec) + ")" for vec in vectors)
    if kind == "negative_spacings":
        lines.insert(k + 1, "spacings: " + " ".join(str(-rng.uniform(0.1, 3)) for _ in range(3)))
    path = _nrrd_file(out, "\n".join(lines), body)
    return FuzzInput("NRRD zero/NaN/singular spacing", "image", path, path, "head_neck_two_stage_unet",
                     f"{kind} (axis {axis})")


def nrrd_type(rng, src, out):
    header, body = _nrrd(rng, src)
    kind = rng.choice(["complex", "int128", "float16", "blob", "", "shrt"])
    lines = [f"type: {kind}" if li.startswith("type:") else li for li in header.split("\n")]
    path = _nrrd_file(out, "\n".join(lines), body)
    return FuzzInput("NRRD unknown type", "image", path, path, "head_neck_two_stage_unet", f"type {kind!r}")


def nrrd_huge(rng, src, out):
    header, body = _nrrd(rng, src)
    sizes = [128, 128, 128]
    for axis in rng.sample(range(3), rng.randint(1, 3)):
        sizes[axis] = rng.choice([100000, 2 ** 31, rng.randrange(1000, 10 ** 7)])
    lines = [f"sizes: {' '.join(map(str, sizes))}" if li.startswith("sizes:") else li for li in header.split("\n")]
    path = _nrrd_file(out, "\n".join(lines), body)
    return FuzzInput("NRRD enormous claimed size", "image", path, path, "head_neck_two_stage_unet", f"sizes {sizes}")


# ------------------------------------------------------------------------------------------------ DICOM
def _series_copy(rng, src, out) -> tuple[Path, list[Path], str]:
    use_shared = src.shared_series is not None and rng.random() < 0.3
    folder = out / "series"
    shutil.copytree(src.shared_series if use_shared else src.series, folder)
    return folder, sorted(folder.iterdir()), "lower_limb_afu_unet" if use_shared else "head_neck_two_stage_unet"


def _edit(path: Path, change: Callable) -> None:
    import warnings

    import pydicom

    ds = pydicom.dcmread(path)
    with warnings.catch_warnings():  # "NaN" is not a valid DS value: the damage meant
        warnings.simplefilter("ignore")
        change(ds)
        ds.save_as(path)


def dicom_missing_geometry(rng, src, out):
    folder, files, bundle = _series_copy(rng, src, out)
    tag = rng.choice(["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"])
    victims = files if rng.random() < 0.3 else rng.sample(files, rng.randint(1, 2))
    for f in victims:
        _edit(f, lambda ds: delattr(ds, tag))
    culprit = victims[0] if len(victims) == 1 else folder  # with several, the first the check meets is named
    return FuzzInput("DICOM missing geometry tag", "image", folder, culprit, bundle,
                     f"no {tag} in {len(victims)} of {len(files)} slices")


def dicom_mixed_sizes(rng, src, out):
    folder, files, bundle = _series_copy(rng, src, out)
    victim = rng.choice(files)

    def shrink(ds):
        rows, cols = int(ds.Rows) // 2, int(ds.Columns)
        ds.Rows = rows
        ds.PixelData = bytes(ds.PixelData)[: rows * cols * 2]
    _edit(victim, shrink)
    return FuzzInput("DICOM mixed sizes", "image", folder, folder, bundle, f"{victim.name} has half the rows")


def dicom_mixed_orientation(rng, src, out):
    folder, files, bundle = _series_copy(rng, src, out)
    victim = rng.choice(files)
    kind = rng.choice(["rotated", "singular", "nan", "zero_spacing", "negative_spacing"])
    changes = {
        "rotated": lambda ds: setattr(ds, "ImageOrientationPatient", [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]),
        "singular": lambda ds: setattr(ds, "ImageOrientationPatient", [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
        "nan": lambda ds: setattr(ds, "ImagePositionPatient", ["NaN", 0.0, 0.0]),
        "zero_spacing": lambda ds: setattr(ds, "PixelSpacing", [0.0, 0.0]),
        "negative_spacing": lambda ds: setattr(ds, "PixelSpacing", [-0.9, 0.9]),
    }
    everywhere = kind != "rotated" and rng.random() < 0.5
    for f in files if everywhere else [victim]:
        _edit(f, changes[kind])
    return FuzzInput("DICOM mixed/singular orientation", "image", folder,
                     victim if kind != "rotated" and not everywhere else folder,
                     bundle, f"{kind} in {'every slice' if everywhere else victim.name}")


# ------------------------------------------------------------------------------------------------ datalists
def datalist_damaged(rng, src, out):
    images = out / "images"
    images.mkdir()
    shutil.copy(SAMPLE_CT, images / "pt_201.nii.gz")
    good = {"testing": [{"image": "images/pt_201.nii.gz"}]}
    kind = rng.choice(["truncated", "flip", "list", "string_entries", "null", "number", "no_image", "image_list",
                       "testing_dict", "empty"])
    text = json.dumps(good)
    if kind == "truncated":
        text = text[: rng.randrange(0, len(text))]
    elif kind == "flip":
        i = rng.randrange(len(text))
        text = text[:i] + chr(ord(text[i]) ^ (1 << rng.randrange(7))) + text[i + 1:]
    else:
        text = json.dumps({
            "list": [good], "string_entries": {"testing": ["images/pt_201.nii.gz"]}, "null": {"testing": None},
            "number": {"testing": [5]}, "no_image": {"testing": [{"label": "x.nii.gz"}]},
            "image_list": {"testing": [{"image": [1, 2]}]}, "testing_dict": {"testing": {"image": "x"}},
            "empty": {},
        }[kind])
    path = out / "datalist.json"
    path.write_text(text)
    return FuzzInput("datalist damaged", "datalist", path, path, "head_neck_two_stage_unet", kind)


# ------------------------------------------------------------------------------------------------ checkpoints
def checkpoint_damaged(rng, src, out):
    import torch

    bundle = rng.choice(["knee_eas_unet", "lower_limb_afu_unet", "spine_msr_attention_unet"])
    state = {"model": _tiny_state(bundle)}
    path = out / "model.pt"
    torch.save(state, path)
    data = bytearray(path.read_bytes())
    kind = rng.choice(["truncated", "flip", "flip", "empty", "not_a_dict", "wrong_shape", "missing_keys", "text"])
    if kind == "truncated":
        data = data[: rng.randrange(0, len(data))]
    elif kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "empty":
        data = bytearray()
    elif kind == "text":
        data = bytearray(b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    else:
        model = state["model"]
        if kind == "not_a_dict":
            payload = {"model": 5} if rng.random() < 0.5 else [1, 2, 3]
        elif kind == "wrong_shape":
            key = rng.choice([k for k, v in model.items() if v.ndim > 0])
            payload = {"model": {**model, key: torch.zeros(3, 1)}}
        else:
            payload = {"model": dict(list(model.items())[: len(model) // 2])}
        torch.save(payload, path)
        data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data))
    return FuzzInput("checkpoint damaged", "checkpoint", path, path, bundle, kind)


_STATES: dict = {}


def _tiny_state(bundle: str) -> dict:
    if bundle not in _STATES:
        import torch

        torch.manual_seed(0)
        _STATES[bundle] = config(bundle).get_parsed_content("network_def").state_dict()
    return _STATES[bundle]


FAMILIES: dict[str, Callable] = {
    "nifti_truncated": nifti_truncated,
    "nifti_header_flip": nifti_header_flip,
    "nifti_spacing": nifti_spacing,
    "nifti_datatype": nifti_datatype,
    "nifti_huge": nifti_huge,
    "nrrd_truncated": nrrd_truncated,
    "nrrd_header_flip": nrrd_header_flip,
    "nrrd_spacing": nrrd_spacing,
    "nrrd_type": nrrd_type,
    "nrrd_huge": nrrd_huge,
    "dicom_missing_geometry": dicom_missing_geometry,
    "dicom_mixed_sizes": dicom_mixed_sizes,
    "dicom_mixed_orientation": dicom_mixed_orientation,
    "datalist_damaged": datalist_damaged,
    "checkpoint_damaged": checkpoint_damaged,
}


def generate(count: int, seed: int, work: Path, src: Sources):
    """``count`` damaged inputs, the families taken in turn, each in its own folder under ``work``."""
    rng = random.Random(seed)
    names = list(FAMILIES)
    for i in range(count):
        out = work / f"{i:04d}"
        out.mkdir(parents=True)
        yield FAMILIES[names[i % len(names)]](rng, src, out)


# ------------------------------------------------------------------------------------------------ probing
_CONFIGS: dict = {}


def config(bundle: str):
    """The bundle's ``inference.json``, parsed (cached)."""
    if bundle not in _CONFIGS:
        from monai.bundle import ConfigParser

        parser = ConfigParser()
        parser.read_config(str(REPO / "bundles" / bundle / "configs" / "inference.json"))
        parser["bundle_root"] = str(REPO / "bundles" / bundle)
        _CONFIGS[bundle] = parser
    return _CONFIGS[bundle]


class Hang(Exception):
    """A probe ran longer than :data:`HANG_SECONDS` (raised by an alarm)."""


def _preprocess(item: FuzzInput):
    data = config(item.bundle).get_parsed_content("preprocessing")({"image": str(item.path)})
    image = data["image"]
    values = np.asarray(image)
    spacing = np.linalg.norm(np.asarray(image.affine)[:3, :3], axis=0)
    if not (np.isfinite(values).all() and np.isfinite(spacing).all() and (spacing > 0).all()):
        return f"read an implausible image: spacing {spacing}, finite values {np.isfinite(values).all()}"
    return None


def _dataset(item: FuzzInput):
    from custom_networks.bundle.datalist import inference_inputs

    inputs = inference_inputs(str(item.path), "testing", bundle_name=item.bundle)
    if not all(Path(p).exists() for p in inputs):
        return f"datalist read, but names inputs that do not exist: {inputs}"
    return None


def _checkpoint(item: FuzzInput):
    from ignite.engine import Engine

    from custom_networks.engine.checkpoints import CheckedCheckpointLoader

    net = config(item.bundle).get_parsed_content("network_def")
    CheckedCheckpointLoader(load_path=str(item.path), load_dict={"model": net}, map_location="cpu")(
        Engine(lambda engine, batch: None))
    return None


def probe(item: FuzzInput) -> tuple[str, str, float]:
    """``(outcome, detail, seconds)`` of ``item`` (outcome ``handled``, ``read`` or ``bad``; see the module
    docstring). A probe is stopped after :data:`HANG_SECONDS` (as ``bad``: a hang)."""
    from custom_networks.apps.workflow import failure_reason

    step = {"image": _preprocess, "datalist": _dataset, "checkpoint": _checkpoint}[item.kind]

    def alarm(signum, frame):
        raise Hang(f"no answer after {HANG_SECONDS:.0f} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    start = time.perf_counter()
    try:
        problem = step(item)
        return ("bad", problem, time.perf_counter() - start) if problem else ("read", "", time.perf_counter() - start)
    except Hang as err:
        return "bad", f"hang: {err}", time.perf_counter() - start
    except Exception as err:
        seconds = time.perf_counter() - start
        message = failure_reason(err)
        first = _first_error(err)
        if not type(first).__module__.startswith("custom_networks") and not isinstance(first, FileNotFoundError):
            return "bad", f"a bare {type(first).__name__}: {message}", seconds
        if str(item.culprit) not in message:
            return "bad", f"the message does not name {item.culprit}: {message}", seconds
        return "handled", message, seconds
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _first_error(err: BaseException) -> BaseException:
    """The error :func:`~custom_networks.apps.workflow.failure_reason` reports: the first of the chain that is not
    MONAI's ``applying transform`` wrapper."""
    seen, current = set(), err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if str(current).strip() and not str(current).startswith("applying transform"):
            return current
        current = current.__cause__ or current.__context__
    return err
