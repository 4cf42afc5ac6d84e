"""A training run shorter than ``val_interval`` still validates and saves ``model.pt`` (issue 18).

The bundles validate every ``val_interval`` epochs and after the last epoch, so ``model.pt`` is always the
best *validated* weights and every run that completes an epoch leaves one.
"""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from custom_networks.engine.validation import LastEpochValidationHandler
from tests.bundle_configs.helpers import run
from tests.bundle_configs.test_knee_eas_unet import KNEE


class _Validator:
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def run(self, epoch: int) -> None:
        self.epochs.append(epoch)


def _validated_epochs(interval: int, max_epochs: int, **kwargs) -> list[int]:
    handler = LastEpochValidationHandler(interval=interval, **kwargs)
    handler.validator = _Validator()  # MONAI's type check wants an Evaluator; the schedule is what is tested
    trainer = Engine(lambda engine, batch: None)
    handler.attach(trainer)
    trainer.run([0, 1], max_epochs=max_epochs)
    return handler.validator.epochs


@pytest.mark.parametrize(("interval", "max_epochs", "expected"), [
    (5, 3, [3]),  # shorter than the interval: the last epoch
    (2, 5, [2, 4, 5]),  # the interval, then the last epoch
    (2, 4, [2, 4]),  # the last epoch on the interval is validated once
    (1, 3, [1, 2, 3]),
])
def test_validates_every_interval_and_the_last_epoch(interval, max_epochs, expected):
    assert _validated_epochs(interval, max_epochs) == expected


def test_validation_at_start_is_kept():
    assert _validated_epochs(5, 2, exec_at_start=True) == [0, 2]


@pytest.mark.slow
def test_a_run_shorter_than_val_interval_writes_model_pt(knee_data, tmp_path):
    run(KNEE.workflow(["train.json"], "train", dataset_dir=str(knee_data), ckpt_dir=str(tmp_path),
                      output_dir=str(tmp_path / "tb"), max_epochs=1, val_interval=5))
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    record = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["best_metric"]
    assert record["best_metric_epoch"] == 1  # the resume state includes the last epoch's validation
