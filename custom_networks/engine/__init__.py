"""The ignite/MONAI handlers and inferers the bundles' configs attach to their engines: checkpoint loading and
atomic saving (:mod:`.checkpoints`), resumable training (:mod:`.resume`), validation after the last epoch (:mod:`.validation`), the time
budget (:mod:`.time_budget`),
metrics the papers need (:mod:`.metrics`), PNG overlays (:mod:`.overlays`), the ``summary.json`` writer
(:mod:`.summary`), the large-slice inferer (:mod:`.inferers`), slab-by-slab inference of the 2D bundles
(:mod:`.slabs`) and the handler that runs the network in a CPU runtime (:mod:`.runtimes`).

``engine`` imports :mod:`custom_networks.bundle` (the checkpoint reader), :mod:`custom_networks.runtimes`,
:mod:`custom_networks.transforms` (the slab-wise resampling),
:mod:`custom_networks.ops` and :mod:`custom_networks.writers` (atomic writes), never the networks or
:mod:`custom_networks.compression`.
"""
