"""Sizes of the benchmark's two profiles, and the overrides that undo each bottleneck fix (the "before" rows).

Tiny widths are the registry's (:func:`scripts.common.registry.tiny`), the ones every test uses. A profile is
built when asked for (``PROFILES[name]()``): the quick one reads the head-and-neck organ list, which imports
the networks, and the parent process of a standard run never needs them.
"""

from __future__ import annotations

from typing import Any

from scripts.common.registry import tiny

KNEE, LOWER_LIMB, SPINE, HEAD_NECK = ("knee_eas_unet", "lower_limb_afu_unet", "spine_msr_attention_unet",
                                      "head_neck_two_stage_unet")


def quick() -> dict[str, Any]:
    """Runs in under a minute: tiny widths, tiny volumes, its sections side by side (``concurrent``), so its
    timings are a smoke test, not a measurement."""
    hn_tiny = tiny(HEAD_NECK, "thesis")  # the head-and-neck data here are 8-organ blobs: the thesis organ setup
    return {
        "conv_grid": {"conv2d": ([32, 64], 64), "conv3d": ([16, 32], 16)}, "repeats": 2,
        "train": {
            KNEE: {**tiny(KNEE), "slices_per_volume": 2, "batch_size": 1},  # >= 2 iterations in each epoch
            LOWER_LIMB: {**tiny(LOWER_LIMB), "slices_per_volume": 2, "crop_size": [32, 32], "batch_size": 1},
            SPINE: {**tiny(SPINE), "slices_per_volume": 2, "batch_size": 1},
            HEAD_NECK: {**hn_tiny, "pixdim": [2.0, 2.0, 4.0]},
        },
        "blob_shape": {KNEE: (8, 32, 32), LOWER_LIMB: (32, 32, 8), SPINE: (32, 32, 8), HEAD_NECK: (48, 48, 24)},
        "train_volumes": 4, "train_epochs": 2,
        "infer": {
            KNEE: {"shape": (2, 32, 32), "overrides": tiny(KNEE)},
            LOWER_LIMB: {"shape": (32, 32, 2), "overrides": tiny(LOWER_LIMB)},
            SPINE: {"shape": (32, 32, 2), "overrides": tiny(SPINE)},
            HEAD_NECK: {"shape": (64, 64, 32), "overrides": {
                **hn_tiny, "organ_setup": "thesis", "pixdim": [2.0, 2.0, 4.0], "patch_size": [16, 16, 16]}},
        },
        "full_slices": {KNEE: 160, LOWER_LIMB: 200, SPINE: 200},
        "memory": {"lengths": (4, 12), "slice": (64, 64), "whole_max_slices": 12, "overrides": {
            KNEE: tiny(KNEE), LOWER_LIMB: tiny(LOWER_LIMB), SPINE: tiny(SPINE)}},
        "networks": {"scale": 1 / 16, "size2d": 32, "size3d": (16, 16, 16)},
        "layers": {"tiny": True, "size2d": (64, 64), "size3d": (32, 32, 16)},
        "concurrent": True,
        "torchrun": {"bundle": KNEE, "data": "blobs", "volumes": 4, "epochs": 1,
                     "overrides": {**tiny(KNEE), "slices_per_volume": 2}},
        # the shipped configs at tiny widths and sizes: stage 1 and one organ-net size (every organ 16^3)
        "training_step": {"bundle": HEAD_NECK, "overrides": tiny(HEAD_NECK, "openkbp"), "repeats": 2,
                          "compile_budget_s": 60},
    }


