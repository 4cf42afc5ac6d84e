"""``medseg-segment``: organ contours on scans with one command, from a bundle's own ``inference.json``.

Usage::

    medseg-segment INPUT... -o OUT [--bundle NAME|DIR] [--ckpt_dir DIR] [--series_uid UID] [--reference LABELS]
                   [--rtstruct] [--dicom_seg] [--device cpu|cuda] [--threads N]
                   [--runtime auto|torch|openvino|onnxruntime|onnxruntime-int8] [--overwrite]

INPUT: volume files (NIfTI, NRRD, MHA), folders of them, DICOM folder trees (every series of the bundle's
modality is a case; :mod:`.inputs`). For each case ``OUT/<case>/`` gets the label map, ``statistics.json``
(volumes, Dice with ``--reference``), ``preview.png`` and, for DICOM inputs on request, a DICOM SEG and an
RTSTRUCT (:mod:`.case`). Finished cases are skipped unless ``--overwrite``; a failed case does not stop the others.
Exit status: 0 when every case is done or was finished before, 1 when any case failed, 2 when nothing could start
(unknown bundle, no weights, an input that does not exist).

The default bundle, ``head_neck_two_stage_unet``, ships weights trained on real planning CT (OpenKBP). The other
bundles ship none: give them ``--ckpt_dir``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

__all__ = ["build_parser", "main"]

WORK_DIR = ".medseg_work"
RUNTIMES = ("auto", "torch", "openvino", "onnxruntime", "onnxruntime-int8")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``medseg-segment`` (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="medseg-segment",
        description="Segment scans with a bundle's own inference.json: a label map, statistics.json and a preview "
                    "PNG per case in OUT/<case>/ (and DICOM SEG / RTSTRUCT for DICOM inputs on request).",
        epilog="Example: medseg-segment bundles/head_neck_two_stage_unet/sample/images -o contours "
               "--reference bundles/head_neck_two_stage_unet/sample/labels")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="NIfTI/NRRD/MHA file, folder of them, or DICOM folder tree (each series of the bundle's "
                        "modality is one case)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (one sub-folder per case)")
    p.add_argument("--bundle", default=None, metavar="NAME|DIR",
                   help="bundle name in this checkout's bundles/, or an extracted bundle folder "
                        "(default: head_neck_two_stage_unet)")
    p.add_argument("--ckpt_dir", default=None, metavar="DIR", help="folder holding model.pt (default: the bundle's "
                                                                   "models/)")
    p.add_argument("--series_uid", default=None, metavar="UID", help="segment only this DICOM series")
    p.add_argument("--reference", default=None, metavar="LABELS",
                   help="reference label map, or folder of them named like the cases: Dice per organ")
    p.add_argument("--rtstruct", action="store_true", help="also write an RTSTRUCT (DICOM inputs)")
    p.add_argument("--dicom_seg", action="store_true", help="also write a DICOM SEG (DICOM inputs)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: CUDA when available, else CPU")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (default: OMP_NUM_THREADS, else all cores)")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="network runtime (default auto: OpenVINO on a CPU, torch on a GPU)")
    p.add_argument("--overwrite", action="store_true", help="redo finished cases")
    return p


class _Formatter(logging.Formatter):
    """``LEVEL: message`` for warnings and errors, the message alone for information."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return message if record.levelno <= logging.INFO else f"{record.levelname}: {message}"


