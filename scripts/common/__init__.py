"""What several tools of ``scripts/`` share; tools import this package, never each other.

- :mod:`.bundles`: which bundles exist (the folders of ``bundles/``), opening a bundle's configs with
  overrides (one way for every tool and test), the files a distributed bundle holds, loading weights;
- :mod:`.registry`: the one per-bundle record of what the tools need beyond the configs (demo data, tiny
  test widths, ablation variants, export parts, ...), so no tool branches on a bundle name;
- :mod:`.measure`: timing, memory, FLOP and parameter counts.

Nothing here imports another part of ``scripts/`` at import time, and importing it is cheap (torch and MONAI
are imported inside the functions that need them).
"""
