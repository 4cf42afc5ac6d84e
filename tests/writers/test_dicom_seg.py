"""DICOM SEG output (``SaveDicomSegd``): the voxel-to-frame mapping on synthetic series written with pydicom
(shuffled file order, reversed z, non-axial, non-square, anisotropic pixels), the flag's warning for a NIfTI
input, and the lower-limb bundle's real ``inference.json`` on the real CT series from ``../shared/data``
(skipped when that folder is absent), read back with highdicom and compared with the NIfTI label map."""

from __future__ import annotations

import json
import os
import random

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import LoadImage
from pydicom.uid import CTImageStorage, generate_uid

from custom_networks.writers.dicom_seg import (
    DicomSegGridError,
    DicomSegReferenceError,
    SaveDicomSegd,
    label_frames,
    read_series_headers,
    segment_names,
)
from tests.bundle_configs.helpers import BundleUnderTest, error_chain, run, write_nifti
from tests.bundle_configs.test_head_neck_two_stage_unet import TINY as HEAD_NECK_TINY
from tests.bundle_configs.test_ct_bundles import ct_bundle
from tests.conftest import SHARED_DATA
from tests.dicom_factory import copy_real_series, new_file

SERIES = SHARED_DATA / "totalsegmentator_example" / "example_ct_dicom"
needs_shared = pytest.mark.skipif(not SERIES.is_dir(), reason=f"real CT DICOM series not found at {SERIES}")
RAS_LPS = np.diag([-1.0, -1.0, 1.0])


# ------------------------------------------------------------------------------------- synthetic series
def write_series(folder, iop, rows=6, cols=9, n=5, spacing=(0.7, 1.1), step=2.5, origin=(-20.0, 30.0, 100.0)):
    """``n`` slices written in shuffled file order, InstanceNumber 1 at the *far* end of the normal (reversed z).

    Every pixel's stored value codes its (slice position rank, row, column), so a frame read back for a source
    slice can be compared with that slice's own pixels. Returns the files in slice-normal order.
    """
    folder.mkdir(parents=True)
    iop = np.asarray(iop, float)
    normal = np.cross(iop[:3], iop[3:])
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    order = list(range(n))
    random.Random(0).shuffle(order)
    paths = [None] * n
    for name_rank, s in enumerate(order):
        path = folder / f"IMG{name_rank:03d}"  # file-name order is neither position nor instance order
        ds = new_file(path, CTImageStorage)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientID, ds.PatientName = "CT", "P1", "Test^Series"
        ds.StudyDate, ds.StudyTime = "20260101", "120000"
        ds.SeriesNumber, ds.InstanceNumber = 3, n - s  # instance 1 is the last slice along the normal
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + s * step * normal]
        ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
        ds.SliceThickness = float(step)
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        pixels = (s * rows * cols + np.arange(rows * cols).reshape(rows, cols)).astype(np.uint16)
        ds.PixelData = pixels.tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths[s] = path
    return paths


ORIENTATIONS = {
    "axial": [1, 0, 0, 0, 1, 0],
    "sagittal": [0, 1, 0, 0, 0, -1],  # knee MR
    "coronal": [1, 0, 0, 0, 0, -1],
    "oblique": [np.cos(0.3), np.sin(0.3), 0, 0, 0, -1],
}


@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
def test_frames_of_the_itk_read_volume_are_the_source_slices(tmp_path, orientation):
    """The ITK-read volume, mapped back with label_frames, gives each source file's own pixels, in normal order."""
    paths = write_series(tmp_path / "series", ORIENTATIONS[orientation])
    image = LoadImage(reader="ITKReader", image_only=True)(str(tmp_path / "series"))  # as inference.json reads it
    headers = read_series_headers(tmp_path / "series")
    assert [os.path.basename(h.filename) for h in headers] == [p.name for p in paths]
    # the sort is not the file-name or instance order (the test would pass by accident otherwise)
    assert [h.InstanceNumber for h in headers] == sorted((h.InstanceNumber for h in headers), reverse=True)
    assert [p.name for p in paths] != sorted(p.name for p in paths)
    frames = label_frames(image.numpy(), image.affine.numpy(), headers, "series")
    expected = np.stack([pydicom.dcmread(p).pixel_array for p in paths])
    assert frames.shape == expected.shape == (5, 6, 9)
    np.testing.assert_array_equal(frames, expected)


