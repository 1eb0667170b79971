"""The MLflow side of a trial: its run, a child run per repeat seed when it has several, and everything logged to
them. The objective (``sweeps.objective.trial``) decides what happened; this module is the one place that writes it."""

from __future__ import annotations

import dataclasses
import traceback
from typing import Any

import pandas as pd

from experiments.outcome import RepeatResult, WarmStart
from experiments.settings import TrainSettings
from sweeps.store.keys import (
    CONTINUES,
    FOLD,
    INTERRUPTED,
    KIND,
    PARENT,
    REPEAT_RUN,
    RUN_STATUS,
    SEED,
    STATE,
    STOP_REASON,
    TRIAL,
    TRIAL_RUN,
)
from sweeps.store.tracking import Tracker


def logged_settings(model_params: dict[str, Any], settings: TrainSettings,
                    warm_start: WarmStart | None) -> dict[str, Any]:
    """The MLflow params of a trial: its model params and training settings (and a promotion's first epoch)."""
    fields = dataclasses.asdict(settings)
    fields.pop("verbose")
    if warm_start is not None:
        fields["initial_epoch"] = warm_start.initial_epoch
    return {**model_params, **fields}


class TrialRuns:
    """Opens a trial's run on creation (or opens again the run of the trial it continues: one record of a trial
    that lost its process); ``repeat_*`` and ``end`` log its repeats and close it with its state."""

    def __init__(self, tracker: Tracker, parent: str, tags: dict[str, Any], trial: int, params: dict[str, Any],
                 repeats: int, continues: tuple[str, list[int]] | None = None):
        self.tracker, self.trial, self.params = tracker, trial, params
        self.tags = {**tags, TRIAL: trial}
        self.separate = repeats > 1  # one seed: the trial's own run holds it
        self.continued = continues is not None
        self.earlier: list[int] = []  # the numbers of the attempts this trial goes on from, oldest first
        if continues is not None:
            self.run_id, self.earlier = continues
            tracker.reopen_run(self.run_id, {**self.tags, CONTINUES: ",".join(map(str, self.earlier))})
        else:
            self.run_id = tracker.start_run(f"trial-{trial}", parent, {**self.tags, KIND: TRIAL_RUN}, params)

    def repeat_started(self, seed: int, fold: int | None = None) -> str:
        """The run that holds repeat ``seed`` (a child run when the trial has several seeds, named and tagged by its
        ``fold`` in a kfold trial; a continued trial's own, opened again)."""
        if not self.separate:
            return self.run_id
        earlier = self.tracker.find_run({PARENT: self.run_id, SEED: seed}) if self.continued else None
        if earlier is not None:
            self.tracker.reopen_run(earlier, self.tags)
            return earlier
        name, tags = f"trial-{self.trial}-seed-{seed}", {**self.tags, KIND: REPEAT_RUN, SEED: seed}
        if fold is not None:
            name, tags = f"trial-{self.trial}-fold-{fold}", {**tags, FOLD: fold}
        return self.tracker.start_run(name, self.run_id, tags, self.params)

    def epoch(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        """One epoch's metrics, logged as training goes (MLflow draws the learning curves from them)."""
        self.tracker.log_metrics(run_id, metrics, step)

    def repeat_ended(self, run_id: str, result: RepeatResult, state: str, error: BaseException | None = None) -> None:
        """Scores, stop reason and artifacts (checkpoint, history, summary, a failure's traceback) of a repeat that
        ended in ``state`` (COMPLETE, PRUNED, FAIL); a child run is closed."""
        history = pd.DataFrame(result.history)
        history.insert(0, "epoch", range(result.first_epoch, result.first_epoch + len(history)))
        self.tracker.log_metrics(run_id, {
            "epochs": result.epochs,
            "best_epoch": result.best_epoch,
            "best_val_accuracy": result.best("val_accuracy"),
            "best_val_loss": result.best("val_loss"),
            "best_val_robust_accuracy": result.best("val_robust_accuracy"),
            "best_val_mae": result.best("val_mae"),
            "test_accuracy": result.test_accuracy,
            "test_loss": result.test_loss,
            "test_mae": result.test_mae,
            "param_count": result.param_count,
            "wall_time_s": result.wall_time_s,
        })
        self.tracker.set_tags(run_id, {STOP_REASON: result.stop_reason, SEED: result.seed})
        if result.epochs:
            self.tracker.log_text(run_id, history.to_csv(index=False), "history.csv")
        if result.summary:
            self.tracker.log_text(run_id, result.summary, "model_summary.txt")
        if result.checkpoint is not None and result.checkpoint.is_file():
            self.tracker.log_artifact(run_id, result.checkpoint, "checkpoint")
        if error is not None and state == "FAIL":
            self.tracker.log_text(run_id, "".join(traceback.format_exception(error)), "traceback.txt")
        if self.separate:
            self._close(run_id, state)

    def repeat_interrupted(self, run_id: str) -> None:
        """A repeat stopped by Ctrl-C or SIGTERM: its child run is closed KILLED, nothing more logged."""
        if self.separate:
            self.tracker.end_run(run_id, INTERRUPTED)

    def end(self, state: str, metrics: dict[str, float | None], interrupted: bool = False) -> None:
        """Close the trial's run with its final metrics and ``state`` (COMPLETE, PRUNED, FAIL), KILLED when
        ``interrupted``."""
        self.tracker.log_metrics(self.run_id, metrics)
        self._close(self.run_id, state, interrupted)

    def _close(self, run_id: str, state: str, interrupted: bool = False) -> None:
        self.tracker.set_tags(run_id, {STATE: state})
        self.tracker.end_run(run_id, INTERRUPTED if interrupted else RUN_STATUS[state])
