"""What every 2D network of the papers promises, one parameterised test per promise: its ablation presets are
built by name (the default constructor is the paper's full network, an unknown name is refused), and it exports
with ``torch.export`` in eval mode, giving the eager outputs. Each network's own file tests what its presets switch.

``n_params`` is the parameter count the networks' tests compare.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from custom_networks import AFUNet, EASUNet, MSRAttentionUNet

#: network class -> (the name of its full-network preset, small widths for a CPU test)
NETWORKS = {
    AFUNet: ("afu_unet", {"features": (4, 8, 16, 32)}),
    EASUNet: ("eas_unet", {"features": (8, 16, 32, 64, 128), "eas_dilations": (1, 2, 3)}),
    MSRAttentionUNet: ("msr_attention_unet", {"features": (8, 16, 32)}),
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("net_class", NETWORKS, ids=lambda c: c.__name__)
def test_default_is_the_full_preset_and_an_unknown_preset_is_refused(net_class):
    full, small = NETWORKS[net_class]
    assert full in net_class.ABLATIONS
    torch.manual_seed(0)
    default = net_class(**small)
    torch.manual_seed(0)
    named = net_class.from_ablation(full, **small)
    assert repr(default) == repr(named) and n_params(default) == n_params(named)
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), named.state_dict().values()))
    with pytest.raises(ValueError, match="unknown ablation 'nope'; choose one of"):
        net_class.from_ablation("nope", **small)


@pytest.mark.parametrize("net_class", NETWORKS, ids=lambda c: c.__name__)
def test_torch_export_eval(net_class):
    torch.manual_seed(0)
    net = net_class(**NETWORKS[net_class][1]).eval()
    x = torch.randn(1, 1, 32, 32)
    exported = torch.export.export(net, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), net(x), atol=1e-5, rtol=1e-4)