def test_seg_frames_follow_their_source_instances(tmp_path):
    """SaveDicomSegd end to end on a synthetic axial series: labels computed from each slice's own pixels come
    back per referenced source instance, at that instance's position, with channel_def names and laterality."""
    paths = write_series(tmp_path / "series", ORIENTATIONS["axial"], n=6)
    image = LoadImage(reader="ITKReader", image_only=True)(str(tmp_path / "series"))
    label = image.clone()[None]
    label.array = (image.numpy() % 3)[None]  # 0, 1, 2 from the stored values
    names = segment_names({"0": "background", "1": "left eye", "2": "mandible"})
    SaveDicomSegd("pred", tmp_path / "out", class_names=names, print_log=False)({"pred": label})
    seg = hd.seg.segread(tmp_path / "out" / "series_seg.dcm")
    assert seg.SegmentationType == "BINARY"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["left eye", "mandible"]
    left_eye = seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0]
    assert left_eye.CodeMeaning == "Eye" and left_eye.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Left"
    sources = [pydicom.dcmread(p) for p in paths]
    got = seg.get_pixels_by_source_instance([d.SOPInstanceUID for d in sources], segment_numbers=[1, 2],
                                            assert_missing_frames_are_empty=True)
    for d, frame in zip(sources, got):
        for k in (1, 2):
            np.testing.assert_array_equal(frame[..., k - 1], d.pixel_array % 3 == k)
    by_uid = {d.SOPInstanceUID: d for d in sources}
    for item in seg.PerFrameFunctionalGroupsSequence:
        ref = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose(item.PlanePositionSequence[0].ImagePositionPatient,
                                   by_uid[ref].ImagePositionPatient, atol=1e-4)


