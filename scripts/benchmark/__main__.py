"""``python -m scripts.benchmark [--quick] ...`` runs :func:`scripts.benchmark.run.main`; ``torchrun_child SPEC``
is one rank of the torchrun section (started by the benchmark itself)."""

import sys

import fire

from .run import main, torchrun_child

if __name__ == "__main__":
    fire.Fire({"main": main, "torchrun_child": torchrun_child} if len(sys.argv) > 1
              and sys.argv[1] in ("torchrun_child", "main") else main, name="scripts.benchmark")
