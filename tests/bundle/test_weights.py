"""Reading checkpoints: each way a file can be wrong gives a CheckpointError that names the file."""

from __future__ import annotations

import pytest
import torch

from custom_networks.bundle.weights import CheckpointError, read_checkpoint, read_state_dict


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"not a checkpoint", "truncated or not a PyTorch checkpoint"),
])
def test_an_empty_or_foreign_file_is_a_checkpoint_error_naming_it(tmp_path, content, reason):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=reason) as err:
        read_checkpoint(path)
    assert str(path) in str(err.value)
    assert path.read_bytes() == content  # the file is left as it was


def test_a_truncated_checkpoint_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model": {"w": torch.ones(64, 64)}}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(path)


def test_both_saver_layouts_give_the_state_dict(tmp_path):
    state = {"w": torch.arange(3.0)}
    torch.save(state, tmp_path / "bare.pt")
    torch.save({"model": state}, tmp_path / "nested.pt")
    for name in ("bare.pt", "nested.pt"):
        assert torch.equal(read_state_dict(tmp_path / name)["w"], state["w"])
