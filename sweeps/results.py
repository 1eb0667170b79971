"""Read a study's results back from the stores: Optuna for trials and params, MLflow for every repeat's numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from sweeps.space import Space, SpaceError, parse_space
from sweeps.tracking import SEED, STOP_REASON, TRIAL, Tracker

REPEAT_COLUMNS = {
    f"tags.{TRIAL}": "trial", f"tags.{SEED}": "seed", f"tags.{STOP_REASON}": "stop_reason", "run_id": "run_id",
    "metrics.best_val_accuracy": "val_accuracy", "metrics.best_val_loss": "val_loss",
    "metrics.test_accuracy": "test_accuracy", "metrics.test_loss": "test_loss",
    "metrics.epochs": "epochs", "metrics.best_epoch": "best_epoch", "metrics.param_count": "param_count",
    "metrics.wall_time_s": "wall_time_s",
}


@dataclass
class StudyResults:
    """One study's trials (a row each, aggregated over repeats) and repeats (a row per seeded run)."""

    name: str
    space: Space | None
    study: optuna.Study
    trials: pd.DataFrame
    repeats: pd.DataFrame
    tracker: Tracker | None

    @property
    def metric(self) -> str:
        return self.space.spec.objective.metric if self.space else "val_accuracy"

    @property
    def maximise(self) -> bool:
        return self.study.direction == optuna.study.StudyDirection.MAXIMIZE

    @property
    def params(self) -> list[str]:
        return [c for c in self.trials.columns if c.startswith("params_")]

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
    return frame.sort_values(["trial", "seed"]).reset_index(drop=True)


def _aggregate(repeats: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, standard deviation and count over repeats, per trial, computed from the logged runs."""
    groups = repeats.groupby("trial")
    table = pd.DataFrame({
        "n_repeats": groups.size(),
        "value_mean": groups[metric].mean(), "value_std": groups[metric].std(ddof=1),
        "test_accuracy_mean": groups["test_accuracy"].mean(), "test_accuracy_std": groups["test_accuracy"].std(ddof=1),
        "test_loss_mean": groups["test_loss"].mean(), "test_loss_std": groups["test_loss"].std(ddof=1),
        "epochs": groups["epochs"].sum(), "param_count": groups["param_count"].first(),
        "stop_reason": groups["stop_reason"].agg(lambda s: ", ".join(sorted(set(s.dropna())))),
        "mlflow_run_id": groups["run_id"].first(),
    })
    for col in ("value_std", "test_accuracy_std", "test_loss_std"):
        table.loc[table["n_repeats"] == 1, col] = 0.0
    return table.rename_axis("number").reset_index()


def collect_study(storage: str, name: str, tracking: str) -> StudyResults:
    """Everything the report needs about study ``name``."""
    study = optuna.load_study(study_name=name, storage=storage)
    space = None
    if "space_yaml" in study.user_attrs:
        try:
            space = parse_space(study.user_attrs["space_yaml"], Path(f"{study.user_attrs['space']}.yaml"))
        except SpaceError:
            space = None  # a file written by an older version: report the trials without its settings
    try:
        tracker: Tracker | None = Tracker(tracking, name, create=False)
    except LookupError:
        tracker = None
    metric = space.spec.objective.metric if space else "val_accuracy"
    repeats = _repeats(tracker)
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "duration"))
    if frame.empty:
        frame = pd.DataFrame(columns=["number", "state", "value", "duration"])
    frame["duration_s"] = pd.to_timedelta(frame.pop("duration")).dt.total_seconds()
    trials = frame.merge(_aggregate(repeats, metric), on="number", how="left")
    ascending = study.direction != optuna.study.StudyDirection.MAXIMIZE
    trials["_done"] = trials["state"] == "COMPLETE"
    trials = trials.sort_values(["_done", "value"], ascending=[False, ascending], na_position="last").drop(columns="_done")
    return StudyResults(name=name, space=space, study=study, trials=trials.reset_index(drop=True),
                        repeats=repeats, tracker=tracker)


def collect(storage: str, tracking: str) -> list[StudyResults]:
    """Results of every study in ``storage``, by name."""
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    return [collect_study(storage, name, tracking) for name in names]


def meets_target(row: pd.Series, target: dict) -> bool | None:
    """Whether the mean test metrics of ``row`` meet every bound of the target (None if unknown)."""
    verdicts = []
    for metric, bound in target.items():
        value = row.get(f"{metric}_mean")
        if value is None or np.isnan(value):
            return None
        verdicts.append((bound.min is None or value >= bound.min) and (bound.max is None or value <= bound.max))
    return all(verdicts)
