"""SlabInferer and SlabResampling: slab-by-slab inference gives the whole-volume chain's voxels, bit for bit."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SliceInferer
from monai.transforms import (Activationsd, AsDiscreted, Compose, DivisiblePadd, EnsureTyped, Invertd,
                              ScaleIntensityRanged, Spacingd)
from monai.utils import LazyAttr, TraceKeys

from custom_networks.engine.slabs import SlabInferer
from custom_networks.transforms.spacing import SlabResampling, untouched_zeros
from scripts.benchmark.profiles import whole_volume_chain
from scripts.common import registry
from scripts.common.bundles import Bundle
from scripts.common.measure import rss_gb
from tests.bundle_configs.helpers import run

#: an oblique scan (a few degrees about two axes) besides axis-aligned ones: the slab rows still read their slices
_TILT = torch.tensor([[0.998, -0.05, 0.03], [0.05, 0.998, -0.02], [-0.03, 0.02, 0.999]], dtype=torch.float64)


def _affine(spacing, tilt: bool = False) -> torch.Tensor:
    affine = torch.eye(4, dtype=torch.float64)
    affine[:3, :3] = (_TILT if tilt else torch.eye(3, dtype=torch.float64)) @ torch.diag(
        torch.tensor(spacing, dtype=torch.float64))
    affine[:3, 3] = torch.tensor([-100.3, 57.1, -812.77])
    return affine


def _ct(shape, spacing, tilt=False, seed=0) -> MetaTensor:
    gen = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-900, 1200, shape[0]).view(1, -1, 1, 1)
    return MetaTensor(ramp + 300 * torch.randn(1, *shape, generator=gen), affine=_affine(spacing, tilt))


def _slab_transforms():
    return [Spacingd("image", pixdim=[0.8, 0.8, -1], mode="bilinear"),
            ScaleIntensityRanged("image", -500, 1500, 0.0, 1.0, clip=True), DivisiblePadd("image", k=[16, 16, 1]),
            EnsureTyped("image")]


def _net(out_channels: int) -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(),
                              torch.nn.Conv2d(4, out_channels, 3, padding=1)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3)
    return net


@pytest.mark.parametrize("shape,spacing,tilt", [((96, 80, 23), (0.98, 0.98, 2.0), False),
                                                ((61, 77, 19), (0.7, 0.75, 1.25), False),
                                                ((64, 60, 17), (0.98, 0.9, 2.5), True)])
def test_slab_resampling_gives_monai_whole_volume_resampling_bit_for_bit(shape, spacing, tilt):
    """Forward (Spacingd) and inverse (its SpatialResample inverse), slab by slab, equal MONAI's whole volume."""
    image = _ct(shape, spacing, tilt)
    spacing_t = Spacingd("image", pixdim=[0.8, 0.8, -1], mode="bilinear")
    whole = spacing_t({"image": image.clone()})["image"]
    op = spacing_t({"image": image}, lazy=True)["image"].pending_operations[-1]
    info = op[TraceKeys.EXTRA_INFO]
    forward = SlabResampling(op[LazyAttr.AFFINE], shape, op[LazyAttr.SHAPE], 2, info["mode"], info["padding_mode"],
                             False, torch.float64)
    back = spacing_t.inverse({"image": whole.clone()})["image"].as_tensor()
    inv_op = spacing_t.spacing_transform.sp_resample
    inv_op.lazy = True
    try:
        lazy = inv_op(whole, dst_affine=info["src_affine"], spatial_size=shape, mode="bilinear",
                      padding_mode=info["padding_mode"], align_corners=False, dtype=torch.float64)
    finally:
        inv_op.lazy = False
    inverse = SlabResampling(lazy.pending_operations[-1][LazyAttr.AFFINE], whole.shape[1:], shape, 2, "bilinear",
                             info["padding_mode"], False, torch.float64)
    for slab in (1, 4, 7):
        for z0 in range(0, shape[2], slab):
            z1 = min(shape[2], z0 + slab)
            lo, hi = forward.source_range(z0, z1)
            got = forward(image.as_tensor()[..., lo:hi], lo, z0, z1)
            assert torch.equal(got, whole.as_tensor()[..., z0:z1]), (slab, z0)
            lo, hi = inverse.source_range(z0, z1)
            got = inverse(whole.as_tensor()[..., lo:hi], lo, z0, z1)
            assert torch.equal(got, back[..., z0:z1]), (slab, z0)


def _whole_chain(image: MetaTensor, net, activation, discretize=None) -> torch.Tensor:
    """MONAI's whole-volume chain, as the 2D bundles ran before: transforms, SliceInferer, activation, Invertd."""
    pre = Compose(_slab_transforms())
    d = pre({"image": image.clone()})
    with torch.no_grad():
        d["pred"] = SliceInferer(2, roi_size=(-1, -1), sw_batch_size=8, progress=False)(d["image"][None], net)[0]
    post = [activation, Invertd("pred", transform=pre, orig_keys="image", nearest_interp=False, to_tensor=True)]
    return torch.as_tensor(Compose(post + ([discretize] if discretize else []))(d)["pred"])


