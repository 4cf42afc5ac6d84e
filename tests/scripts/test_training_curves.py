"""Training curves from MONAI StatsHandler logs: per-epoch mean loss, validation Dice, resumed epochs."""

from __future__ import annotations

import csv

import pytest

from scripts.training_curves import read_log, write_curves

LOG = """\
2026-12-02 15:40:57,502 - INFO - Epoch: 1/3, Iter: 1/2 -- train_loss: 0.8000
2026-12-02 15:40:58,502 - INFO - Epoch: 1/3, Iter: 2/2 -- train_loss: 0.6000
2026-12-02 15:40:59,085 - INFO - Epoch[1] Metrics -- val_mean_dice: 0.2500
2026-12-02 15:41:00,000 - INFO - Epoch: 2/3, Iter: 1/2 -- train_loss: 0.9000
(killed here; the rerun resumes after epoch 1 and logs epoch 2 again)
2026-12-02 15:42:00,000 - INFO - Epoch: 2/3, Iter: 1/2 -- train_loss: 0.5000
2026-12-02 15:42:01,000 - INFO - Epoch: 2/3, Iter: 2/2 -- train_loss: 0.3000
"""


def test_epoch_means_validation_and_resumed_epochs(tmp_path):
    (tmp_path / "a.log").write_text(LOG)
    rows = read_log(tmp_path / "a.log")
    assert [(r["epoch"], round(r["train_loss"], 4), r["val_mean_dice"]) for r in rows] == [(1, 0.7, 0.25), (2, 0.4, None)]
    csv_path, png_path = write_curves({"stage1": tmp_path / "a.log"}, tmp_path / "out" / "curves")
    assert list(csv.reader(csv_path.read_text().splitlines())) == [
        ["run", "epoch", "train_loss", "val_mean_dice"], ["stage1", "1", "0.7000", "0.2500"], ["stage1", "2", "0.4000", ""]]
    assert png_path.stat().st_size > 1000


def test_a_log_without_training_lines_is_refused(tmp_path):
    (tmp_path / "b.log").write_text("nothing here\n")
    with pytest.raises(ValueError, match="b.log has no MONAI StatsHandler"):
        read_log(tmp_path / "b.log")


def test_cpu_curves_add_cpu_hours_and_must_name_logged_runs(tmp_path):
    (tmp_path / "a.log").write_text(LOG)
    (tmp_path / "cpu.csv").write_text("epoch,cpu_s,val_mean_dice\n1,1800.0,0.25\n2,3600.0,\n")
    csv_path, _ = write_curves({"stage1": tmp_path / "a.log"}, tmp_path / "curves", cpu={"stage1": tmp_path / "cpu.csv"})
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert [r["cpu_hours"] for r in rows] == ["0.5000", "1.0000"]
    with pytest.raises(ValueError, match="other"):
        write_curves({"stage1": tmp_path / "a.log"}, tmp_path / "c2", cpu={"other": tmp_path / "cpu.csv"})
