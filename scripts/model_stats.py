"""Parameter count, GFLOPs and CPU seconds per training iteration of a bundle's network (and variants).

    python -m scripts.model_stats knee_eas_unet [--shape "[16,1,160,160]"] [--variants all]

The variants are the bundle's ablation rows and baselines of the registry (``scripts.compare_models`` trains
the same ones). Everything is measured side by side in one process on the same input, so the ratios are
comparable.
"""

from __future__ import annotations

import fire
import torch

from scripts.common import registry
from scripts.common.bundles import Bundle, as_list
from scripts.common.measure import count_parameters, flops_of, median_seconds


def seconds_per_train_step(net: torch.nn.Module, loss_fn, shape: tuple[int, ...], num_classes: int,
                           repeats: int = 3) -> float:
    """Median wall time of forward + loss + backward + SGD step on a random batch of ``shape`` (one warm-up)."""
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    y = torch.randint(0, num_classes, (shape[0], 1, *shape[2:]), generator=gen)

    def step(_):
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    return median_seconds(step, None, repeats)


def main(bundle: str = "knee_eas_unet", shape: tuple[int, ...] = (16, 1, 160, 160),
         flops_shape: tuple[int, ...] = (1, 1, 384, 384), variants: str = "all", threads: int = 2) -> None:
    """Print a markdown table for the variants of ``bundle`` (:func:`scripts.common.registry.variants`)."""
    torch.set_num_threads(threads)
    table = registry.variants(bundle)
    names = list(table) if variants == "all" else as_list(variants)
    print(f"| network | parameters | GFLOPs / slice {tuple(flops_shape[2:])} | s / train step {tuple(shape)} |")
    print("|---|---|---|---|")
    for name in names:
        parser = Bundle(bundle).parser(["train.json"], **table[name])
        net = parser.get_parsed_content("network_def")
        loss = parser.get_parsed_content("loss")
        nc = parser.get_parsed_content("num_classes")
        print(f"| {name} | {count_parameters(net):,} | {flops_of(net.eval(), flops_shape) / 1e9:.2f} | "
              f"{seconds_per_train_step(net, loss, shape, nc):.2f} |", flush=True)


if __name__ == "__main__":
    fire.Fire(main)
