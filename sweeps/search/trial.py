"""The Optuna objective: one trial = the space's params trained with each repeat seed, every repeat tracked."""

from __future__ import annotations

import dataclasses
import resource
import shutil
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import optuna
import pandas as pd
from optuna_integration import KerasPruningCallback

from experiments.data import Dataset
from experiments.train import RepeatResult, TrainingInterrupted, TrainSettings, WarmStart, train_repeat
from sweeps.search import stopping
from sweeps.search.space import Space
from sweeps.search.study import trial_config
from sweeps.stats import spread
from sweeps.store.records import (
    EPOCH_TIME,
    FAIL_REASON,
    INTERRUPTED,
    KIND,
    MLFLOW_RUN_ID,
    REPEAT_RUN,
    RUN_STATUS,
    SEED,
    STATE,
    STOP_REASON,
    STOP_REASONS,
    TEST_ACCURACY_MEAN,
    TRIAL,
    TRIAL_RUN,
    VALUE_STD,
    WORKER,
)
from sweeps.store.recovery import worker_id
from sweeps.store.tracking import Tracker


class StopRequested(keras.callbacks.Callback):
    """Ends ``fit`` at the next batch boundary once Ctrl-C or SIGTERM asked for a stop (see sweeps.search.stopping)."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        stopping.check()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        stopping.check()


class TrialFailed(Exception):
    """A trial could not produce a result (NaN loss, a builder or training error); the sweep goes on."""


@dataclass
class TrialContext:
    """Everything a trial needs that stays the same across the sweep."""

    space: Space
    data: Dataset
    tracker: Tracker
    sweep_run: str
    workdir: Path
    tags: dict[str, Any]
    max_epochs: int | None = None
    prune: bool = True
    warm_start: WarmStart | None = None  # every repeat continues from these weights (Hyperband's promotions)
    deadline: float | None = None  # time.monotonic() at which training stops and scores its best weights


def _logged_settings(model_params: dict[str, Any], settings: TrainSettings,
                     warm_start: WarmStart | None) -> dict[str, Any]:
    fields = dataclasses.asdict(settings)
    fields.pop("verbose")
    if warm_start is not None:
        fields["initial_epoch"] = warm_start.initial_epoch
    return {**model_params, **fields}


def _log_repeat(tracker: Tracker, run_id: str, result: RepeatResult) -> None:
    """Summary metrics, stop reason and artifacts (checkpoint, history, summary) of one repeat. The learning
    curves are MLflow's own charts of the per-epoch metrics (no image per repeat)."""
    history = pd.DataFrame(result.history)
    history.insert(0, "epoch", range(result.first_epoch, result.first_epoch + len(history)))
    tracker.log_metrics(run_id, {
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best("val_accuracy"),
        "best_val_loss": result.best("val_loss"),
        "test_accuracy": result.test_accuracy,
        "test_loss": result.test_loss,
        "param_count": result.param_count,
        "wall_time_s": result.wall_time_s,
    })
    tracker.set_tags(run_id, {STOP_REASON: result.stop_reason, SEED: result.seed})
    if result.epochs:
        tracker.log_text(run_id, history.to_csv(index=False), "history.csv")
    if result.summary:
        tracker.log_text(run_id, result.summary, "model_summary.txt")
    if result.checkpoint is not None and result.checkpoint.is_file():
        tracker.log_artifact(run_id, result.checkpoint, "checkpoint")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _run_repeat(ctx: TrialContext, trial: optuna.Trial, trial_run: str, index: int,
                model_params: dict[str, Any], settings: TrainSettings) -> RepeatResult:
    seed = ctx.space.spec.sweep.seed + index
    separate = ctx.space.spec.sweep.repeats > 1
    run_id = trial_run
    if separate:
        tags = {**ctx.tags, KIND: REPEAT_RUN, TRIAL: trial.number}
        run_id = ctx.tracker.start_run(f"trial-{trial.number}-seed-{seed}", trial_run, tags, _logged_settings(model_params, settings, ctx.warm_start))
    # Optuna takes one report per step, so the pruner watches the first repeat only.
    pruning = (KerasPruningCallback(trial, settings.monitor),) if ctx.prune and index == 0 else ()
    callbacks = (*pruning, StopRequested())
    error: BaseException | None = None
    try:
        result = train_repeat(
            ctx.space.spec.model, model_params, settings, ctx.data, seed,
            ctx.workdir / f"trial-{trial.number}" / f"seed-{seed}", callbacks,
            on_epoch=lambda step, metrics: ctx.tracker.log_metrics(run_id, metrics, step),
            warm_start=ctx.warm_start, deadline=ctx.deadline,
        )
    except TrainingInterrupted as stop:
        result, error = stop.result, stop.__cause__
    except Exception as exc:  # e.g. the model builder rejected this param combination
        result, error = RepeatResult(seed=seed), exc
    except KeyboardInterrupt:
        if separate:
            ctx.tracker.end_run(run_id, INTERRUPTED)
        raise
    pruned = isinstance(error, optuna.TrialPruned)
    if error is not None:
        result.stop_reason = "pruned" if pruned else "error"
    _log_repeat(ctx.tracker, run_id, result)
    if error is not None and not pruned:
        ctx.tracker.log_text(run_id, "".join(traceback.format_exception(error)), "traceback.txt")
    if separate:
        state = "PRUNED" if pruned else "COMPLETE" if error is None else "FAIL"
        ctx.tracker.set_tags(run_id, {STATE: state})
        ctx.tracker.end_run(run_id, RUN_STATUS[state])
    if error is not None and pruned:
        raise error
    if error is not None:
        raise TrialFailed(f"{type(error).__name__}: {error}") from error
    if result.stop_reason == "nan_loss":
        raise TrialFailed("nan_loss")
    return result


