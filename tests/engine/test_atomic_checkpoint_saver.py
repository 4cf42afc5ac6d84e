"""AtomicCheckpointSaver (issue 18): at every instant a complete previous or new ``model.pt`` exists.

ignite's ``Checkpoint`` removes the file it replaces before it writes the new one; a process killed between
the two lost the best weights. The kill is simulated by making the write itself die (a ``BaseException``,
as a signal would), which is the first thing after ignite's remove step.
"""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver

from custom_networks.engine.checkpoints import AtomicCheckpointSaver


class Killed(BaseException):
    """The process dying while it writes (not an ``Exception``: nothing may swallow it)."""


def _network(value: float) -> torch.nn.Module:
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)
    return net


def _set_weights(net: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)


def _validate(saver: AtomicCheckpointSaver, score: float) -> None:
    """One validation whose key metric is ``score``, by an evaluator-like engine with ``saver`` attached."""
    engine = Engine(lambda engine, batch: None)

    @engine.on(Events.EPOCH_COMPLETED)
    def _metric(engine):
        engine.state.metrics["val_mean_dice"] = score

    saver.attach(engine)
    engine.run([0], max_epochs=1)


def _train_epoch(saver: AtomicCheckpointSaver, epoch: int) -> None:
    """Training epoch ``epoch`` by a trainer-like engine with ``saver`` attached."""
    engine = Engine(lambda engine, batch: None)
    saver.attach(engine)
    engine.load_state_dict({"epoch": epoch - 1, "epoch_length": 1, "max_epochs": epoch})
    engine.run([0])


def _weights(path) -> float:
    state = torch.load(path, weights_only=True)
    return float(state["weight"].flatten()[0])


def _kill_the_next_write(monkeypatch) -> None:
    def write(self, checkpoint, path, func):
        raise Killed()

    monkeypatch.setattr(DiskSaver, "_save_func", write)


def test_a_kill_while_the_better_model_is_written_leaves_the_previous_model_pt(tmp_path, monkeypatch):
    net = _network(1.0)
    saver = AtomicCheckpointSaver(save_dir=str(tmp_path), save_dict={"model": net}, save_key_metric=True,
                                  key_metric_name="val_mean_dice", key_metric_filename="model.pt")
    _validate(saver, 0.5)
    assert _weights(tmp_path / "model.pt") == 1.0

    _set_weights(net, 2.0)
    with monkeypatch.context() as patch:  # a better score: ignite removes model.pt, then the write dies
        _kill_the_next_write(patch)
        with pytest.raises(Killed):
            _validate(saver, 0.6)
    assert (tmp_path / "model.pt").is_file(), "the kill left no model.pt"
    assert _weights(tmp_path / "model.pt") == 1.0  # the previous best, complete and loadable

    _set_weights(net, 3.0)  # the next better validation writes normally and leaves one file, no temporary
    _validate(saver, 0.7)
    assert _weights(tmp_path / "model.pt") == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_kill_while_a_renamed_checkpoint_is_written_keeps_the_previous_file(tmp_path, monkeypatch):
    """With ignite's own names (one file per epoch, ``n_saved=1``) the old file goes only once the new one is
    complete."""
    net = _network(1.0)
    saver = AtomicCheckpointSaver(save_dir=str(tmp_path), save_dict={"model": net}, save_interval=1, n_saved=1)
    _train_epoch(saver, 1)
    (first,) = tmp_path.iterdir()

    _set_weights(net, 2.0)
    with monkeypatch.context() as patch:
        _kill_the_next_write(patch)
        with pytest.raises(Killed):
            _train_epoch(saver, 2)
    assert list(tmp_path.iterdir()) == [first] and _weights(first) == 1.0

    _train_epoch(saver, 3)
    (last,) = tmp_path.iterdir()
    assert last != first and _weights(last) == 2.0
