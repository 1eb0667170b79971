"""``sweep status``: a study's trials by state, its MLflow runs by status, and any mismatch between the two."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import optuna
import pandas as pd
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

from sweeps.store.keys import FINISHED, KIND, REJECTED, SEED, TRIAL, TRIAL_RUN, WARM_STARTED
from sweeps.store.tracking import Tracker
from sweeps.store.trials import FINISHED_STATES, own_trials

LISTINGS_AT_ONCE = 8


def problems(study: optuna.Study, tracker: Tracker, runs: pd.DataFrame | None = None) -> list[str]:
    """Every way the two stores disagree; an empty list when each finished trial has exactly one finished run,
    with its metrics and checkpoint, and nothing else is left dangling. ``runs``: the experiment's runs, when
    already read."""
    trials = {t.number: t for t in own_trials(study)}
    runs = tracker.runs() if runs is None else runs
    found: list[str] = []
    trial_runs = runs[runs[f"tags.{KIND}"] == TRIAL_RUN] if not runs.empty else runs
    numbers = Counter(int(n) for n in trial_runs.get(f"tags.{TRIAL}", []))
    found += [f"trial {n} has {c} MLflow trial runs" for n, c in sorted(numbers.items()) if c > 1]
    finished_runs = {int(r[f"tags.{TRIAL}"]) for _, r in trial_runs.iterrows() if r["status"] == FINISHED}
    for number, trial in sorted(trials.items()):
        if trial.state in FINISHED_STATES and number not in finished_runs and REJECTED not in trial.user_attrs:
            found.append(f"trial {number} is {trial.state.name} in Optuna but has no FINISHED MLflow run")
        if trial.state not in FINISHED_STATES and number in finished_runs:
            found.append(f"trial {number} is {trial.state.name} in Optuna but its MLflow run is FINISHED")
    for _, run in trial_runs.iterrows():
        of_run = trials.get(int(run[f"tags.{TRIAL}"]))
        if run["status"] == "RUNNING" and (of_run is None or of_run.state != TrialState.RUNNING):
            found.append(f"MLflow run {run['run_id']} of trial {run[f'tags.{TRIAL}']} is RUNNING but its trial is not")
    if not runs.empty and f"tags.{SEED}" in runs:
        complete = {str(n) for n, t in trials.items() if t.state == TrialState.COMPLETE}
        repeats = runs[runs[f"tags.{SEED}"].notna() & runs[f"tags.{TRIAL}"].isin(complete)]
        found += [f"trial {n} is COMPLETE but no MLflow run holds its repeats"
                  for n in sorted(complete - set(repeats[f"tags.{TRIAL}"]), key=int)]
        tested = repeats.get("metrics.test_loss", pd.Series(index=repeats.index, dtype=float)).notna()  # every task's
        found += [f"trial {r[f'tags.{TRIAL}']} run {r['run_id']} has no test metrics"
                  for _, r in repeats[~tested].iterrows()]
        # One artifact listing per repeat: a request each on a tracking server, so several at a time.
        with ThreadPoolExecutor(LISTINGS_AT_ONCE) as pool:
            checkpoints = pool.map(lambda run_id: bool(tracker.client.list_artifacts(run_id, "checkpoint")),
                                   repeats["run_id"])
            found += [f"trial {r[f'tags.{TRIAL}']} run {r['run_id']} has no checkpoint"
                      for (_, r), present in zip(repeats.iterrows(), checkpoints, strict=True) if not present]
    return found


def print_status(study: optuna.Study, tracker: Tracker, console: Console) -> list[str]:
    """Print trials by state and runs by kind and status; return the mismatches (also printed)."""
    states = Counter(t.state.name for t in own_trials(study))
    table = Table(title=f"study {study.study_name}")
    table.add_column("Optuna trials")
    table.add_column("count", justify="right")
    for state in TrialState:
        table.add_row(state.name, str(states.get(state.name, 0)))
    console.print(table)
    if WARM_STARTED in study.user_attrs:
        copied = study.user_attrs[WARM_STARTED]
        console.print(f"and {copied['trials']} finished trials of study {copied['study']} copied in (warm start: no runs here)")
    runs = tracker.runs()
    if not runs.empty:
        counts = runs.groupby([f"tags.{KIND}", "status"]).size()
        table = Table(title=f"MLflow experiment {study.study_name}")
        for column in ("kind", "status", "runs"):
            table.add_column(column)
        for (kind, status), count in counts.items():
            table.add_row(str(kind), status, str(count))
        console.print(table)
    found = problems(study, tracker, runs)
    for line in found:
        console.print(f"[red]mismatch[/]: {line}")
    if not found:
        console.print("consistent: every finished trial has one finished MLflow run with its metrics and checkpoint")
    return found
