"""A bundle's own ``configs/inference.json``, built once and run on one case at a time.

:class:`BundleRunner` opens the config with MONAI's ``ConfigWorkflow`` (as ``python -m monai.bundle run``
does) with overrides only: ``bundle_root``, ``datalist``, ``output_dir``, ``ckpt_dir``, ``runtime``,
``save_dicom_seg`` and, when given, ``device``. The network and its weights are loaded once; each case then
replaces the dataset's one entry and runs the config's ``evaluator`` again, so the pre-processing, the network,
the post-processing and the writers (``SaveImaged``, ``SaveDicomSegd``) are the bundle's, unchanged.

Each case writes into a private staging folder (``output_dir``) that is emptied before the case; the caller moves
the finished files to their place. After a failed case the workflow is rebuilt for the next one (an ignite engine
stopped by an exception does not start cleanly again); the weights' exported runtime files stay cached.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from .locate import BundleInfo

__all__ = ["BundleRunner", "CaseError", "failure_reason"]


class CaseError(RuntimeError):
    """One case could not be segmented; the message is the reason, for the summary line."""


def failure_reason(err: BaseException) -> str:
    """The message that says why a case failed: the first error in ``err``'s chain (itself, then its causes) that
    is not MONAI's ``applying transform ...`` wrapper, as ``Type: message`` for errors of libraries and as the
    message alone for this package's own errors (they name the file and the fix)."""
    seen = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = " ".join(str(current).split())
        if text and not text.startswith("applying transform"):
            own = type(current).__module__.startswith("custom_networks")
            return text if own else f"{type(current).__name__}: {text}"
        current = current.__cause__ or current.__context__
    return type(err).__name__


class BundleRunner:
    """Runs ``bundle``'s ``inference.json`` on one image at a time, loading the network once.

    Args:
        bundle: the bundle (:func:`~custom_networks.apps.locate.find_bundle`).
        work_dir: a private folder for the staged outputs (created; emptied before each case).
        ckpt_dir: the folder holding ``model.pt`` (the bundle's ``models/`` when None).
        runtime: the config's ``runtime`` (``auto``, ``torch``, ``openvino``, ``onnxruntime``, ...).
        device: ``"cpu"``, ``"cuda"`` or None (the config's default: CUDA when available).
        dicom_seg: the config's ``save_dicom_seg`` (a DICOM SEG beside the NIfTI for DICOM series inputs).
        threads: threads of the ONNX Runtime / OpenVINO runtimes (None: their default); torch's are set by the
            caller (``torch.set_num_threads``).
    """

    def __init__(self, bundle: BundleInfo, work_dir: str | os.PathLike, ckpt_dir: str | os.PathLike | None = None,
                 runtime: str = "auto", device: str | None = None, dicom_seg: bool = False,
                 threads: int | None = None) -> None:
        self.bundle, self.output_dir = bundle, Path(work_dir)
        self.ckpt_dir, self.runtime, self.device = ckpt_dir, runtime, device
        self.dicom_seg, self.threads = bool(dicom_seg), threads
        self._workflow = None

    def _overrides(self, image: str) -> dict:
        overrides = {
            "bundle_root": str(self.bundle.root),
            "datalist": [image],
            "output_dir": str(self.output_dir),
            "runtime": self.runtime,
            "save_dicom_seg": self.dicom_seg,
        }
        if self.ckpt_dir is not None:
            overrides["ckpt_dir"] = str(Path(self.ckpt_dir).expanduser().resolve())
        if self.device is not None:
            import torch

            overrides["device"] = torch.device("cuda:0" if self.device == "cuda" else self.device)
        return overrides

    def _build(self, image: str):
        from monai.bundle import ConfigWorkflow

        from ..engine.runtimes import RuntimeHandler

        quiet = logging.getLogger("monai.bundle.workflows")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "Logging file is set to False": the command sets up its own logging
        try:
            workflow = ConfigWorkflow(config_file=str(self.bundle.inference_config),
                                      meta_file=str(self.bundle.metadata_file), logging_file=False,
                                      workflow_type="infer", **self._overrides(image))
        finally:
            quiet.setLevel(level)
        workflow.initialize()
        evaluator = workflow.evaluator
        # the command reports each case and each failure itself: the engine's own log lines (a traceback per
        # failed case from StatsHandler) would only repeat them
        evaluator.logger.setLevel(logging.CRITICAL)
        for handler in workflow.parser.get_parsed_content("handlers"):
            if isinstance(handler, RuntimeHandler) and self.threads:
                handler.num_threads = int(self.threads)
        return workflow

    def run(self, image: str) -> dict[str, Path]:
        """Segment ``image`` (a volume file or a one-series DICOM folder) with the bundle's config.

        Returns the staged outputs: ``{"segmentation": <...>_seg.nii.gz}`` and, for a DICOM input with
        ``dicom_seg``, ``"dicom_seg"``. They stay in the staging folder until the next call; move them away.
        Raises :class:`CaseError` with :func:`failure_reason` when the case fails.
        """
        shutil.rmtree(self.output_dir, ignore_errors=True)
        self.output_dir.mkdir(parents=True)
        try:
            if self._workflow is None:
                self._workflow = self._build(image)
            self._workflow.parser.get_parsed_content("dataset").data = [{"image": image}]
            self._workflow.evaluator.run()
        except Exception as err:
            self._workflow = None  # rebuilt for the next case
            raise CaseError(failure_reason(err)) from err
        produced = {}
        for kind, pattern in (("segmentation", "*_seg.nii.gz"), ("dicom_seg", "*_seg.dcm")):
            found = sorted(self.output_dir.glob(pattern))
            if found:
                produced[kind] = found[0]
        if "segmentation" not in produced:
            raise CaseError(f"the bundle's inference.json wrote no label map for {image} into {self.output_dir}")
        return produced
