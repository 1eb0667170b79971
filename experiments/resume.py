"""Resumable training: after every epoch a repeat keeps, in its work folder, the weights with the optimizer's state
(its step count, so a learning-rate schedule goes on where it was), the best checkpoint so far and the epoch's
bookkeeping (history, early-stopping, checkpoint and plateau counters); a repeat started from that folder goes on
at the next epoch. Knows nothing of Optuna or MLflow: the caller ships the folder wherever it must survive a lost
process (the sweep: the trial's MLflow run) and brings it back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from experiments.points import STATE, WEIGHTS, CheckpointHook, ResumePoint

# The counters each stateful callback keeps between epochs (what on_train_begin would otherwise reset); a callback of
# ours names its own in ``RESUME_COUNTERS``.
_COUNTERS: dict[type, tuple[str, ...]] = {
    keras.callbacks.EarlyStopping: ("wait", "best", "stopped_epoch", "best_epoch"),
    keras.callbacks.ModelCheckpoint: ("best",),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
}

def _counters(callbacks: list[keras.callbacks.Callback]) -> dict[str, dict[str, Any]]:
    kept: dict[str, dict[str, Any]] = {}
    for callback in callbacks:
        names = getattr(callback, "RESUME_COUNTERS", None) or next(
            (names for kind, names in _COUNTERS.items() if isinstance(callback, kind)), ())
        if names:
            kept[type(callback).__name__] = {n: _plain(getattr(callback, n, None)) for n in names}
    return kept


def _plain(value: Any) -> Any:
    return float(value) if hasattr(value, "__float__") and not isinstance(value, int | bool) else value


def _replace(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` whole or not at all: a process killed mid-write leaves the previous point."""
    partial = path.with_name("partial." + path.name)
    write(partial)
    os.replace(partial, path)


class KeepResumePoint(keras.callbacks.Callback):
    """Saves the resume point after every epoch (it runs last, when every other callback has updated its counters
    and a pruner has seen the epoch), then tells ``hook``; on ``on_train_begin`` of a resumed repeat, restores it."""

    def __init__(self, folder: Path, history: dict[str, list[float]], callbacks: list[keras.callbacks.Callback],
                 hook: CheckpointHook | None, resume: ResumePoint | None):
        super().__init__()
        self.folder, self.history, self.callbacks, self.hook, self.resume = folder, history, callbacks, hook, resume

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.resume is not None:
            self.resume.restore(self.model, self.callbacks)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        _replace(self.folder / WEIGHTS, lambda path: self.model.save_weights(path))
        state = {"epoch": epoch + 1, "history": self.history, "counters": _counters(self.callbacks),
                 "done": bool(self.model.stop_training)}
        _replace(self.folder / STATE, lambda path: path.write_text(json.dumps(state)))
        if self.hook is not None:
            self.hook(self.folder, epoch + 1)