def test_empty_prediction_still_writes_a_seg_listing_every_segment(tmp_path):
    paths = write_series(tmp_path / "series", ORIENTATIONS["sagittal"], n=3)
    image = LoadImage(reader="ITKReader", image_only=True)(str(tmp_path / "series"))
    label = image.clone()[None]
    label.array = np.zeros((1, *image.shape), np.uint8)
    SaveDicomSegd("pred", tmp_path / "out", class_names={1: "femoral_cartilage", 2: "tibial_cartilage"},
                  print_log=False)({"pred": label})
    raw = pydicom.dcmread(tmp_path / "out" / "series_seg.dcm")
    assert raw.SOPClassUID == pydicom.uid.SegmentationStorage and raw.preamble is not None
    seg = hd.seg.segread(tmp_path / "out" / "series_seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["femoral_cartilage", "tibial_cartilage"]
    assert seg.NumberOfFrames == 2 * len(paths) and not seg.pixel_array.any()
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_label_map_off_the_series_grid_is_an_error(tmp_path):
    write_series(tmp_path / "series", ORIENTATIONS["axial"])
    image = LoadImage(reader="ITKReader", image_only=True)(str(tmp_path / "series"))
    headers = read_series_headers(tmp_path / "series")
    affine = image.affine.numpy().copy()
    affine[:3, 3] += 0.3 * affine[:3, 0]  # shifted by 0.3 voxel, as after a resampling
    with pytest.raises(DicomSegGridError, match="not on the series' grid|off the label map's voxel centres"):
        label_frames(image.numpy(), affine, headers, "series")
    with pytest.raises(DicomSegGridError, match="reach voxel indices"):
        label_frames(image.numpy()[:, :, :3], image.affine.numpy(), headers, "series")


def test_segment_names_from_channel_def():
    assert segment_names({"0": "bone"}) == {1: "bone"}  # one sigmoid channel: label 1
    assert segment_names({"0": "background", "1": "femoral_cartilage", "2": "tibial_cartilage"}) == {
        1: "femoral_cartilage", 2: "tibial_cartilage"}


# ---------------------------------------------------------------------------------- bundle inference.json
LOWER_LIMB = ct_bundle("lower_limb_afu_unet")
#: 2.4 mm in-plane for the network (the SEG and NIfTI are still on the series' 0.98 mm grid, after Invertd): keeps
#: the 512x512x20 real series at a few seconds of CPU
FAST = {"pixdim": [2.4, 2.4, -1]}


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """Tiny AFU-Net weights: seeded random init; with the real series present, the output bias is shifted so that
    about a third of it is foreground (a random net is otherwise all one class), so the SEG has something to show."""
    ckpt = tmp_path_factory.mktemp("dicom_seg_models")
    torch.manual_seed(0)
    parser = LOWER_LIMB.workflow(["inference.json"], "infer", device="cpu", **FAST).parser
    net = parser.get_parsed_content("network_def").eval()
    if SERIES.is_dir():
        scan = parser.get_parsed_content("preprocessing")({"image": str(SERIES)})
        image = parser.get_parsed_content("inferer#transform")(scan)["image"][None, ..., ::4]  # as each slab is
        with torch.no_grad():
            logits = parser.get_parsed_content("inferer#inferer")(image, net)
            net.head.bias.sub_(torch.quantile(logits.flatten()[::7], 2 / 3))
    torch.save(net.state_dict(), ckpt / "model.pt")
    return ckpt


def test_nifti_input_warns_and_writes_no_seg(random_weights, tmp_path):
    rng = np.random.default_rng(0)
    image = write_nifti(tmp_path / "case.nii.gz", (rng.random((40, 40, 3)) * 2000 - 1000).astype(np.float32),
                        np.diag([0.8, 0.8, 2.0, 1.0]))
    wf = LOWER_LIMB.workflow(["inference.json"], "infer", datalist=[image], ckpt_dir=str(random_weights),
                             output_dir=str(tmp_path / "out"), save_dicom_seg="true")  # text, as from the CLI
    with pytest.warns(UserWarning, match=r"case\.nii\.gz is not a DICOM series folder"):
        run(wf)
    assert (tmp_path / "out" / "case_seg.nii.gz").is_file()
    assert not list((tmp_path / "out").glob("*.dcm"))


def test_flag_is_off_by_default_and_parsed_as_text():
    parser = LOWER_LIMB.workflow(["inference.json"], "infer").parser
    assert parser["save_dicom_seg"] is False
    last = parser.get_parsed_content("postprocessing").transforms[-1]
    assert isinstance(last, SaveDicomSegd) and not last.enabled
    with pytest.raises(Exception) as e:
        LOWER_LIMB.workflow(["inference.json"], "infer", save_dicom_seg="maybe").parser.get_parsed_content(
            "postprocessing")
    assert "save_dicom_seg" in error_chain(e.value)


@needs_shared
def test_blank_uids_of_an_anonymised_series_are_a_clear_error():
    """The shared example series has empty Study/Series/SOP UIDs (anonymised); a SEG cannot reference it."""
    with pytest.raises(DicomSegReferenceError, match="StudyInstanceUID, SeriesInstanceUID") as e:
        read_series_headers(SERIES)
    assert str(SERIES) in str(e.value) and "save_dicom_seg" in str(e.value)


@pytest.fixture()
def real_series(tmp_path):
    """A copy of the real CT series with the Study/Series UIDs a PACS export carries (the shared copy is
    anonymised to empty UIDs), file names shuffled; SOPInstanceUID stays blank in the dataset (taken from the
    file meta)."""
    return copy_real_series(SERIES, tmp_path / "ct_series")


#: bundle -> (tiny overrides for the real series, segment labels expected from its channel_def)
REAL_SERIES_BUNDLES = {
    "lower_limb_afu_unet": (FAST, ["bone"]),  # one sigmoid channel: segment 1
    "head_neck_two_stage_unet": (  # 8-class softmax: segments 1..7, left/right as modifiers
        {**HEAD_NECK_TINY, "pixdim": [6.0, 6.0, 2.0]},
        ["brainstem", "spinal_cord", "parotid_right", "parotid_left", "mandible", "esophagus", "larynx"],
    ),
}


@pytest.fixture()
def bundle_weights(request, tmp_path):
    """(bundle, overrides, checkpoint dir) for ``request.param``: the calibrated AFU-Net, or a seeded random
    two-stage net (its argmax over 9 random channels already gives every class)."""
    name = request.param
    overrides = REAL_SERIES_BUNDLES[name][0]
    if name == "lower_limb_afu_unet":
        return LOWER_LIMB, overrides, request.getfixturevalue("random_weights")
    bundle = BundleUnderTest(name, {})
    torch.manual_seed(0)
    net = bundle.workflow(["inference.json"], "infer", **overrides).parser.get_parsed_content("network_def")
    torch.save(net.state_dict(), tmp_path / "model.pt")
    return bundle, overrides, tmp_path


@needs_shared
@pytest.mark.parametrize("bundle_weights", list(REAL_SERIES_BUNDLES), indirect=True)
def test_bundle_inference_writes_a_seg_that_matches_the_nifti(bundle_weights, real_series, tmp_path):
    bundle, overrides, ckpt = bundle_weights
    labels = REAL_SERIES_BUNDLES[bundle.name][1]
    meta = json.loads((bundle.configs / "metadata.json").read_text())
    out = tmp_path / "out"
    before = {p.name: p.read_bytes() for p in real_series.iterdir()}
    run(bundle.workflow(["inference.json"], "infer", datalist=[str(real_series)], ckpt_dir=str(ckpt),
                        output_dir=str(out), save_dicom_seg=True, **overrides))
    assert {p.name: p.read_bytes() for p in real_series.iterdir()} == before  # inputs untouched
    assert sorted(p.name for p in out.iterdir()) == ["ct_series_seg.dcm", "ct_series_seg.nii.gz"]
    nifti = nib.load(out / "ct_series_seg.nii.gz")
    label = np.asarray(nifti.dataobj)
    assert label.shape == (512, 512, 20) and 0.05 < (label > 0).mean() < 0.95  # some foreground, not all
    assert len({label[..., k].tobytes() for k in range(20)}) == 20  # every slice differs: a slice-order bug shows

    seg = hd.seg.segread(out / "ct_series_seg.dcm")
    sources = [pydicom.dcmread(real_series / n, stop_before_pixels=True) for n in sorted(os.listdir(real_series))]
    uids = [d.file_meta.MediaStorageSOPInstanceUID for d in sources]
    # references the source series and every one of its instances
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    ref_series = seg.ReferencedSeriesSequence[0]
    assert ref_series.SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert sorted(i.ReferencedSOPInstanceUID for i in ref_series.ReferencedInstanceSequence) == sorted(uids)
    assert seg.SeriesInstanceUID != sources[0].SeriesInstanceUID
    # segments named from metadata.json, automatic, identified by the bundle's name and version
    assert seg.SegmentationType == "BINARY"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == labels
    channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert labels == [v for k, v in channel_def.items() if len(channel_def) == 1 or k != "0"]
    for desc in seg.SegmentSequence:
        assert desc.SegmentAlgorithmType == "AUTOMATIC"
        algorithm = desc.SegmentationAlgorithmIdentificationSequence[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == (meta["name"], meta["version"])
        side = next((w for w in desc.SegmentLabel.replace("_", " ").split() if w in ("left", "right")), None)
        if side is not None:
            modifier = desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0]
            assert modifier.CodeMeaning.lower() == side

    # voxel for voxel, per segment: each source slice's frames against the NIfTI sampled at that slice's pixel
    # centres, computed here from the DICOM geometry alone (IPP + r * row spacing * IOP[3:] + c * ... * IOP[:3])
    numbers = list(range(1, len(labels) + 1))
    frames = seg.get_pixels_by_source_instance(uids, segment_numbers=numbers, assert_missing_frames_are_empty=True)
    inv = np.linalg.inv(nifti.affine)
    max_diff, compared = 0, 0
    for d, frame in zip(sources, frames):
        iop, (dr, dc) = np.asarray(d.ImageOrientationPatient, float), np.asarray(d.PixelSpacing, float)
        r, c = np.meshgrid(np.arange(d.Rows), np.arange(d.Columns), indexing="ij")
        lps = (np.asarray(d.ImagePositionPatient, float) + r[..., None] * dr * iop[3:] + c[..., None] * dc * iop[:3])
        ijk = (lps @ RAS_LPS.T) @ inv[:3, :3].T + inv[:3, 3]
        assert np.abs(ijk - np.rint(ijk)).max() < 1e-3
        i, j, k = np.rint(ijk).astype(int).transpose(2, 0, 1)
        truth = label[i, j, k]
        for n in numbers:
            max_diff = max(max_diff, int(np.abs(frame[..., n - 1].astype(int) - (truth == n)).max()))
        compared += truth.size
    assert compared == label.size and max_diff == 0
    # the frames' positions are the source slices' positions
    by_uid = dict(zip(uids, sources))
    for item in seg.PerFrameFunctionalGroupsSequence:
        ref = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose(item.PlanePositionSequence[0].ImagePositionPatient,
                                   by_uid[ref].ImagePositionPatient, atol=1e-4)
    print(f"{bundle.name}: SEG vs NIfTI max per-voxel difference {max_diff} over {compared} voxels x "
          f"{len(numbers)} segments, {seg.NumberOfFrames} frames, foreground {(label > 0).mean():.3f}")


def test_segment_codes_read_the_side_in_either_word_order():
    from custom_networks.writers.dicom_seg import property_codes

    assert property_codes("left parotid") == property_codes("parotid_left") == ("AnatomicalStructure", "ParotidGland", "Left")
    assert property_codes("eye_right")[1:] == ("Eye", "Right")
    assert property_codes("spinal_cord") == ("AnatomicalStructure", "SpinalCord", None)
    assert property_codes("larynx")[1] == "Larynx" and property_codes("esophagus")[1] == "Esophagus"
    assert property_codes("kidney") == ("AnatomicalStructure", "AnatomicalStructure", None)
