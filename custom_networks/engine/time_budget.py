"""A wall-clock training budget, as a handler in the attachable form MONAI engines take in ``train_handlers``."""

from __future__ import annotations

from ignite.engine import Engine, Events
from ignite.handlers import TimeLimit


class TimeBudget:
    """Stop training cleanly after ``minutes`` of wall-clock time (ignite ``TimeLimit``, checked every iteration).

    Used to give models the same training budget in comparisons; the run ends through ``Engine.terminate()``,
    so end-of-run handlers (final checkpoints, logs) still fire. ``minutes <= 0`` or ``None`` disables it.
    The stop can fall inside an epoch: bundles that save ``model.pt`` at validations keep only what the last
    validation saw, so give a run at least one epoch plus its validation (a warning says when it stopped).
    """

    def __init__(self, minutes: float | None = None) -> None:
        self.minutes = minutes

    def attach(self, engine: Engine) -> None:
        if self.minutes and self.minutes > 0:
            engine.add_event_handler(Events.ITERATION_COMPLETED, TimeLimit(limit_sec=int(60 * self.minutes)))
            engine.add_event_handler(Events.TERMINATE, self._report)

    def _report(self, engine: Engine) -> None:
        engine.logger.warning(
            "time budget of %s min reached at epoch %d, iteration %d; checkpoints are those of the last validation.",
            self.minutes, engine.state.epoch, engine.state.iteration,
        )
