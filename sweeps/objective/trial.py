"""The Optuna objective: one trial = the space's params trained with each repeat seed; how it ended is decided
here, and written to MLflow by ``sweeps.store.trial_runs``."""

from __future__ import annotations

import dataclasses
import resource
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import optuna
from optuna_integration import KerasPruningCallback

from experiments.data.loading import Dataset
from experiments.outcome import RepeatResult, WarmStart
from experiments.settings import TrainSettings
from experiments.train import TrainingInterrupted, train_repeat
from sweeps import signals
from sweeps.console.live import SweepProgress
from sweeps.errors import TrialFailed, TrialTakenOver
from sweeps.objective.constrained import record_outcomes, reject_infeasible
from sweeps.objective.folds import fold_of, folds_of, repeat_data, report_fold
from sweeps.processes import node_name, task_name, worker_id
from sweeps.search.retries import INTERRUPTED_TRIAL, still_runs
from sweeps.search.study import is_surplus, trial_config, trial_seeds
from sweeps.space.space import Space
from sweeps.stats import Spread, spread
from sweeps.store.keys import (
    CONFIRMS,
    CONFIRMS_TRIAL,
    EPOCH_TIME,
    FAIL_REASON,
    FOLDS_TRAINED,
    MLFLOW_RUN_ID,
    NODE,
    RESUMED_AT,
    STOP_REASONS,
    TASK,
    TEST_ACCURACY_MEAN,
    TEST_MAE_MEAN,
    VALUE_STD,
    WORKER,
)
from sweeps.store.resume_points import PointKeeper, drop_points, fetch_point, fetch_result, keep_result
from sweeps.store.tracking import Tracker
from sweeps.store.trial_runs import TrialRuns, logged_settings
from sweeps.store.trials import retry_history


class StopRequested(keras.callbacks.Callback):
    """Ends ``fit`` at the next batch boundary once Ctrl-C or SIGTERM asked for a stop (see sweeps.signals)."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        signals.check()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        signals.check()


TIME_BUDGET = "time_budget"  # a repeat's stop reason when the sweep's time ran out mid-schedule
TrainRepeat = Callable[..., RepeatResult]  # experiments.train.train_repeat's signature


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
    progress: SweepProgress | None = None  # the live progress line, told of every epoch
    keras_verbose: int | None = None  # Keras's epoch lines: 0 while the live line is drawn; None: the settings'
    train: TrainRepeat = train_repeat  # what trains a repeat (a benchmark plugs in its own)
    target: int | None = None  # finished trials the study should reach; a trial beyond it is not trained
    interrupted: list[int] = field(default_factory=list)  # trials a stop interrupted here (queued to go on later)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _run_repeat(ctx: TrialContext, trial: optuna.Trial, runs: TrialRuns, seed: int, prune: bool,
                model_params: dict[str, Any], settings: TrainSettings, position: int) -> RepeatResult:
    finished = fetch_result(ctx.tracker, runs.run_id, runs.earlier, seed) if runs.continued and runs.separate else None
    if finished is not None:  # a continued trial: this seed had finished before its process was lost
        return finished
    run_id = runs.repeat_started(seed, fold_of(ctx.space, position))
    workdir = ctx.workdir / f"trial-{trial.number}" / f"seed-{seed}"
    resume = fetch_point(ctx.tracker, runs.run_id, runs.earlier, seed, workdir) if runs.continued else None
    if resume is not None:
        ctx.tracker.set_tags(run_id, {RESUMED_AT: resume.epoch})
    pruning = (KerasPruningCallback(trial, settings.monitor),) if prune else ()
    error: BaseException | None = None
    try:
        result = ctx.train(
            ctx.space.spec.model, model_params, settings, repeat_data(ctx.space, ctx.data, position), seed, workdir,
            (*pruning, StopRequested()),
            on_epoch=lambda step, metrics: _epoch_done(ctx, runs, run_id, trial, seed, settings.epochs, step, metrics),
            warm_start=ctx.warm_start, deadline=ctx.deadline, on_checkpoint=PointKeeper(ctx.tracker, runs.run_id, trial.number, seed),
            resume=resume,
        )
    except TrainingInterrupted as stop:
        if isinstance(stop.__cause__, TrialTakenOver):
            raise stop.__cause__ from None  # nothing more written: the run is the retry's
        result, error = stop.result, stop.__cause__
    except Exception as exc:  # e.g. the model builder rejected this param combination
        result, error = RepeatResult(seed=seed), exc
    except KeyboardInterrupt:
        runs.repeat_interrupted(run_id)
        raise
    pruned = isinstance(error, optuna.TrialPruned)
    if error is not None:
        result.stop_reason = "pruned" if pruned else "error"
    runs.repeat_ended(run_id, result, "PRUNED" if pruned else "COMPLETE" if error is None else "FAIL", error)
    if error is not None and pruned:
        raise error
    if error is not None:
        raise TrialFailed(f"{type(error).__name__}: {error}") from error
    if result.stop_reason == "nan_loss":
        raise TrialFailed("nan_loss")
    if runs.separate:
        keep_result(ctx.tracker, runs.run_id, trial.number, result)
    return result


def _epoch_done(ctx: TrialContext, runs: TrialRuns, run_id: str, trial: optuna.Trial, seed: int, epochs: int,
                step: int, metrics: dict[str, float]) -> None:
    """Log the epoch, while this process still owns the trial (its resume point is kept after this, so an attempt
    another process took over neither logs nor uploads again)."""
    if not still_runs(trial):
        raise TrialTakenOver(f"trial {trial.number}")
    runs.epoch(run_id, step, metrics)
    if ctx.progress is not None:
        ctx.progress.epoch(trial.number, seed, step, epochs, metrics)


def _summary(results: list[RepeatResult], metric: str) -> dict[str, float | None]:
    """Mean and spread over the repeats of the objective and the test scores."""
    scores = {metric: [r.best(metric) for r in results], "test_accuracy": [r.test_accuracy for r in results],
              "test_loss": [r.test_loss for r in results], "test_mae": [r.test_mae for r in results]}
    summary: dict[str, float | None] = {"n_repeats": len(results)}
    for name, values in scores.items():
        s = spread(values)
        summary[f"{name}_mean"], summary[f"{name}_std"] = (s.mean, s.std) if s.n else (None, None)
    return summary


def _objectives(secondary: str | None, value: float, results: list[RepeatResult],
                epoch_time: float) -> float | tuple[float, float]:
    """What Optuna is told: the objective, and the secondary objective when the space has one."""
    if secondary == "param_count":
        return value, float(results[0].param_count or 0)
    if secondary == "epoch_time_s":
        return value, epoch_time
    if secondary == "val_robust_accuracy":  # at each repeat's checkpoint, chosen by the first objective
        robust = spread([r.best(secondary) for r in results])
        if not robust.n:
            raise TrialFailed(f"no {secondary}")
        return value, robust.mean
    return value


def _continues(trial: optuna.Trial, trials: Sequence[optuna.trial.FrozenTrial]) -> tuple[str, list[int]] | None:
    """The MLflow run and earlier numbers of the trial this one continues (a trial queued again after its process
    was lost or stopped carries them over); None for a new trial. ``trials``: the study's, read as it began."""
    frozen = next(t for t in trials if t.number == trial.number)  # Optuna's Trial no longer shows system attrs
    earlier = retry_history(frozen)
    run_id = trial.user_attrs.get(MLFLOW_RUN_ID)
    return (run_id, earlier) if earlier and run_id else None


