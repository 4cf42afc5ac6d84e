"""Validation after the last epoch too, so every training run that completes an epoch writes ``model.pt``."""

from __future__ import annotations

from ignite.engine import Engine, Events
from monai.handlers import ValidationHandler


class LastEpochValidationHandler(ValidationHandler):
    """MONAI's ``ValidationHandler`` (same arguments) that also validates the last epoch of the run.

    MONAI validates every ``interval`` epochs only, so a run whose ``max_epochs`` is not a multiple of
    ``val_interval`` ends with unvalidated epochs, and one with ``max_epochs < val_interval`` never validates
    and writes no ``model.pt``. Here the last epoch (the trainer's ``max_epochs`` at run time, so command-line
    and MONAI Label overrides count) is validated too, at the same point as the others: ``model.pt`` is always
    the best *validated* weights, and every training run that completes an epoch leaves one. A run stopped
    early (``TimeBudget``, ``terminate()``) has no last epoch and validates on its interval only.
    Iteration-level validation (``epoch_level=False``) is MONAI's, unchanged.
    """

    def attach(self, engine: Engine) -> None:
        if not self.epoch_level:
            super().attach(engine)
            return
        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=self._due), self)
        if self.exec_at_start:
            engine.add_event_handler(Events.STARTED, self)

    def _due(self, engine: Engine, epoch: int) -> bool:
        return epoch % self.interval == 0 or epoch == engine.state.max_epochs
