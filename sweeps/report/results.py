"""Read a study's results back from the stores: Optuna for trials and params, MLflow for every repeat's numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.storages import BaseStorage

from sweeps.search.space import Space, SpaceError, parse_space
from sweeps.stats import spread
from sweeps.store.records import MLFLOW_RUN_ID, SEED, SPACE, SPACE_YAML, STOP_REASON, TRIAL
from sweeps.store.tracking import Tracker

REPEAT_COLUMNS = {
    f"tags.{TRIAL}": "trial", f"tags.{SEED}": "seed", f"tags.{STOP_REASON}": "stop_reason", "run_id": "run_id",
    "metrics.best_val_accuracy": "val_accuracy", "metrics.best_val_loss": "val_loss",
    "metrics.test_accuracy": "test_accuracy", "metrics.test_loss": "test_loss",
    "metrics.epochs": "epochs", "metrics.best_epoch": "best_epoch", "metrics.param_count": "param_count",
    "metrics.wall_time_s": "wall_time_s", "params.epochs": "max_epochs",
}


@dataclass
class StudyResults:
    """One study's trials (a row each, aggregated over repeats) and repeats (a row per seeded run)."""

    name: str
    space: Space
    study: optuna.Study
    trials: pd.DataFrame
    repeats: pd.DataFrame
    tracker: Tracker | None

    @property
    def metric(self) -> str:
        return self.space.spec.objective.metric

    @property
    def maximise(self) -> bool:
        return self.study.directions[0] == optuna.study.StudyDirection.MAXIMIZE

    @property
    def params(self) -> list[str]:
        return [c for c in self.trials.columns if c.startswith("params_")]

    def count(self, state: str) -> int:
        return int((self.trials["state"] == state).sum())

    def time_to_target(self) -> float | None:
        """Seconds from the study's first trial start to the first completed trial meeting the target bar."""
        if self.trials.empty:
            return None
        start = self.trials["datetime_start"].min()
        for _, row in self.trials.sort_values("datetime_complete").iterrows():
            if row["state"] == "COMPLETE" and meets_target(row, self.space.spec.target):
                return (row["datetime_complete"] - start).total_seconds()
        return None

    def best(self) -> pd.Series | None:
        """The leaderboard's top completed trial (by mean objective over its repeats)."""
        done = self.trials[self.trials["state"] == "COMPLETE"].dropna(subset=["value"])
        return None if done.empty else done.iloc[0]


def _repeats(tracker: Tracker | None) -> pd.DataFrame:
    runs = tracker.runs() if tracker else pd.DataFrame()
    if runs.empty or f"tags.{SEED}" not in runs:
        return pd.DataFrame(columns=list(REPEAT_COLUMNS.values()))
    runs = runs[runs[f"tags.{SEED}"].notna()]
    frame = runs.reindex(columns=list(REPEAT_COLUMNS)).rename(columns=REPEAT_COLUMNS)
    frame["trial"] = frame["trial"].astype(int)
    frame["seed"] = frame["seed"].astype(int)
    frame["max_epochs"] = pd.to_numeric(frame["max_epochs"])
    return frame.sort_values(["trial", "seed"]).reset_index(drop=True)


SPREAD_OF = {"value": None, "test_accuracy": "test_accuracy", "test_loss": "test_loss"}  # None: the objective


def _aggregate(repeats: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per trial, from the logged repeat runs: mean, std, 95 % CI, min, max and count of each score."""
    rows = []
    for number, group in repeats.groupby("trial"):
        row = {"number": number, "n_repeats": len(group), "epochs": group["epochs"].sum(),
               "param_count": group["param_count"].iloc[0], MLFLOW_RUN_ID: group["run_id"].iloc[0],
               "stop_reason": ", ".join(sorted(set(group["stop_reason"].dropna())))}
        for name, column in SPREAD_OF.items():
            s = spread(group[column or metric].tolist())
            row.update({f"{name}_mean": s.mean, f"{name}_std": s.std, f"{name}_ci95": s.ci95,
                        f"{name}_min": s.low, f"{name}_max": s.high})
        rows.append(row)
    columns = ["number", "n_repeats", "epochs", "param_count", MLFLOW_RUN_ID, "stop_reason"]
    columns += [f"{name}_{stat}" for name in SPREAD_OF for stat in ("mean", "std", "ci95", "min", "max")]
    return pd.DataFrame(rows, columns=columns)


def _space_of(study: optuna.Study) -> Space | None:
    """The space file a study ran with; None when it has none or one this version cannot read."""
    if SPACE_YAML not in study.user_attrs:
        return None
    try:
        return parse_space(study.user_attrs[SPACE_YAML], Path(f"{study.user_attrs[SPACE]}.yaml"))
    except SpaceError:
        return None


def collect_study(storage: str | BaseStorage, name: str, tracking: str) -> StudyResults | None:
    """Everything the report needs about study ``name``; None when its space file cannot be read."""
    study = optuna.load_study(study_name=name, storage=storage)
    space = _space_of(study)
    if space is None:
        return None
    try:
        tracker: Tracker | None = Tracker(tracking, name, create=False)
    except LookupError:
        tracker = None
    metric = space.spec.objective.metric
    repeats = _repeats(tracker)
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "duration", "datetime_start", "datetime_complete"))
    if frame.empty:
        frame = pd.DataFrame(columns=["number", "state", "value", "duration", "datetime_start", "datetime_complete"])
    frame = frame.rename(columns={"values_0": "value", "values_1": "secondary"})  # a two-objective study
    frame["duration_s"] = pd.to_timedelta(frame.pop("duration")).dt.total_seconds()
    trials = frame.merge(_aggregate(repeats, metric), on="number", how="left")
    ascending = study.directions[0] != optuna.study.StudyDirection.MAXIMIZE
    trials["_done"] = trials["state"] == "COMPLETE"
    trials = trials.sort_values(["_done", "value"], ascending=[False, ascending], na_position="last").drop(columns="_done")
    return StudyResults(name=name, space=space, study=study, trials=trials.reset_index(drop=True),
                        repeats=repeats, tracker=tracker)


def collect(storage: str | BaseStorage, tracking: str) -> list[StudyResults]:
    """Results of every study in ``storage`` whose space file can be read, by name."""
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    return [r for r in (collect_study(storage, name, tracking) for name in names) if r is not None]


def meets_target(row: pd.Series, target: dict) -> bool | None:
    """Whether the mean test metrics of ``row`` meet every bound of the target (None if unknown)."""
    verdicts = []
    for metric, bound in target.items():
        value = row.get(f"{metric}_mean")
        if value is None or np.isnan(value):
            return None
        verdicts.append((bound.min is None or value >= bound.min) and (bound.max is None or value <= bound.max))
    return all(verdicts)