@pytest.mark.parametrize("tilt", [False, True])
def test_slab_inferer_gives_the_whole_volume_chains_probabilities_bit_for_bit(tilt):
    image, net = _ct((72, 64, 21), (0.98, 0.98, 2.0), tilt), _net(1)
    activation = Activationsd("pred", sigmoid=True)
    expected = _whole_chain(image, net, activation)
    for slab in (1, 5, 64):
        inferer = SlabInferer(SliceInferer(2, roi_size=(-1, -1), sw_batch_size=8, progress=False),
                              Compose(_slab_transforms()), activation, slab_slices=slab, output_dtype=torch.float32)
        with torch.no_grad():
            got = inferer(image.clone()[None], net)
        assert got.shape == (1, *expected.shape) and torch.equal(got[0].as_tensor(), expected), slab
        assert torch.equal(got.affine, image.affine)  # the label map is on the scan's grid


def test_slab_inferer_label_map_equals_softmax_argmax_of_the_whole_chain_and_network_sees_slabs():
    image, net = _ct((64, 56, 13), (0.98, 0.98, 2.0)), _net(3)
    activation, discretize = Activationsd("pred", softmax=True), AsDiscreted("pred", argmax=True)
    expected = _whole_chain(image, net, activation, discretize)
    seen = []
    net.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    inferer = SlabInferer(SliceInferer(2, roi_size=(-1, -1), sw_batch_size=8, progress=False),
                          Compose(_slab_transforms()), activation, discretize, slab_slices=4)
    with torch.no_grad():
        got = inferer(image.clone()[None], net)
    assert got.dtype == torch.uint8 and torch.equal(got[0].as_tensor(), expected.to(torch.uint8))
    assert 0 < expected.float().mean() < 2  # a label map of several classes, not one
    assert max(seen) <= 4 and sum(seen) == 13  # the network only ever sees one slab's slices


def test_untouched_zeros_commits_only_the_slices_written():
    """A 2 GB whole-volume-sized input with 3 slices written costs about those slices (12 MB), not 2 GB."""
    before = rss_gb()
    big = untouched_zeros((1, 1024, 1024, 500), torch.float32, slowest=3)  # 500 slices of 4 MB
    big[..., 100:103] = 1.0
    assert rss_gb() - before < 0.2
    assert big.shape == (1, 1024, 1024, 500) and float(big[0, 5, 7, 101]) == 1.0 and float(big[0, 5, 7, 99]) == 0.0
    del big


def _balanced(net: torch.nn.Module) -> torch.nn.Module:
    """Seeded weights whose output head is shifted so that each class wins on part of a [0, 1] ramp (an untrained
    network otherwise gives one class everywhere, and a label map of one class cannot show a voxel moved)."""
    head = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    x = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(2, 1, 64, 64) + 0.05 * torch.randn(2, 1, 64, 64)
    outputs = []
    hook = head.register_forward_hook(lambda _m, _a, out: outputs.append(out))
    with torch.no_grad():
        net.eval()(x)
        hook.remove()
        head.bias -= outputs[-1].transpose(0, 1).flatten(1).median(1).values
    return net


@pytest.mark.parametrize("bundle", ["knee_eas_unet", "lower_limb_afu_unet", "spine_msr_attention_unet"])
def test_bundle_label_map_is_the_whole_volume_chains_voxel_for_voxel(bundle, tmp_path):
    """Each 2D bundle's inference.json (slabs of 4 slices, the last one short) writes the same label map as the
    whole-volume chain it replaced (:func:`scripts.benchmark.profiles.whole_volume_chain`), same seeded weights."""
    rec = registry.record(bundle)
    shape = [70, 62, 62]
    shape[rec.slice_axis] = 11
    ramp = np.linspace(-1000, 1500, shape[1], dtype=np.float32).reshape(1, -1, 1)  # classes change along it
    noise = np.random.default_rng(0).normal(0, 100, shape).astype(np.float32)
    image = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(ramp + noise, np.diag([*rec.spacing_mm, 1.0])), str(image))
    base = {**registry.tiny(bundle), "datalist": [str(image)], "ckpt_dir": str(tmp_path), "runtime": "torch"}
    torch.manual_seed(0)
    net = _balanced(Bundle(bundle).parser(**registry.tiny(bundle)).get_parsed_content("network_def"))
    torch.save(net.state_dict(), tmp_path / "model.pt")
    maps = {}
    for name, overrides in {"slabs": {"slab_slices": 4}, "whole": whole_volume_chain(bundle)}.items():
        run(Bundle(bundle).workflow(["inference.json"], "infer", **base, **overrides,
                                    output_dir=str(tmp_path / name)))
        maps[name] = nib.load(tmp_path / name / "case_seg.nii.gz")
    slabs, whole = (np.asarray(m.dataobj) for m in maps.values())
    assert slabs.shape == tuple(shape) and slabs.dtype == whole.dtype == np.uint8
    assert np.array_equal(slabs, whole) and np.array_equal(maps["slabs"].affine, maps["whole"].affine)
    assert len(np.unique(slabs)) > 1  # seeded weights on a ramp: more than one class, so voxels can differ
