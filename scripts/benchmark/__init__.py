"""One benchmark run for every bundle, side by side: training, inference, networks, torchrun.

    python -m scripts.benchmark [--bundle a,b] [--quick] [--out docs] [--threads 2]

Writes ``<out>/benchmarks.md``, ``<out>/benchmarks.json`` (every figure, with the device it came from) and PNG
plots under ``<out>/img/``. Everything is measured in ONE run, so ratios compare like with like on a shared
machine; absolute seconds move with the machine's load, which is why the conv throughput is measured in
the same run and the efficiencies are relative to it. Every step runs in a process of its own, forked from one
fork server that imported the libraries once (:mod:`scripts.benchmark.worker`); torchrun starts its own.

Sections (sizes of each profile in :data:`scripts.benchmark.profiles.PROFILES`, printed into the markdown):

- **conv throughput**: a 3x3 conv2d (64 ch, 256^2) and a 3^3 conv3d (32 ch, 64^3), GFLOP/s.
- **training**: each bundle's ``train.json`` (its network, loss, optimizer, transforms and data loader, on
  synthetic phantom data) through its ``SupervisedTrainer``: mean seconds per iteration, versus the pure
  forward + loss + backward + step of the same network on one fixed batch; ratio pure/full (1.0: the data
  pipeline costs nothing). Three loader set-ups: the bundles' ``CacheDataset`` + ``DataLoader(num_workers=0)``,
  plain ``Dataset`` (no cache), and ``CacheDataset`` + ``ThreadDataLoader`` (random transforms in a thread).
- **inference**: each bundle's ``inference.json`` on a synthetic volume written as NIfTI (untrained weights
  saved as ``model.pt``: timing only), each run in its own process forked from a warm fork server
  (:mod:`scripts.benchmark.worker`): wall time, that process's peak RSS (``VmHWM``), FLOPs of every network
  forward (``FlopCounterMode``) and achieved GFLOP/s relative to the conv throughput, over the network forwards
  alone and over the whole pipeline. The same pipeline again with its bottleneck fix undone
  (:data:`scripts.benchmark.profiles.BEFORE_FIXES`), for before/after in one run. Head-and-neck:
  ``inference.json`` (TwoStageUNet) versus ``inference_baseline.json`` (UNet3D, sliding windows) on the same volume.
- **networks**: each custom network versus a MONAI ``BasicUNet`` (2D) / ``UNet`` (3D) of about the same
  parameter count: parameters, GFLOPs, forward latency; and the custom network again with
  ``torch.inference_mode`` + channels-last memory format (the 2D bundles' fix, network alone).
- **torchrun**: the knee bundle's ``train.json`` + ``multi_gpu_train.json`` with 1 and 2 processes (gloo on
  the CPU; the same total thread count): training samples per second and final mean loss.

The package: :mod:`.run` measures (every section, and ``main``), :mod:`.worker` is what the fork server
preloads, :mod:`.profiles` holds the sizes and the undone fixes, :mod:`.report` writes the markdown and plots
(``python -m scripts.benchmark.report render docs/benchmarks.json --out docs`` re-renders a stored run).
Bundle facts (tiny widths, spacing, modality, ...) come from :mod:`scripts.common.registry`.
"""
