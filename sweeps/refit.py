"""Refit: train a study's best config again on the training and validation images together (a kfold study's:
every training row), for the epochs its selected runs (a kfold study's: each fold's) found best, with the same
seeds; score each once on the test set; register the first as a refit."""

from __future__ import annotations

from pathlib import Path

import keras
import pandas as pd
from optuna.storages import BaseStorage
from rich.console import Console

from experiments.data.loading import load_dataset
from experiments.train import refit_repeat
from sweeps.errors import TrainingFailed, UsageError
from sweeps.objective.checkpoints import register_model
from sweeps.objective.trial import StopRequested
from sweeps.search.study import existing_study, quick_settings, trial_config
from sweeps.stats import spread
from sweeps.store.keys import (
    FINISHED,
    KIND,
    MODEL_REFIT,
    MODEL_SEED,
    MODEL_SOURCE_RUN,
    MODEL_TRIAL,
    REFIT_RUN,
    REPEAT_RUN,
    SEED,
    STUDY,
    TRIAL,
    TRIAL_RUN,
)
from sweeps.store.tracking import closing_run
from sweeps.store.trials import best_trial


def selected_epochs(runs: pd.DataFrame) -> dict[int, int]:
    """Seed → best epoch of each selected (validated) run among a trial's ``runs``."""
    if runs.empty or f"tags.{SEED}" not in runs or "metrics.best_epoch" not in runs:
        return {}
    mine = runs[runs[f"tags.{KIND}"].isin([TRIAL_RUN, REPEAT_RUN]) & runs[f"tags.{SEED}"].notna()
                & runs["metrics.best_epoch"].notna()]
    return {int(r[f"tags.{SEED}"]): int(r["metrics.best_epoch"]) for _, r in mine.iterrows()}


def refit(name: str, storage: BaseStorage, url: str, tracking: str, workdir: Path, console: Console) -> pd.DataFrame:
    """Refit study ``name``'s best trial once per seed; log each as a refit run, register the first seed's model
    as a version tagged ``refit``; return a row per seed (selected vs refit test scores)."""
    study, space, tracker = existing_study(name, storage, url, tracking)
    spec = space.spec
    if spec.validation == "test":
        raise UsageError(f"{name}: this space selects on the test set (validation: test), so a refit would train on "
                         "the test images it is scored on; refit needs validation: holdout, stratified or kfold")
    best = best_trial(study)
    if best is None:
        raise UsageError(f"study {name!r} has no completed trial yet")
    selected = tracker.runs(trial=best.number)
    epochs = selected_epochs(selected)
    if not epochs:
        raise UsageError(f"study {name!r}: trial {best.number} has no logged best epoch to refit for")
    model_params, settings = trial_config(space, best.params, best.user_attrs)
    settings, subset = quick_settings(study, settings)
    data = load_dataset(space.data, spec.validation, spec.val_size, spec.sweep.seed, subset)
    # kfold data holds nothing out (each fold was a repeat's): the refit trains on every training row
    rows_of = "training rows (no fold held out)" if spec.validation == "kfold" else "training + validation images"
    console.print(f"refit of {name} trial {best.number}: {len(data.y_train) + len(data.y_val):,} {rows_of}, "
                  f"seeds {sorted(epochs)}, each for its selected run's best epoch count")
    rows = []
    for seed, count in sorted(epochs.items()):
        run_id = tracker.start_run(f"refit-trial-{best.number}-seed-{seed}", tags={
            KIND: REFIT_RUN, STUDY: name, TRIAL: best.number}, params={
            **model_params, "seed": seed, "epochs": count, "train_size": len(data.y_train) + len(data.y_val)})
        with closing_run(tracker, run_id) as end:
            result = refit_repeat(spec.model, model_params, settings, data, seed, count,
                                  workdir / f"seed-{seed}", (StopRequested(),))
            tracker.log_metrics(run_id, {**result.test_scores, "epochs": result.epochs, "wall_time_s": result.wall_time_s})
            if result.checkpoint is not None and result.checkpoint.is_file():
                tracker.log_artifact(run_id, result.checkpoint, "checkpoint")
            else:
                end.fail()
        if end.status != FINISHED:
            raise TrainingFailed(f"refit of seed {seed} diverged (NaN loss); nothing registered")
        was = selected[selected[f"tags.{SEED}"] == str(seed)]
        rows.append({"seed": seed, "epochs": count, "run_id": run_id, "checkpoint": result.checkpoint,
                     **{f"selected {name}": was[f"metrics.{name}"].iloc[0] if len(was) and f"metrics.{name}" in was else None
                        for name in result.test_scores},
                     **{f"refit {name}": value for name, value in result.test_scores.items()}})
        score = result.test_score
        console.print(f"seed {seed}: {count} epochs, {score} {result.test_scores[score]:.4f} "
                      f"(selected run: {rows[-1]['selected ' + score]:.4f}), test loss {result.test_loss:.4f}")
    frame = pd.DataFrame(rows)
    first = frame.iloc[0]
    version = register_model(tracker, name, keras.models.load_model(first["checkpoint"], compile=False), first["run_id"], "model",
                             {MODEL_TRIAL: best.number, MODEL_SEED: first["seed"], MODEL_SOURCE_RUN: first["run_id"],
                              MODEL_REFIT: "true"}, data.input_scale)
    console.print(f"refit: {score} {spread(frame['refit ' + score].tolist())} vs "
                  f"{spread(frame['selected ' + score].tolist())} selected; registered models:/{name}/{version} "
                  f"(tagged refit)")
    return frame.drop(columns="checkpoint")
