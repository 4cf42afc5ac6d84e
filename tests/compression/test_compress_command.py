"""``python -m scripts.compress``: what it refuses, before any fine-tuning starts (no data needed)."""

from __future__ import annotations

import pytest
import torch

from custom_networks import EASUNet
from custom_networks.compression.checkpoint import compressed_state_dict
from scripts.common.registry import tiny
from scripts.compress import compress

KNEE_TINY = tiny("knee_eas_unet")


def _knee_checkpoint(path, features=KNEE_TINY["network_def#features"]):
    net = EASUNet(spatial_dims=2, in_channels=1, out_channels=3, features=features)
    torch.save(net.state_dict(), path)
    return net


def test_an_unknown_bundle_lists_the_bundles(tmp_path):
    with pytest.raises(ValueError, match="not a bundle folder.*knee_eas_unet"):
        compress("no_such_bundle", out=str(tmp_path / "out"))


def test_out_may_not_be_the_source_folder(tmp_path):
    _knee_checkpoint(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="holds the source checkpoint"):
        compress("knee_eas_unet", out=str(tmp_path), ckpt=str(tmp_path / "model.pt"), **KNEE_TINY)


def test_another_networks_checkpoint_is_refused_with_the_reason(tmp_path):
    _knee_checkpoint(tmp_path / "model.pt", features=(8, 16, 32, 64, 128))
    with pytest.raises(ValueError, match="weights of another network.*same overrides"):
        compress("knee_eas_unet", out=str(tmp_path / "out"), ckpt=str(tmp_path / "model.pt"), **KNEE_TINY)
    assert not (tmp_path / "out" / "model.pt").exists()


def test_a_checkpoint_with_pickled_code_is_refused(tmp_path):
    torch.save({"model": {"weight": torch.zeros(1)}, "hook": print}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="pickled Python objects"):
        compress("knee_eas_unet", out=str(tmp_path / "out"), ckpt=str(tmp_path / "model.pt"), **KNEE_TINY)


def test_an_already_compressed_checkpoint_is_refused(tmp_path):
    net = _knee_checkpoint(tmp_path / "plain.pt")
    torch.save(compressed_state_dict(net), tmp_path / "model.pt")
    with pytest.raises(ValueError, match="already compressed"):
        compress("knee_eas_unet", out=str(tmp_path / "out"), ckpt=str(tmp_path / "model.pt"), **KNEE_TINY)


def test_bad_levels_and_rates_are_named(tmp_path):
    _knee_checkpoint(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="levels must be one of"):
        compress("knee_eas_unet", out=str(tmp_path / "out"), ckpt=str(tmp_path / "model.pt"), levels=4, **KNEE_TINY)
    with pytest.raises(ValueError, match="--rates must be comma-separated numbers"):
        compress("knee_eas_unet", out=str(tmp_path / "out"), ckpt=str(tmp_path / "model.pt"), rates="a,b", **KNEE_TINY)
