"""Parameter count, GFLOPs and CPU seconds per training iteration of a bundle's network (and variants).

    python -m scripts.model_stats knee_eas_unet [--shape "[16,1,160,160]"] [--variants all]

Everything is measured side by side in one process on the same input, so the ratios are comparable.
"""

from __future__ import annotations

import time

import fire
import torch


def count_parameters(net: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def forward_gflops(net: torch.nn.Module, shape: tuple[int, ...]) -> float:
    """GFLOPs of one eval-mode forward pass on a zero tensor of ``shape`` (multiply-add = 2 FLOPs)."""
    from .benchmark import flops_of

    net.eval()
    return flops_of(net, shape) / 1e9


def seconds_per_train_step(net: torch.nn.Module, loss_fn, shape: tuple[int, ...], num_classes: int,
                           repeats: int = 3) -> float:
    """Median wall time of forward + loss + backward + SGD step on a random batch of ``shape``."""
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    y = torch.randint(0, num_classes, (shape[0], 1, *shape[2:]), generator=gen)
    times = []
    for _ in range(repeats + 1):  # first one warms up
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def main(bundle: str = "knee_eas_unet", shape: tuple[int, ...] = (16, 1, 160, 160),
         flops_shape: tuple[int, ...] = (1, 1, 384, 384), variants: str = "all", threads: int = 2) -> None:
    """Print a markdown table for the variants of ``bundle`` defined in ``scripts.compare_models``."""
    from monai.bundle import ConfigParser

    from scripts.compare_models import BUNDLE_VARIANTS, _as_list, build_variant_parser

    torch.set_num_threads(threads)
    names = list(BUNDLE_VARIANTS[bundle]) if variants == "all" else _as_list(variants)
    print(f"| network | parameters | GFLOPs / slice {tuple(flops_shape[2:])} | s / train step {tuple(shape)} |")
    print("|---|---|---|---|")
    for name in names:
        parser: ConfigParser = build_variant_parser(bundle, name)
        net = parser.get_parsed_content("network_def")
        loss = parser.get_parsed_content("loss")
        nc = parser.get_parsed_content("num_classes")
        print(f"| {name} | {count_parameters(net):,} | {forward_gflops(net, flops_shape):.2f} | "
              f"{seconds_per_train_step(net, loss, shape, nc):.2f} |", flush=True)


if __name__ == "__main__":
    fire.Fire(main)
