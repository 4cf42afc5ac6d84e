"""Left and right organs by name, for mirroring head-and-neck cases (training flips and test-time flips).

A mirrored head is a plausible head in which the left parotid is the right one, so a left-right flip has to swap
the paired organs' labels (``<organ>_left`` <-> ``<organ>_right``); midline organs keep theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["mirror_pairs", "mirrored_channels"]


def mirror_pairs(organs: Sequence[str]) -> dict[str, str]:
    """Each organ with a ``_left`` / ``_right`` partner in ``organs`` -> that partner (both directions)."""
    pairs = {}
    for organ in organs:
        for side, other in (("_left", "_right"), ("_right", "_left")):
            if organ.endswith(side) and organ[: -len(side)] + other in organs:
                pairs[organ] = organ[: -len(side)] + other
    return pairs


def mirrored_channels(organs: Sequence[str]) -> list[int]:
    """Channel (= label id) order of a mirrored output: ``[0, *ids]`` where each paired organ takes its partner's
    id, so ``out[:, mirrored_channels(organs)]`` relabels an output (or ``table[label]`` a label map)."""
    pairs = mirror_pairs(organs)
    organs = list(organs)
    return [0] + [organs.index(pairs.get(o, o)) + 1 for o in organs]
