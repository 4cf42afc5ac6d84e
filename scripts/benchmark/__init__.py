"""One benchmark run for every bundle, side by side: training step, training, inference, networks, torchrun.

    python -m scripts.benchmark [--bundle a,b] [--quick] [--out docs] [--threads 2] [--sections conv,training_step]
                                [--lengths 100,400] [--merge]

Writes ``<out>/benchmarks.md``, ``<out>/benchmarks.json`` (every figure, with the device it came from) and PNG
plots under ``<out>/img/``. Everything is measured in ONE run, so ratios compare like with like on a shared
machine; absolute seconds move with the machine's load, which is why the conv throughput is measured in
the same run and the efficiencies are relative to it. Every step runs in a process of its own, forked from one
fork server that imported the libraries once (:mod:`scripts.benchmark.worker`); torchrun starts its own.

Sections (sizes of each profile in :data:`scripts.benchmark.profiles.PROFILES`, printed into the markdown):

- **conv throughput** (the yardstick): a grid of 3x3 conv2d and 3^3 conv3d (widths 32-256, contiguous and
  channels-last); the best GFLOP/s per dimension, beside the CPU's theoretical fp32 peak and its derivation.
- **training step** (``training_step``): the head-and-neck bundle's networks as its ``train.json`` /
  ``train_stage2.json`` train them (stage 1 at ``stage1_size``; each organ net, one per distinct ``crop_sizes``
  entry, on ``stage2_batch`` x ``stage2_samples`` windows): the pure step (forward + loss + backward + Adam step on
  one fixed random batch), its FLOPs (3 x one forward's ``FlopCounterMode`` count), achieved GFLOP/s and their
  share of the best conv3d rate (targets: stage 1 >= 0.3, organ nets >= 0.25); beside it batch 1 (seconds per
  window), channels-last and ``torch.compile`` (its compile rows within a time budget).
- **training**: each bundle's ``train.json`` (its network, loss, optimizer, transforms and data loader, on
  synthetic phantom data) through its ``SupervisedTrainer``: mean seconds per iteration in the steady state,
  versus the pure forward + loss + backward + step of the same network on one fixed batch; ratio pure/full
  (1.0: the data pipeline costs nothing). Three loader set-ups: ``CacheDataset`` + ``DataLoader``, plain
  ``Dataset``, and ``CacheDataset`` + ``ThreadDataLoader`` (random transforms in a thread; the 2D bundles'
  own); and the seconds of each random transform per batch (which transform costs what).
- **inference**: each bundle's ``inference.json`` on a synthetic volume written as NIfTI (untrained weights
  saved as ``model.pt``: timing only), each run in its own process forked from a warm fork server
  (:mod:`scripts.benchmark.worker`): wall time, that process's peak RSS (``VmHWM``), FLOPs of every network
  forward (``FlopCounterMode``) and achieved GFLOP/s relative to the conv throughput, over the network forwards
  alone and over the whole pipeline. The default runtime (``auto``) beside torch, ONNX Runtime and its int8;
  torch again with its bottleneck fix undone (:data:`scripts.benchmark.profiles.BEFORE_FIXES`), for before/after
  in one run. Head-and-neck: ``inference.json`` (TwoStageUNet) versus ``inference_baseline.json`` (UNet3D,
  sliding windows) on the same volume.
- **memory**: each 2D bundle's ``inference.json`` (slab by slab, :class:`custom_networks.engine.slabs.SlabInferer`)
  on whole synthetic scans of each length (``--lengths 100,400``: 512x512 slices), ``peak_rss_gb`` per length
  with its shape, each in its own process after a warm-up scan; beside it the whole-volume chain it replaced
  (:func:`scripts.benchmark.profiles.whole_volume_chain`) on the lengths that fit, for memory and speed in one
  run. ``--sections memory --merge --out docs`` adds it to a stored page and keeps the other sections.
- **networks**: each custom network versus a MONAI ``BasicUNet`` (2D) / ``UNet`` (3D) of about the same
  parameter count: parameters, GFLOPs, forward latency; and the custom network again with
  ``torch.inference_mode`` + channels-last memory format (the 2D bundles' fix, network alone).
- **layers**: each bundle's inference network in the default runtime, per layer kind (OpenVINO's per-layer
  counters): seconds, GFLOP and efficiency, and the floor its conv FLOPs set at the best conv rate.
- **torchrun**: the knee bundle's ``train.json`` + ``multi_gpu_train.json`` with 1 and 2 processes (gloo on
  the CPU; the same total thread count): training samples per second and final mean loss.

``python -m scripts.benchmark whole_volume <2D bundle> [--runtime R]`` measures one whole volume (160 knee / 200
CT slices) instead of extrapolating it from the inference section's slab.

The package: :mod:`.run` measures (every section, and ``main``), :mod:`.worker` is what the fork server
preloads, :mod:`.profiles` holds the sizes and the undone fixes, :mod:`.report` writes the markdown and plots
(``python -m scripts.benchmark.report render docs/benchmarks.json --out docs`` re-renders a stored run).
Bundle facts (tiny widths, spacing, modality, ...) come from :mod:`scripts.common.registry`.
"""
