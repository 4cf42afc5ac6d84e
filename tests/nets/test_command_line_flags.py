"""Network flags given as text on the command line (``--network_def#dasp false``) mean what they say."""

from __future__ import annotations

import pytest
import torch.nn as nn

from custom_networks import AFUNet, EASUNet, MSRAttentionUNet, TwoStageUNet
from custom_networks.ops.flags import as_bool


def test_as_bool_reads_command_line_text():
    assert [as_bool(v) for v in ("false", "False", "no", "0", "off", False, 0)] == [False] * 7
    assert [as_bool(v) for v in ("true", "TRUE", "yes", "1", "on", True, 1)] == [True] * 7
    with pytest.raises(ValueError, match="dasp must be true or false, got 'maybe'"):
        as_bool("maybe", "dasp")


def test_text_false_turns_modules_off():
    assert isinstance(AFUNet(features=(4, 8, 16, 32), dasp="false").dasp, nn.Identity)
    assert EASUNet(features=(4, 8, 16, 32, 64), deep_supervision="false").deep_supervision is False
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    msr = dict(features=(4, 8, 16, 32, 64), unit="plain")
    assert count(MSRAttentionUNet(**msr, attention="false")) == count(MSRAttentionUNet(**msr, attention=False))
    assert count(MSRAttentionUNet(**msr, attention="false")) < count(MSRAttentionUNet(**msr, attention="true"))
    assert TwoStageUNet(["a"], {"a": (8, 8, 8)}, features=(2, 4, 8, 16), stage1_size=(8, 8, 8), use_stage2="false").use_stage2 is False
