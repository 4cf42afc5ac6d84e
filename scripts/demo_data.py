"""Deterministic synthetic demo data for the bundles of this repository.

The papers' data sets cannot be shipped, so every bundle gets a small rendered stand-in that has the
same layout, label ids and geometry conventions as its real data. The output is NOT real data.

Usage (from the repository root)::

    python -m scripts.demo_data knee_eas_unet --out bundles/knee_eas_unet/data
    python -m scripts.demo_data knee_eas_unet --out /tmp/knee --num_volumes 12 --seed 0

The output directory must be missing, empty, or an earlier output of this tool for the same bundle
(it holds a ``.demo_data.json`` marker); anything else is refused and left untouched. Re-running with
the same arguments rewrites byte-identical files.
"""

from __future__ import annotations

import sys

import fire

from scripts.common import registry

from .phantoms.io import OutputDirError


def known_bundles() -> list[str]:
    """Names of the bundles that have a synthetic data generator (the registry's ``demo_data``)."""
    return sorted(name for name, r in registry.RECORDS.items() if r.demo_data)


def main(bundle: str, out: str, num_volumes: int | None = None, seed: int = 0) -> None:
    """Render the synthetic demo data set of ``bundle`` into ``out``; prints where the datalist is.

    Args:
        bundle: bundle name, one of :func:`known_bundles` (e.g. ``knee_eas_unet``).
        out: output directory (created if missing; a non-empty directory not written by this tool is
            refused).
        num_volumes: number of volumes (default: the bundle's default, 12 for ``knee_eas_unet``).
        seed: base random seed (>= 0); the same seed gives byte-identical files.

    Raises:
        ValueError: unknown bundle (the message lists the known ones).
        SystemExit: (code 2) the output directory is not empty and was not written by this tool;
            nothing in it is touched.
    """
    if bundle not in known_bundles():
        raise ValueError(f"unknown bundle {bundle!r}; known bundles: {', '.join(known_bundles())}")
    generator, default_n = registry.demo_generator(bundle), registry.record(bundle).demo_volumes
    n = default_n if num_volumes is None else int(num_volumes)
    print(f"rendering {n} synthetic volumes for {bundle} (seed {seed}) into {out}", flush=True)
    try:
        datalist = generator(out, num_volumes=n, seed=int(seed), log=lambda s: print(s, flush=True))
    except OutputDirError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print("note: synthetic data (not real patient data), for demos and smoke tests only")
    print(f"datalist: {datalist}")


if __name__ == "__main__":
    fire.Fire(main)
