"""The one per-bundle registry of the tools and tests: what each bundle needs that its configs do not say.

Every bundle-specific fact a tool or test uses is a field of the bundle's :class:`Record` in :data:`RECORDS`
(demo data, tiny test widths, ablation variants, export parts, the kind of input it reads, its network at the
paper's widths), so tools hold no ``if bundle == "..."`` and no list of bundle names. Which bundles exist is
:func:`scripts.common.bundles.names` (the folders of ``bundles/``); a test checks the registry has a record for
each and no other. The order of :data:`RECORDS` is the order of the benchmark's tables (the 2D bundles, then 3D).
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class PaperNetwork:
    """A bundle's network as its paper sizes it: ``custom_networks.<cls>(**kwargs)`` on an input of ``input_size``.

    ``part`` names the part of the bundle's pipeline it is (``"stage 1"``), empty for the whole network."""

    cls: str
    kwargs: dict[str, Any]
    input_size: tuple[int, ...]
    part: str = ""


@dataclass(frozen=True)
class Record:
    """What the tools know about one bundle beyond its configs."""

    name: str
    #: short name for tables ("knee", "lower limb", ...)
    title: str
    #: the network's spatial dims: 2 (trained on slices, a ``SliceInferer`` walks the volume) or 3
    spatial_dims: int
    #: "MR" or "CT": what a synthetic input volume of this bundle looks like
    modality: str
    #: voxel size (mm) of a typical input volume (the benchmark's synthetic volumes)
    spacing_mm: tuple[float, float, float]
    #: foreground classes of the setup the synthetic data have (one generated box each in the quick benchmark)
    foreground_classes: int
    #: the network at the paper's widths (benchmark networks section, compression tables)
    paper_network: PaperNetwork
    #: tiny widths (and sizes) that run a whole workflow on a CPU in seconds: every test and quick run uses these
    tiny: dict[str, Any]
    #: two-stage bundles: the tiny crop of every organ (``crop_sizes`` for the organs of a named organ setup)
    tiny_crop: tuple[int, int, int] | None = None
    #: the axis a 2D pipeline slices the volume along (knee: 0, sagittal; CT: 2, axial); None for 3D
    slice_axis: int | None = None
    #: ``"module:function"`` rendering synthetic demo data, ``generator(out, num_volumes, seed, log) -> datalist``
    #: (imported on use, so one renderer's imports never slow another); None: no synthetic generator
    demo_data: str | None = None
    #: default number of demo volumes
    demo_volumes: int = 0
    #: ``python -m scripts.demo`` overrides (widths that train in minutes on a CPU); None: no demo
    demo_overrides: dict[str, Any] | None = None
    #: ``() -> {variant: overrides of train.json}``: the ablation rows and baselines ``scripts.compare_models``
    #: trains and ``scripts.model_stats`` counts (built on use: it reads the networks' ablation tables)
    variants: Callable[[], dict[str, dict]] | None = None
    #: what ``scripts.export`` exports: "model" (the whole network) or "stages" (stage 1 and each organ's network)
    export_parts: str = "model"
    #: config files merged after ``train.json`` / ``inference.json`` for the setup the synthetic data have
    synthetic_setup: tuple[str, ...] = ()
    #: TotalSegmentator class group merged into the bundle's class for ``scripts.real_ct_check``; None: no check
    totalsegmentator_group: str | None = None


# ---- ablation variants (scripts.compare_models) ------------------------------------------------------------
# Report widths: a quarter of the papers' (64-1024, 64-512) so that a comparison fits a CPU session.
KNEE_FEATURES = [16, 32, 64, 128, 256]
LOWER_LIMB_FEATURES = [16, 32, 64, 128]
# half of paper 001's [D] widths 32-512. Whole 512x512 slices cost ~7 s a step here, so the comparison trains
# on 192x192 crops centred on spine voxels (2 volumes x 4 per step); validation and testing use whole volumes.
SPINE_FEATURES = [16, 32, 64, 128, 256]
SPINE_CROP = [192, 192, 1]


