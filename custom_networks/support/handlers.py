"""Ignite handlers in the attachable form MONAI engines take in ``train_handlers``."""

from __future__ import annotations

from ignite.engine import Engine, Events
from ignite.handlers import TimeLimit


class TimeBudget:
    """Stop training cleanly after ``minutes`` of wall-clock time (ignite ``TimeLimit``, checked every iteration).

    Used to give models the same training budget in comparisons; the run ends through ``Engine.terminate()``,
    so end-of-run handlers (final checkpoints, logs) still fire. ``minutes <= 0`` or ``None`` disables it.
    """

    def __init__(self, minutes: float | None = None) -> None:
        self.minutes = minutes

    def attach(self, engine: Engine) -> None:
        if self.minutes and self.minutes > 0:
            engine.add_event_handler(Events.ITERATION_COMPLETED, TimeLimit(limit_sec=int(60 * self.minutes)))