def run_trial(ctx: TrialContext, trial: optuna.Trial) -> float | tuple[float, float]:
    """Train the trial's params once per repeat seed; return the mean objective over repeats (and the
    secondary objective, when the space has one)."""
    trial.set_user_attr(WORKER, worker_id())  # first, so a worker killed from here on can be recognised
    metric = ctx.space.spec.objective.metric
    model_params, settings = trial_config(ctx.space, ctx.space.suggest(trial), trial.user_attrs)
    if ctx.max_epochs is not None:
        settings = dataclasses.replace(settings, epochs=min(settings.epochs, ctx.max_epochs))
    tags = {**ctx.tags, KIND: TRIAL_RUN, TRIAL: trial.number}
    run_id = ctx.tracker.start_run(f"trial-{trial.number}", ctx.sweep_run, tags, _logged_settings(model_params, settings, ctx.warm_start))
    trial.set_user_attr(MLFLOW_RUN_ID, run_id)
    state, interrupted = "FAIL", False
    try:
        results = [_run_repeat(ctx, trial, run_id, i, model_params, settings)
                   for i in range(ctx.space.spec.sweep.repeats)]
        scores = {metric: [r.best(metric) for r in results], "test_accuracy": [r.test_accuracy for r in results],
                  "test_loss": [r.test_loss for r in results]}
        summary: dict[str, float | None] = {"n_repeats": len(results)}
        for name, values in scores.items():
            s = spread(values)
            summary[f"{name}_mean"], summary[f"{name}_std"] = (s.mean, s.std) if s.n else (None, None)
        ctx.tracker.log_metrics(run_id, summary)
        trial.set_user_attr(STOP_REASONS, [r.stop_reason for r in results])
        trial.set_user_attr(VALUE_STD, summary[f"{metric}_std"])
        trial.set_user_attr(TEST_ACCURACY_MEAN, summary["test_accuracy_mean"])
        epoch_time = spread([t for r in results for t in r.history.get("epoch_time_s", [])])
        if epoch_time.n:
            trial.set_user_attr(EPOCH_TIME, epoch_time.mean)
        value = summary[f"{metric}_mean"]
        if value is None:  # every repeat ended before its first validation
            raise TrialFailed(f"no {metric}")
        state = "COMPLETE"
        secondary = ctx.space.spec.objective.secondary
        if secondary == "param_count":
            return value, float(results[0].param_count or 0)
        if secondary == "epoch_time_s":
            return value, spread([t for r in results for t in r.history["epoch_time_s"]]).mean
        return value
    except optuna.TrialPruned:
        trial.set_user_attr(STOP_REASONS, ["pruned"])
        state = "PRUNED"
        raise
    except TrialFailed as exc:
        trial.set_user_attr(FAIL_REASON, str(exc))
        raise
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        ctx.tracker.log_metrics(run_id, {"peak_rss_mb": peak_rss_mb()})  # every trial, pruned and failed ones too
        ctx.tracker.set_tags(run_id, {STATE: state})
        ctx.tracker.end_run(run_id, INTERRUPTED if interrupted else RUN_STATUS[state])
        shutil.rmtree(ctx.workdir / f"trial-{trial.number}", ignore_errors=True)  # checkpoints now live in MLflow