def _afu(preset: str) -> dict:
    from custom_networks import AFUNet

    flags = AFUNet.ABLATIONS[preset]
    return {"network_def#features": LOWER_LIMB_FEATURES, "network_def#dasp": flags["dasp"],
            "network_def#attention_fusion": flags["attention_fusion"]}


def _msr(preset: str, loss_name: str = "dice") -> dict:
    from custom_networks import MSRAttentionUNet

    return {**{f"network_def#{k}": v for k, v in MSRAttentionUNet.ABLATIONS[preset].items()},
            "network_def#features": SPINE_FEATURES, "slices_per_volume": 4, "loss_name": loss_name,
            "train#random_transforms#0#spatial_size": SPINE_CROP}


def _eas(separable: bool, eas: bool, deep_supervision: bool) -> dict:
    return {
        "network_def#features": KNEE_FEATURES,
        "network_def#separable": separable,
        "network_def#eas": eas,
        "network_def#deep_supervision": deep_supervision,
    }


def _knee_variants() -> dict[str, dict]:
    return {
        # our ablation rows (the paper has no ablation table); "unet" is also the paper's U-Net baseline
        "unet": _eas(False, False, False),
        "unet+separable": _eas(True, False, False),
        "unet+separable+eas": _eas(True, True, False),
        "eas_unet": _eas(True, True, True),
        # the paper's other baselines (Table 1), from MONAI, same widths
        "monai_basic_unetplusplus": {
            "network_def": {
                "_target_": "custom_networks.wrappers.MainOutput",
                "net": {"_target_": "BasicUNetPlusPlus", "spatial_dims": 2, "in_channels": 1,
                        "out_channels": "@num_classes", "features": KNEE_FEATURES + [KNEE_FEATURES[0]]},
            },
            "divisible_k": 16,
        },
        "monai_attention_unet": {
            "network_def": {"_target_": "AttentionUnet", "spatial_dims": 2, "in_channels": 1,
                            "out_channels": "@num_classes", "channels": KNEE_FEATURES, "strides": [2, 2, 2, 2]},
            "divisible_k": 16,
        },
    }


