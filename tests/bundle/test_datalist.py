"""``--datalist`` of ``inference.json``: one path string is one input (a file or a DICOM folder), a list is one input
per entry, and a ``.json`` path is a datalist whose testing images are the inputs; checked through each bundle's
own ``inference.json`` key resolution (``dataset#data``), with the values ``monai.bundle run``'s command-line parser
(fire) makes of ``--datalist ct.nii.gz`` and ``--datalist "['ct.nii.gz']"``."""

from __future__ import annotations

import json

import pytest
from fire.parser import DefaultParseValue

from custom_networks.bundle.datalist import DatalistError, inference_inputs
from scripts.common.bundles import names
from tests.bundle_configs.helpers import BundleUnderTest, error_chain


def _data(bundle: str, datalist) -> list[dict]:
    return BundleUnderTest(bundle, {}).parser(datalist=datalist).get_parsed_content("dataset#data")


@pytest.mark.parametrize("bundle", names())
def test_one_path_string_is_one_input(bundle, tmp_path):
    scan = str(tmp_path / "ct.nii.gz")
    as_string, as_list = DefaultParseValue(scan), DefaultParseValue(f"['{scan}']")  # what fire hands MONAI
    assert as_string == scan and as_list == [scan]
    assert _data(bundle, as_string) == _data(bundle, as_list) == [{"image": scan}]
    series = tmp_path / "dicom_series"
    series.mkdir()
    assert _data(bundle, str(series)) == [{"image": str(series)}]  # a DICOM folder, one input
    assert _data(bundle, [scan, str(series)]) == [{"image": scan}, {"image": str(series)}]


@pytest.mark.parametrize("bundle", ["head_neck_two_stage_unet"])
def test_a_datalist_json_path_gives_its_testing_images(bundle, tmp_path):
    for name in ("a.nii.gz", "b.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "datalist.json").write_text(json.dumps({"testing": [{"image": "a.nii.gz"}, {"image": "b.nii.gz"}]}))
    expected = [{"image": str(tmp_path / "a.nii.gz")}, {"image": str(tmp_path / "b.nii.gz")}]
    assert _data(bundle, str(tmp_path / "datalist.json")) == expected
    # the default: <dataset_dir>/datalist.json, as before
    parser = BundleUnderTest(bundle, {}).parser(dataset_dir=str(tmp_path))
    assert parser.get_parsed_content("dataset#data") == expected
    with pytest.raises(Exception) as err:
        _data(bundle, str(tmp_path / "missing.json"))
    assert "Datalist not found" in error_chain(err.value)


def test_inference_inputs_forms(tmp_path):
    assert inference_inputs("ct.nii.gz") == ["ct.nii.gz"]
    assert inference_inputs(tmp_path) == [str(tmp_path)]
    assert inference_inputs(("a.nii.gz", tmp_path)) == ["a.nii.gz", str(tmp_path)]
    with pytest.raises(DatalistError, match="--datalist must be an input path"):
        inference_inputs([{"image": "a.nii.gz"}])
