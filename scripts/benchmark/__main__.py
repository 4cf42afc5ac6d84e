"""``python -m scripts.benchmark [--quick] ...`` runs :func:`scripts.benchmark.run.main`; ``whole_volume BUNDLE``
times a 2D bundle on a whole volume (:func:`~scripts.benchmark.run.whole_volume`); ``torchrun_child SPEC`` is one
rank of the torchrun section (started by the benchmark itself)."""

import sys

import fire

from .run import main, torchrun_child, whole_volume

COMMANDS = {"main": main, "torchrun_child": torchrun_child, "whole_volume": whole_volume}

if __name__ == "__main__":
    fire.Fire(COMMANDS if len(sys.argv) > 1 and sys.argv[1] in COMMANDS else main, name="scripts.benchmark")