def _claim(ctx: TrialContext, trial: optuna.Trial) -> list[optuna.trial.FrozenTrial]:
    """Record who trains the trial (first, so a worker killed from here on can be recognised); a surplus trial
    fails untrained. The study's trials, read once here for every question the trial's start asks of them."""
    trial.set_user_attr(WORKER, worker_id())
    trial.set_user_attr(NODE, node_name())
    if task_name() is not None:
        trial.set_user_attr(TASK, task_name())
    trials = trial.study.get_trials(deepcopy=False)
    if ctx.target is not None and is_surplus(trial.study, trial.number, ctx.target, trials):
        # Another worker's trial, begun at the same moment, completes the study: this one stops untrained (failed,
        # so it is not counted) and the sweep's stop callback ends the study.
        reason = f"surplus: the study already has its {ctx.target} trials finished or running"
        trial.set_user_attr(FAIL_REASON, reason)
        raise TrialFailed(reason)
    return trials


def _run_repeats(ctx: TrialContext, trial: optuna.Trial, runs: TrialRuns, seeds: list[int], prune: bool,
                 model_params: dict[str, Any], settings: TrainSettings) -> tuple[list[RepeatResult], bool]:
    """One repeat per seed, the pruner watching the first one's epochs, or in a kfold space each repeat holding out
    its fold and the pruner judging after each fold; none after a repeat the time budget cut short, nor after
    the fold the pruner stopped the trial at (then True)."""
    folds = folds_of(ctx.space) is not None
    results: list[RepeatResult] = []
    for i, seed in enumerate(seeds):
        results.append(_run_repeat(ctx, trial, runs, seed, prune and i == 0 and not folds, model_params, settings, i))
        if results[-1].stop_reason == TIME_BUDGET:
            break
        if prune and folds and report_fold(trial, ctx.space, results, more=i + 1 < len(seeds)):
            return results, True
    return results, False


