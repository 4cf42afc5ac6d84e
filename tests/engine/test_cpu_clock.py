"""CPU-seconds of a training run, logged beside its validations and carried across resumes."""

from __future__ import annotations

import csv
import time

import pytest

from ignite.engine import Engine, Events

from custom_networks.engine.cpu_clock import CpuClock


def _busy(_engine, _batch):
    return sum(i * i for i in range(20000))  # some CPU work per iteration


def test_cpu_clock_rows_hold_each_epoch_and_only_fresh_validations(tmp_path):
    trainer, evaluator = Engine(_busy), Engine(lambda e, b: None)

    @evaluator.on(Events.COMPLETED)
    def _metric(engine):
        engine.state.metrics["val_mean_dice"] = 0.1 * trainer.state.epoch

    @trainer.on(Events.EPOCH_COMPLETED(every=2))
    def _validate(_):
        evaluator.run([0])

    clock = CpuClock(str(tmp_path / "curve.csv"), evaluator)
    clock.attach(trainer)  # after the validation handler, as in the bundle's train.json
    trainer.run(range(5), max_epochs=3)
    with open(tmp_path / "curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [r["val_mean_dice"] for r in rows] == ["", "0.2", ""]  # epochs 1 and 3 did not validate
    cpu = [float(r["cpu_s"]) for r in rows]
    assert cpu[0] > 0 and cpu[0] <= cpu[1] <= cpu[2]

    saved = clock.state_dict()
    assert saved["cpu_s"] >= cpu[2] - 0.05  # the rows hold the count rounded to 0.1 s
    resumed = CpuClock(None, evaluator)  # a new process continuing the run adds its own time to the saved count
    resumed.load_state_dict(saved)
    assert resumed.seconds() - time.process_time() == pytest.approx(saved["cpu_s"], abs=0.05)
    assert resumed.rows == clock.rows
