"""Joining stage 1 and organ nets trained in separate folders, and loading parts of a pipeline."""

from __future__ import annotations

import pytest
import torch

from custom_networks import TwoStageUNet
from custom_networks.bundle.two_stage_weights import combine_pipelines, load_pipeline_weights

TINY = dict(stage1_size=(16, 16, 16), features=(4, 8, 16, 32))


def _net(organs=("a", "b"), seed=0):
    torch.manual_seed(seed)
    return TwoStageUNet(list(organs), {o: (16, 16, 16) for o in organs}, **TINY)


def test_combined_pipeline_takes_stage1_from_one_file_and_the_organ_nets_from_the_other(tmp_path):
    one, two = _net(seed=1), _net(seed=2)
    torch.save({"model": one.state_dict()}, tmp_path / "s1.pt")
    torch.save(two.state_dict(), tmp_path / "s2.pt")
    combine_pipelines(tmp_path / "s1.pt", tmp_path / "s2.pt", tmp_path / "out.pt")
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    for k, v in out.items():
        assert torch.equal(v, (one if k.startswith("stage1.") else two).state_dict()[k]), k
    combine_pipelines(tmp_path / "s1.pt", tmp_path / "s2.pt", tmp_path / "half.pt", half=True)
    half = torch.load(tmp_path / "half.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in half.values() if v.is_floating_point())
    net = _net(seed=3)
    net.load_state_dict(half)  # cast back to float32
    assert net.stage1.head.weight.dtype == torch.float32
    assert torch.allclose(net.stage1.head.weight, one.stage1.head.weight, atol=1e-3)
    torch.save(_net(organs=("a", "c")).state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not two-stage pipelines of the same organs"):
        combine_pipelines(tmp_path / "s1.pt", tmp_path / "other.pt", tmp_path / "bad.pt")


def test_organ_nets_trained_in_folders_of_their_own_are_taken_from_them(tmp_path):
    one, two, only_b = _net(seed=1), _net(seed=2), _net(seed=4)
    for name, net in (("s1", one), ("s2", two), ("b", only_b)):
        torch.save(net.state_dict(), tmp_path / f"{name}.pt")
    combine_pipelines(tmp_path / "s1.pt", tmp_path / "s2.pt", tmp_path / "out.pt", organ_paths={"b": tmp_path / "b.pt"})
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    for k, v in out.items():
        source = one if k.startswith("stage1.") else only_b if k.startswith("stage2.b.") else two
        assert torch.equal(v, source.state_dict()[k]), k
    with pytest.raises(ValueError, match="no organ net 'c'"):
        combine_pipelines(tmp_path / "s1.pt", tmp_path / "s2.pt", tmp_path / "bad.pt", organ_paths={"c": tmp_path / "b.pt"})


def test_stage1_keeps_only_the_organ_nets_and_refuses_another_organ_setup(tmp_path):
    served = _net(seed=1)
    torch.save(served.state_dict(), tmp_path / "model.pt")
    net = load_pipeline_weights(_net(seed=2), str(tmp_path / "model.pt"), prefix="stage2.")
    assert torch.equal(net.stage2["a"].head.weight, served.stage2["a"].head.weight)
    assert not torch.equal(net.stage1.head.weight, served.stage1.head.weight)
    with pytest.raises(ValueError, match="another organ setup"):
        load_pipeline_weights(_net(organs=("x",)), str(tmp_path / "model.pt"), prefix="stage2.")
    assert load_pipeline_weights(net, str(tmp_path / "missing.pt"), missing_ok=True) is net


@pytest.mark.parametrize("prefix", ["", "stage2."])
def test_weights_of_another_setup_are_refused_in_one_line_that_names_the_fix(tmp_path, prefix):
    """The thesis network (8 organs, other widths) given the 7-organ OpenKBP model.pt: one line naming --ckpt_dir,
    not torch's wall of size mismatches."""
    torch.save(_net(organs=("a", "b", "c")).state_dict(), tmp_path / "model.pt")
    other = TwoStageUNet(["a", "b", "c"], {o: (16, 16, 16) for o in "abc"}, stage1_size=(16, 16, 16), features=(8, 16, 32, 64))
    with pytest.raises(ValueError, match="another organ setup or network size.*--ckpt_dir") as caught:
        load_pipeline_weights(other, str(tmp_path / "model.pt"), prefix=prefix)
    assert "\n" not in str(caught.value)
