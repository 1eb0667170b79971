"""Train one of a finished study's trials again with its seeds, and compare with what the sweep logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf
from optuna.storages import BaseStorage
from rich.console import Console

from experiments.data.loading import load_dataset
from experiments.train import train_repeat
from sweeps.errors import UsageError
from sweeps.objective.trial import StopRequested
from sweeps.search.environment import packages, sweep_packages, version_differences
from sweeps.search.study import existing_study, quick_settings, trial_config, trial_seeds
from sweeps.store.keys import INITIAL_EPOCH, KIND, REPRODUCTION_RUN, STUDY, TRIAL, WARM_FROM
from sweeps.store.tracking import Tracker, closing_run


def reproduce(name: str, trial_number: int, storage: BaseStorage, url: str, tracking: str, workdir: Path, console: Console) -> list[dict]:
    """Train trial ``trial_number``'s params again with its seeds; log and print new vs logged scores."""
    study, space, tracker = existing_study(name, storage, url, tracking)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if trial_number not in trials:
        raise UsageError(f"--trial {trial_number}: study {name!r} has trials 0…{max(trials, default=-1)}")
    trial = trials[trial_number]
    if WARM_FROM in trial.user_attrs:
        source, _, number = str(trial.user_attrs[WARM_FROM]).partition("#")
        raise UsageError(f"--trial {trial_number}: copied from study {source!r} by the warm start, where it is trial "
                         f"{number} with its runs: reproduce it there")
    _compare_versions(tracker, trial.user_attrs, console)
    spec = space.spec
    model_params, settings = trial_config(space, trial.params, trial.user_attrs)
    settings, subset = quick_settings(study, settings)
    if INITIAL_EPOCH in trial.user_attrs:
        console.print(f"trial {trial_number} continued an earlier trial's weights from epoch {trial.user_attrs[INITIAL_EPOCH]} "
                      f"(a Hyperband promotion); trained again from scratch over all its {settings.epochs} epochs")
    data = load_dataset(space.data, spec.validation, spec.val_size, spec.sweep.seed, subset)
    tf.config.experimental.enable_op_determinism()  # two reproductions of a trial give the same numbers
    rows: list[dict[str, Any]] = []
    for seed in trial_seeds(space, trial.user_attrs):
        run_id = tracker.start_run(f"reproduce-trial-{trial_number}-seed-{seed}", tags={
            KIND: REPRODUCTION_RUN, STUDY: name, TRIAL: trial_number}, params={**model_params, "seed": seed})
        with closing_run(tracker, run_id):
            result = train_repeat(spec.model, model_params, settings, data, seed,
                                  workdir / f"trial-{trial_number}-seed-{seed}", (StopRequested(),))
            tracker.log_metrics(run_id, {f"best_{spec.objective.metric}": result.best(spec.objective.metric),
                                         **result.test_scores, "epochs": result.epochs})
        score = result.test_score
        rows.append({"seed": seed, "val": result.best(spec.objective.metric), score: result.test_scores.get(score)})
        console.print(f"seed {seed}: {spec.objective.metric} {rows[-1]['val']:.4f}, {score} {rows[-1][score]:.4f}")
    if trial.value is not None:
        mean = sum(float(r["val"]) for r in rows) / len(rows)
        console.print(f"mean {spec.objective.metric} {mean:.4f} vs {trial.value:.4f} logged by the sweep "
                      f"(difference {mean - trial.value:+.4f}; CPU kernels are not bit-exact across runs)")
    return rows


def _compare_versions(tracker: Tracker, trial_attrs: dict[str, Any], console: Console) -> None:
    """Say which installed package versions differ from those of the trial's sweep run (one line each)."""
    then = sweep_packages(tracker, trial_attrs)
    if then is None:
        console.print("package versions: the trial's sweep run logged none (a sweep from before they were logged)",
                      highlight=False)
        return
    differences = version_differences(then, packages())
    for line in differences:
        console.print(f"package version differs: {line}", highlight=False)
    if not differences:
        console.print("package versions: same versions as the trial's sweep run", highlight=False)
