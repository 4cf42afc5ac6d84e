"""Training cost in CPU-seconds, logged beside the validation metric after every epoch.

Not from the papers: the project reports training budgets as CPU time (user + system, every thread of the
training process), so that curves of validation Dice against CPU-hours compare runs with different thread counts,
batch sizes and machines-sharing fairly. The count survives resumes: it is part of the training state saved by
:class:`~custom_networks.engine.resume.ResumableTraining`.
"""

from __future__ import annotations

import csv
import os
import time

from ignite.engine import Engine, Events

from ..writers.base import write_atomically

__all__ = ["CpuClock"]


class CpuClock:
    """Count the training process's CPU-seconds and write ``csv_path`` (epoch, CPU-s, the evaluator's metrics).

    Attach after the validation handler (so each epoch's row holds that epoch's validation; epochs without one
    leave the metric cells empty); :class:`~custom_networks.engine.resume.ResumableTraining` does, with its
    ``cpu_curve`` argument, and saves the count and rows with the training state (so they resume). ``time.process_time()`` counts user + system time
    of every thread of this process since it started (the bundles' loaders run in it: ``num_workers`` 0). Rows are rewritten
    atomically at every epoch end; ``csv_path`` None only counts.
    """

    def __init__(self, csv_path: str | None = None, evaluator: Engine | None = None) -> None:
        self.csv_path = csv_path
        self.evaluator = evaluator
        self.spent = 0.0  # CPU-s of earlier processes of this training (restored on resume)
        self.rows: list[dict] = []
        self._validated = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._record)
        if self.evaluator is not None:
            self.evaluator.add_event_handler(Events.COMPLETED, self._mark_validated)

    def _mark_validated(self, evaluator: Engine) -> None:
        self._validated = True

    def seconds(self) -> float:
        """CPU-seconds of this training so far: this process's since it started (imports and data caching
        included), plus those of the earlier processes a resumed run continues."""
        return self.spent + time.process_time()

    def _record(self, engine: Engine) -> None:
        metrics = {}
        if self._validated:
            metrics = {k: float(v) for k, v in self.evaluator.state.metrics.items() if isinstance(v, (int, float))}
            self._validated = False
        self.rows.append({"epoch": engine.state.epoch, "cpu_s": round(self.seconds(), 1), **metrics})
        if self.csv_path:
            self._write()

    def _write(self) -> None:
        names = ["epoch", "cpu_s"] + sorted({k for r in self.rows for k in r} - {"epoch", "cpu_s"})
        os.makedirs(os.path.dirname(os.path.abspath(self.csv_path)), exist_ok=True)

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=names)
                writer.writeheader()
                writer.writerows(self.rows)

        write_atomically(self.csv_path, write)

    def state_dict(self) -> dict:
        return {"cpu_s": self.seconds(), "rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.spent = float(state["cpu_s"])
        self.rows = [dict(r) for r in state["rows"]]