def _lower_limb_variants() -> dict[str, dict]:
    return {
        # the rows of the paper's Table 3; "unet" is also Table 1's U-Net
        **{name: _afu(name) for name in ("unet", "unet_dasp", "unet_af", "afu_unet")},
        # Table 1's Attention U-Net, from MONAI, same widths and poolings (BiSeNet has no MONAI implementation)
        "monai_attention_unet": {
            "network_def": {"_target_": "AttentionUnet", "spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                            "channels": LOWER_LIMB_FEATURES, "strides": [2, 2, 2]},
            "divisible_k": 8,
        },
    }


def _spine_variants() -> dict[str, dict]:
    return {
        # Table 1's U-Net, Table 3's rows (res-block only, attention only, both = the full model)
        **{name: _msr(name) for name in ("unet", "res_block", "attention", "msr_attention_unet")},
        # Table 1's loss comparison on the full model
        **{f"msr_attention_unet+{loss}": _msr("msr_attention_unet", loss) for loss in ("ce", "focal")},
    }


# ---- the records -------------------------------------------------------------------------------------------
RECORDS: dict[str, Record] = {r.name: r for r in (
    Record(
        name="knee_eas_unet", title="knee", spatial_dims=2, slice_axis=0, modality="MR",
        spacing_mm=(0.4, 0.4, 0.4), foreground_classes=2,
        paper_network=PaperNetwork("EASUNet", {"spatial_dims": 2, "in_channels": 1, "out_channels": 3,
                                               "features": (64, 128, 256, 512, 1024)}, (384, 384)),
        tiny={"network_def#features": [4, 8, 16, 32, 64]},
        demo_data="scripts.phantoms.knee:write_knee_dataset", demo_volumes=12,
        demo_overrides={"network_def#features": KNEE_FEATURES},
        variants=_knee_variants,
    ),
    Record(
        name="lower_limb_afu_unet", title="lower limb", spatial_dims=2, slice_axis=2, modality="CT",
        spacing_mm=(0.98, 0.98, 2.0), foreground_classes=1,
        paper_network=PaperNetwork("AFUNet", {"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                                              "features": (64, 128, 256, 512)}, (512, 512)),
        tiny={"network_def#features": [4, 8, 16, 32]},
        demo_data="scripts.phantoms.lower_limb:write_lower_limb_dataset", demo_volumes=8,
        variants=_lower_limb_variants, totalsegmentator_group="bone",
    ),
    Record(
        name="spine_msr_attention_unet", title="spine", spatial_dims=2, slice_axis=2, modality="CT",
        spacing_mm=(0.98, 0.98, 2.0), foreground_classes=1,
        paper_network=PaperNetwork("MSRAttentionUNet", {"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                                                        "features": (32, 64, 128, 256, 512)}, (512, 512)),
        tiny={"network_def#features": [8, 16, 32, 64, 128]},
        demo_data="scripts.phantoms.spine:write_spine_dataset", demo_volumes=8,
        variants=_spine_variants, totalsegmentator_group="vertebrae",
    ),
    Record(
        name="head_neck_two_stage_unet", title="head-neck", spatial_dims=3, modality="CT",
        spacing_mm=(0.98, 0.98, 2.5), foreground_classes=8,  # the thesis's 8 organs
        paper_network=PaperNetwork("UNet3D", {"in_channels": 1, "out_channels": 9, "features": (24, 48, 96, 192)},
                                   (208, 208, 72), part="stage 1"),
        tiny={"features": [4, 8, 16, 32], "stage1_size": [32, 32, 16], "min_margin": [2, 2, 1]},
        tiny_crop=(16, 16, 16), export_parts="stages", synthetic_setup=("setup_thesis.json",),
    ),
)}


def record(bundle: str) -> Record:
    """The record of ``bundle``; a KeyError naming the known bundles otherwise."""
    try:
        return RECORDS[bundle]
    except KeyError:
        raise KeyError(f"no registry record for bundle {bundle!r}; known: {', '.join(RECORDS)}") from None


def tiny(bundle: str, setup: str | None = None) -> dict[str, Any]:
    """A fresh copy of ``bundle``'s tiny overrides. Naming a two-stage bundle's organ ``setup`` (``"openkbp"``,
    ``"thesis"``) adds a tiny crop for each of its organs; without one the crops keep the configs' sizes."""
    rec = record(bundle)
    overrides = copy.deepcopy(rec.tiny)
    if rec.tiny_crop is not None and setup is not None:
        from custom_networks.labels import head_neck

        overrides["crop_sizes"] = {o: list(rec.tiny_crop) for o in head_neck.organs(setup)}
    return overrides


def demo_generator(bundle: str) -> Callable | None:
    """The renderer function of ``bundle``'s synthetic demo data (imported on first use), or None."""
    spec = record(bundle).demo_data
    if spec is None:
        return None
    module, function = spec.split(":")
    return getattr(importlib.import_module(module), function)


def variants(bundle: str) -> dict[str, dict]:
    """``{variant: overrides of train.json}`` of ``bundle`` (empty when it has none)."""
    build = record(bundle).variants
    return build() if build else {}


def paper_network(bundle: str, scale: float = 1.0):
    """``bundle``'s network at its paper's widths, untrained; widths times ``sqrt(scale)`` (parameters grow with
    width squared), at least 2 each."""
    import math

    import custom_networks

    spec = record(bundle).paper_network
    kwargs = dict(spec.kwargs)
    kwargs["features"] = [max(2, int(round(f * math.sqrt(scale)))) for f in kwargs["features"]]
    return getattr(custom_networks, spec.cls)(**kwargs)