class _TqdmHandler(logging.Handler):
    """Log records printed above the progress bar (``tqdm.write``)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


#: log lines and warnings of the libraries that say nothing about the scans: a GPU decoder absent on a CPU machine,
#: pydicom 3's deprecation notices for the attributes rt-utils sets when it builds an RTSTRUCT
NOISE = ("nvImageCodec", "will be removed in v4.0")


def _setup_logging() -> None:
    """Warnings and errors (the bundle's, e.g. an organ stage 1 misses) above the progress bar; the libraries'
    informational lines (MONAI's "writing: ..." of every file) and known noise are left out: the command reports
    each case and where its files are itself."""
    handler = _TqdmHandler()
    handler.setFormatter(_Formatter())
    handler.addFilter(lambda record: not any(n in record.getMessage() for n in NOISE))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("custom_networks.transforms.dicom_tree").setLevel(logging.INFO)  # what a DICOM tree held
    logging.captureWarnings(True)
    from monai.data import image_writer

    image_writer.logger.setLevel(logging.WARNING)


def _fail(message: str) -> int:
    print(f"medseg-segment: error: {message}", file=sys.stderr)
    return 2


def _relative(path: Path) -> str:
    """``path`` relative to the current directory when it lies inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (0 all done, 1 some case failed, 2 nothing could start)."""
    args = build_parser().parse_args(argv)
    _setup_logging()
    if args.threads is not None:
        if args.threads < 1:
            return _fail(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    from tqdm import tqdm

    from .case import CaseSettings, process_case
    from .inputs import InputError, discover
    from .locate import DEFAULT_BUNDLE, BundleNotFoundError, MissingWeightsError, find_bundle, weights_file
    from .organ_stats import format_report
    from .workflow import BundleRunner, CaseError, failure_reason

    out = Path(args.output).expanduser().resolve()
    try:
        bundle = find_bundle(args.bundle or DEFAULT_BUNDLE)
        weights = weights_file(bundle, args.ckpt_dir)
        cases, notes = discover(args.inputs, bundle.modality, args.series_uid, exclude=[out])
    except (BundleNotFoundError, MissingWeightsError, InputError) as e:
        return _fail(str(e))
    if args.reference is not None and not Path(args.reference).exists():
        return _fail(f"--reference {args.reference} does not exist: give a label map or a folder of them.")
    if args.reference is not None and Path(args.reference).is_file() and len(cases) > 1:
        return _fail(f"--reference {args.reference} is one label map but there are {len(cases)} cases: give a folder "
                     "of label maps named like the cases (<case>.nii.gz).")
    for note in notes:
        print(note, file=sys.stderr)
    if not cases:
        return _fail(f"nothing to segment in {' '.join(args.inputs)}")

    work = out / WORK_DIR
    settings = CaseSettings(bundle=bundle, weights=weights, out_dir=out, work_dir=work, reference=args.reference,
                            rtstruct=args.rtstruct, dicom_seg=args.dicom_seg, overwrite=args.overwrite)
    runner = BundleRunner(bundle, work / "outputs", ckpt_dir=weights.parent, runtime=args.runtime,
                          device=args.device, dicom_seg=args.dicom_seg, threads=args.threads)
    print(f"{bundle.name} {bundle.version} ({_relative(bundle.root)}, weights {_relative(weights)}): "
          f"{len(cases)} case{'s' if len(cases) != 1 else ''} -> {_relative(out)}", flush=True)
    failures: list[tuple[str, str]] = []
    counts = {"done": 0, "skipped": 0}
    start = time.perf_counter()
    bar = tqdm(cases, desc="segmenting", unit="case", file=sys.stderr, dynamic_ncols=True)
    try:
        for case in bar:
            bar.set_postfix_str(case.name[:40])
            try:
                result = process_case(case, settings, runner)
            except Exception as e:  # a CaseError names the reason; anything else is reported the same way
                reason = str(e) if isinstance(e, CaseError) else failure_reason(e)
                failures.append((case.described, reason))
                tqdm.write(f"{case.name}: FAILED: {reason}", file=sys.stderr)
                continue
            counts[result.status] += 1
            note = ("finished earlier, skipped; --overwrite redoes it" if result.status == "skipped" else
                    f"{result.seconds:.1f} s" + (f", wrote {', '.join(result.written)}"
                                                 if set(result.written) != set(result.outputs) else ""))
            report = format_report(case.name, result.statistics,
                                   {k: _relative(p) for k, p in result.outputs.items()}, note)
            tqdm.write("\n".join([*result.notes, report]), file=sys.stdout)
            sys.stdout.flush()
    finally:
        bar.close()
        shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - start
    print(f"{len(cases)} case{'s' if len(cases) != 1 else ''} in {total:.1f} s: {counts['done']} done, "
          f"{counts['skipped']} finished earlier, {len(failures)} failed", flush=True)
    for source, reason in failures:
        print(f"failed: {source}: {reason}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