def _record_summary(trial: optuna.Trial, results: list[RepeatResult], metric: str) -> tuple[dict[str, float | None], Spread]:
    """Record on ``trial`` how its repeats stopped, its value's spread, its test scores and its mean epoch time."""
    summary = _summary(results, metric)
    trial.set_user_attr(STOP_REASONS, [r.stop_reason for r in results])
    trial.set_user_attr(VALUE_STD, summary[f"{metric}_std"])
    trial.set_user_attr(TEST_ACCURACY_MEAN, summary["test_accuracy_mean"])
    if summary["test_mae_mean"] is not None:
        trial.set_user_attr(TEST_MAE_MEAN, summary["test_mae_mean"])
    epoch_time = spread([t for r in results for t in r.history.get("epoch_time_s", [])])
    if epoch_time.n:
        trial.set_user_attr(EPOCH_TIME, epoch_time.mean)
    return summary, epoch_time


def _cut_by_the_budget(trial: optuna.Trial, results: list[RepeatResult], unreported: float | None) -> None:
    """A trial the time budget stopped mid-schedule is no result: it is told to Optuna as pruned at the epoch it
    reached (the sampler learns it as a partial curve, never as a finished one) and not counted toward TRIALS.
    ``unreported``: its value, when no pruner reported its epochs."""
    if unreported is not None:  # the step Keras' pruning callback would have used: the last epoch, from 0
        trial.report(unreported, step=results[0].first_epoch + results[0].epochs - 2)
    raise optuna.TrialPruned(TIME_BUDGET)


def run_trial(ctx: TrialContext, trial: optuna.Trial) -> float | tuple[float, float]:
    """Train the trial's params once per repeat seed; return the mean objective over repeats (and the
    secondary objective, when the space has one). How the trial ended (its state) is decided here, once."""
    trials = _claim(ctx, trial)
    metric = ctx.space.spec.objective.metric
    sampled = ctx.space.suggest(trial)
    reject_infeasible(ctx.space, trial, sampled)  # before any run is opened: a config that breaks one never trains
    model_params, settings = trial_config(ctx.space, sampled, trial.user_attrs)
    if ctx.max_epochs is not None:
        settings = dataclasses.replace(settings, epochs=min(settings.epochs, ctx.max_epochs))
    if ctx.keras_verbose is not None:
        settings = dataclasses.replace(settings, verbose=ctx.keras_verbose)
    seeds = trial_seeds(ctx.space, trial.user_attrs)
    runs = TrialRuns(ctx.tracker, ctx.sweep_run, ctx.tags, trial.number,
                     logged_settings(model_params, settings, ctx.warm_start), len(seeds), _continues(trial, trials))
    trial.set_user_attr(MLFLOW_RUN_ID, runs.run_id)
    if CONFIRMS in trial.user_attrs:
        ctx.tracker.set_tags(runs.run_id, {CONFIRMS_TRIAL: trial.user_attrs[CONFIRMS]})
    state, interrupted = "FAIL", False
    summary: dict[str, float | None] = {}
    try:
        # Optuna takes one report per step, so the pruner watches the first repeat only; a confirmation is not pruned.
        prune = ctx.prune and CONFIRMS not in trial.user_attrs
        results, pruned = _run_repeats(ctx, trial, runs, seeds, prune, model_params, settings)
        summary, epoch_time = _record_summary(trial, results, metric)
        if folds_of(ctx.space) is not None:
            trial.set_user_attr(FOLDS_TRAINED, len(results))
        if pruned:  # across folds: the folds trained are its record, the rest never train
            trial.set_user_attr(STOP_REASONS, [*trial.user_attrs[STOP_REASONS], "pruned"])
            raise optuna.TrialPruned(f"after {len(results)} of {len(seeds)} folds")
        value = summary[f"{metric}_mean"]
        if results[-1].stop_reason == TIME_BUDGET:
            _cut_by_the_budget(trial, results, None if prune else value)
        if value is None:  # every repeat ended before its first validation
            raise TrialFailed(f"no {metric}")
        outcome = _objectives(ctx.space.spec.objective.secondary, value, results, epoch_time.mean)
        record_outcomes(ctx.space, trial, sampled, results, epoch_time.mean if epoch_time.n else None)
        state = "COMPLETE"
        return outcome
    except optuna.TrialPruned:
        if STOP_REASONS not in trial.user_attrs:
            trial.set_user_attr(STOP_REASONS, ["pruned"])
        state = "PRUNED"
        raise
    except TrialFailed as exc:
        trial.set_user_attr(FAIL_REASON, str(exc))
        raise
    except KeyboardInterrupt:
        interrupted = True
        ctx.interrupted.append(trial.number)
        trial.set_user_attr(FAIL_REASON, INTERRUPTED_TRIAL)  # so a later start queues it if this process cannot
        raise
    finally:  # every trial, pruned, failed and interrupted ones too
        if still_runs(trial):  # else its retry goes on in the run, from its points: they are the retry's now
            if not interrupted:  # an interrupted trial's points stay, for the trial that goes on with it
                drop_points(ctx.tracker, runs.run_id)
            runs.end(state, {**summary, "peak_rss_mb": peak_rss_mb()}, interrupted)
        shutil.rmtree(ctx.workdir / f"trial-{trial.number}", ignore_errors=True)  # checkpoints now live in MLflow