def standard() -> dict[str, Any]:
    """What fits about 15 minutes on 2 shared CPU cores. ``None`` widths: the bundle's own default."""
    return {
        # the yardstick: widths x one input size per dimension, each contiguous and channels-last; the best counts
        "conv_grid": {"conv2d": ([32, 64, 128, 256], 128), "conv3d": ([32, 64, 128], 32)}, "repeats": 3,
        "train": {  # tiny widths on the phantoms' real sizes: the data pipeline's share is what is measured
            KNEE: {"network_def#features": [8, 16, 32, 64, 128], "slices_per_volume": 4},
            LOWER_LIMB: {"network_def#features": [8, 16, 32, 64], "slices_per_volume": 4},
            SPINE: {"network_def#features": [8, 16, 32, 64, 128], "slices_per_volume": 1},
            HEAD_NECK: {"features": [6, 12, 24, 48], "stage1_size": [64, 64, 32], "pixdim": [3.0, 3.0, 5.0]},
        },
        "train_volumes": 6, "train_epochs": 5,
        # keyword arguments of each bundle's demo-data renderer; a bundle without one (head-and-neck) is rendered
        # from the real organ masks by ``python -m scripts.prepare_head_neck`` with these options
        "phantom_args": {LOWER_LIMB: {"num_slices": 8}, SPINE: {"num_slices": 8},
                         HEAD_NECK: {"cases": "0522c0017,0522c0057,0522c0161", "voxel_size": "3.0,3.0,5.0"}},
        "infer": {  # full size and the bundles' default widths; a slab of 8 slices (lower limb: 1) for the 2D ones
            KNEE: {"shape": (8, 384, 384), "overrides": {}},
            LOWER_LIMB: {"shape": (512, 512, 1), "overrides": {}},
            SPINE: {"shape": (512, 512, 8), "overrides": {}},
            HEAD_NECK: {"shape": (512, 512, 200), "overrides": {}},
        },
        "full_slices": {KNEE: 160, LOWER_LIMB: 200, SPINE: 200},
        # peak RSS of whole scans of 512x512 slices at each length (the bundles' widths, default runtime); the
        # whole-volume chain only up to whole_max_slices (it held 15 GB at 200 slices: 400 would not fit here)
        "memory": {"lengths": (100, 400), "slice": (512, 512), "whole_max_slices": 100,
                   "overrides": {KNEE: {}, LOWER_LIMB: {}, SPINE: {}}},
        "networks": {"scale": 1.0, "size2d": 128, "size3d": (48, 48, 48)},
        "layers": {"tiny": False, "size2d": None, "size3d": None},  # the bundles' widths, the papers' slice sizes
        "concurrent": False,
        "torchrun": {"bundle": KNEE, "data": "phantoms", "volumes": 6, "epochs": 2,
                     "overrides": {"network_def#features": [8, 16, 32, 64, 128], "slices_per_volume": 2}},
        # the shipped train.json / train_stage2.json as they are (no overrides): widths, stage1_size, crop_sizes,
        # stage2_batch x stage2_samples; torch.compile rows (a cold compile: 30-60 s each) share one budget
        "training_step": {"bundle": HEAD_NECK, "overrides": {}, "repeats": 3, "compile_budget_s": 75},
    }


#: profile name -> the function that builds its sizes
PROFILES = {"quick": quick, "standard": standard}

#: The bottleneck fixes this benchmark led to, and the overrides that undo them, by the network's spatial dims
#: (2: the slice-by-slice bundles; 3: the head-and-neck two-stage pipeline): each bundle's "before" row runs its
#: ``inference.json`` with these, in the same run as the fixed one.
BEFORE_FIXES: dict[int, dict[str, Any]] = {
    2: {"fix": "channels-last network + torch.inference_mode in LargeSliceInferer",
        "overrides": {"channels_last": False, "inferer#inferer#inference_mode": False}},
    3: {"fix": "organ boxes from stage 1's own grid; argmax before Invertd (one label channel resampled nearest, "
               "not nine probability channels bilinear); that label map put back on the scan's grid by an index "
               "gather (GatherInverseSpacingd), not a dense sampling grid",
        "overrides": {
            "preprocessing#transforms#5#_target_": "Spacingd",  # GatherInverseSpacingd's place in inference.json
            "network_def#_target_": "scripts.benchmark.worker.FullGridBoxesTwoStageUNet",
            "postprocessing#transforms#0": {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing",
                                            "orig_keys": "image", "nearest_interp": False, "to_tensor": True},
            "postprocessing#transforms#1": {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            "postprocessing#transforms#2": {"_target_": "Identity"}}},  # the label map's nearest Invertd, undone
}


def whole_volume_chain(bundle: str) -> dict[str, Any]:
    """Overrides that put a 2D bundle's ``inference.json`` back on the whole-volume chain it ran before its
    ``SlabInferer``: the slab transforms appended to ``preprocessing``, the slice inferer alone, and activation,
    ``Invertd`` and discretisation in ``postprocessing`` (MONAI's own order). The benchmark's "whole volume"
    rows and the test that the slab chain gives the same voxels both run it."""
    from scripts.common.bundles import Bundle

    parser = Bundle(bundle).parser(["inference.json"])
    post = parser.get("postprocessing#transforms")
    invert = next(i for i, t in enumerate(post) if t["_target_"] == "Invertd")
    return {"preprocessing#transforms": [*parser.get("preprocessing#transforms"),
                                         *parser.get("inferer#transform#transforms")],
            "inferer": parser.get("inferer#inferer"),
            "postprocessing#transforms": [*post[:invert], parser.get("inferer#activation"), post[invert],
                                          parser.get("inferer#discretize"), *post[invert + 1:]]}
