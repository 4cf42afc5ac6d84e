"""Parameter count, GFLOPs and CPU seconds per training iteration of a bundle's network (and variants).

    python -m scripts.model_stats knee_eas_unet [--shape "[16,1,160,160]"] [--variants all]
    python -m scripts.model_stats head_neck_two_stage_unet     # stage 1 and organ nets, configured sizes

The variants are the bundle's ablation rows and baselines of the registry (``scripts.compare_models`` trains
the same ones). The two-stage head-and-neck bundle has none: its rows are its 3D networks as it trains them. Everything is measured side by side in one process on the same input, so the ratios are
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


def two_stage_rows(bundle: str, overrides: dict | None = None, repeats: int = 3) -> list[dict]:
    """One row per network a two-stage bundle trains, at its configured sizes: stage 1 at ``stage1_size`` and
    each distinct organ-net window of ``crop_sizes`` (:func:`scripts.common.two_stage_parts.two_stage_parts`): parameters,
    GFLOPs of one forward of one input, and seconds of a training step on the configured batch."""
    from scripts.common.two_stage_parts import part_parser, two_stage_parts

    rows = []
    for part in two_stage_parts(bundle, overrides or {})["parts"]:
        parser = part_parser(bundle, overrides or {}, part["organ"])
        net = parser.get_parsed_content("trained_net")
        name = part["part"] if part["organ"] is None else f"organ net ({', '.join(part['organs'])})"
        row = {"network": name, "input": part["input"], "parameters": count_parameters(net),
               "gflops": flops_of(net.eval(), (1, *part["input"][1:])) / 1e9}
        row["step_s"] = seconds_per_train_step(net, parser.get_parsed_content("loss"), tuple(part["input"]),
                                               int(parser.get_parsed_content("trained_classes")), repeats)
        rows.append(row)
    return rows


def main(bundle: str = "knee_eas_unet", shape: tuple[int, ...] = (16, 1, 160, 160),
         flops_shape: tuple[int, ...] = (1, 1, 384, 384), variants: str = "all", threads: int = 2) -> None:
    """Print a markdown table for the variants of ``bundle`` (:func:`scripts.common.registry.variants`); for a
    two-stage 3D bundle (no variants), its stage 1 and organ nets at their configured sizes (``shape`` and
    ``flops_shape`` are the configs' there)."""
    torch.set_num_threads(threads)
    table = registry.variants(bundle)
    if not table and registry.record(bundle).spatial_dims == 3:
        print("| network | input (batch x channels x size) | parameters | GFLOPs / input | s / train step |")
        print("|---|---|---|---|---|")
        for row in two_stage_rows(bundle):
            print(f"| {row['network']} | {'x'.join(map(str, row['input']))} | {row['parameters']:,} | "
                  f"{row['gflops']:.2f} | {row['step_s']:.2f} |", flush=True)
        return
    if not table:
        raise SystemExit(f"{bundle} has no variants in scripts.common.registry to compare")
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
