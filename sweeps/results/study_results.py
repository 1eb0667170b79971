"""A study's results as plain data (the report's snapshot): what every page and figure is computed from.

No Optuna or MLflow handle in here: :mod:`sweeps.results.read` fills a snapshot from the stores, and a test can
build one by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from sweeps.space.space import Space
from sweeps.space.target import meets_target
from sweeps.space.target import target_text as target_text  # re-exported: the pages' bar in words
from sweeps.stats import spread
from sweeps.store.keys import MLFLOW_RUN_ID, QUICK_STUDY, SEED, STOP_REASON, TRIAL, engine_of

if TYPE_CHECKING:
    from sweeps.results.best_scores import BestModelScores

TOP_K = 3  # the top trials whose learning curves the report shows

REPEAT_COLUMNS = {
    f"tags.{TRIAL}": "trial", f"tags.{SEED}": "seed", f"tags.{STOP_REASON}": "stop_reason", "run_id": "run_id",
    "metrics.best_val_accuracy": "val_accuracy", "metrics.best_val_loss": "val_loss",
    "metrics.best_val_robust_accuracy": "val_robust_accuracy", "metrics.best_val_mae": "val_mae",
    "metrics.test_accuracy": "test_accuracy", "metrics.test_loss": "test_loss", "metrics.test_mae": "test_mae",
    "metrics.epochs": "epochs", "metrics.best_epoch": "best_epoch", "metrics.param_count": "param_count",
    "metrics.wall_time_s": "wall_time_s", "params.epochs": "max_epochs",
}

REFIT_COLUMNS = {f"tags.{TRIAL}": "trial", "params.seed": "seed", "run_id": "run_id", "start_time": "start_time",
                 "metrics.epochs": "epochs", "metrics.test_accuracy": "test_accuracy", "metrics.test_loss": "test_loss",
                 "metrics.test_mae": "test_mae", "params.train_size": "train_size"}


@dataclass
class StudyResults:
    """One study: its trials (a row each, aggregated over repeats, best first), its repeats (a row per seeded
    run), and what the report shows beside them."""

    name: str
    space: Space
    attrs: dict[str, Any]  # the study's attributes (sweeps.store.keys: quick, engine, the space file)
    maximise: bool
    trials: pd.DataFrame
    repeats: pd.DataFrame
    experiment_id: str | None = None  # the MLflow experiment, for links to its runs
    mlflow_ui: str | None = None  # where its MLflow UI is served (None: runs are named by id, without a link)
    curves: dict[int, pd.DataFrame] = field(default_factory=dict)  # trial number → per-epoch history of its first run
    importances: dict[str, float] = field(default_factory=dict)  # param → importance (empty: see importance_note)
    importance_note: str = ""  # why there are no importances yet
    pareto_front: list[int] = field(default_factory=list)  # trials no other beats on both objectives
    best_model: BestModelScores | None = None  # the best checkpoint scored on the whole test set
    intermediate: dict[int, dict[int, float]] = field(default_factory=dict)  # trial → epoch → what the pruner saw
    failures: dict[int, str] = field(default_factory=dict)  # failed trial → its reason
    refits: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(REFIT_COLUMNS.values())))

    @property
    def metric(self) -> str:
        return self.space.spec.objective.metric

    @property
    def test_metric(self) -> str:
        """The test score beside the loss: accuracy for a classifier, mean absolute error for a regression."""
        return "test_mae" if self.space.spec.task == "regression" else "test_accuracy"

    @property
    def test_label(self) -> str:
        return "test MAE" if self.space.spec.task == "regression" else "test accuracy"

    @property
    def quick(self) -> bool:
        return bool(self.attrs.get(QUICK_STUDY))

    @property
    def engine(self) -> str:
        return engine_of(self.name, self.attrs)

    @property
    def params(self) -> list[str]:
        return [c for c in self.trials.columns if c.startswith("params_")]

    def count(self, state: str) -> int:
        return int((self.trials["state"] == state).sum())

    def time_to_target(self) -> float | None:
        """Seconds of searching (time when some trial was training; idle gaps between sweeps left out) from the
        study's first trial to the first completed trial meeting the target bar."""
        if self.trials.empty:
            return None
        for _, row in self.trials.sort_values("datetime_complete").iterrows():
            if row["state"] == "COMPLETE" and meets_target(row, self.space.spec.target):
                return _busy_seconds(self.trials, row["datetime_complete"])
        return None

    def best(self) -> pd.Series | None:
        """The leaderboard's top trial that may win (by mean objective over its repeats)."""
        done = self.trials[ranked(self.trials)].dropna(subset=["value"])
        return None if done.empty else done.iloc[0]


def ranked(trials: pd.DataFrame) -> pd.Series:
    """Which rows of a trials frame rank: completed, not excluded by hand (``excluded``: the reason) and feasible
    (``infeasible``); a frame without those columns has no such trials."""
    out = trials["state"] == "COMPLETE"
    if "excluded" in trials:
        out &= trials["excluded"].isna()
    if "infeasible" in trials:
        out &= ~trials["infeasible"].fillna(False).astype(bool)
    return out


def _busy_seconds(trials: pd.DataFrame, until: pd.Timestamp) -> float:
    """Length of the union of the trials' [start, end] intervals before ``until`` (parallel trials count once)."""
    spans = trials.dropna(subset=["datetime_start"]).sort_values("datetime_start")
    total, reach = 0.0, None
    for start, end in zip(spans["datetime_start"], spans["datetime_complete"].fillna(until), strict=True):
        start, end = min(start, until), min(end, until)
        if reach is None or start > reach:
            total += (end - start).total_seconds()
            reach = end
        elif end > reach:
            total += (end - reach).total_seconds()
            reach = end
    return total


SPREAD_OF = {"value": None, "test_accuracy": "test_accuracy", "test_loss": "test_loss",  # None: the objective
             "test_mae": "test_mae"}


def trials_table(trials: pd.DataFrame, repeats: pd.DataFrame, metric: str, maximise: bool) -> pd.DataFrame:
    """Optuna's trials frame (number, state, value, params_*, duration, datetime_*; ``excluded`` and
    ``infeasible`` when known) joined with the per-trial spread of the repeats' scores; the trials that rank
    first, best first, then the completed ones that cannot win (excluded, infeasible), then the rest."""
    frame = trials.rename(columns={"values_0": "value", "values_1": "secondary"})  # a two-objective study
    frame["duration_s"] = pd.to_timedelta(frame.pop("duration")).dt.total_seconds()
    frame = frame.merge(_aggregate(repeats, metric), on="number", how="left")
    frame["_ranks"], frame["_done"] = ranked(frame), frame["state"] == "COMPLETE"
    frame = frame.sort_values(["_ranks", "_done", "value"], ascending=[False, False, not maximise], na_position="last")
    return frame.drop(columns=["_ranks", "_done"]).reset_index(drop=True)


def _aggregate(repeats: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per trial, from the logged repeat runs: mean, std, 95 % CI, min, max and count of each score. A confirmed
    winner's scores are its confirmation seeds' alone: the seed it was selected on is the best of many noisy draws
    (the winner's curse), so it is kept beside them (``search_value``), not pooled with them."""
    rows = []
    for number, group in repeats.groupby("trial"):
        confirming = group["confirmation"].astype(bool) if "confirmation" in group else pd.Series(False, group.index)
        scored = group[confirming] if confirming.any() else group
        row = {"number": number, "n_repeats": len(scored), "epochs": group["epochs"].sum(),
               "param_count": group["param_count"].iloc[0], MLFLOW_RUN_ID: group["run_id"].iloc[0],
               "stop_reason": ", ".join(sorted(set(group["stop_reason"].dropna()))),
               "confirmation_seeds": int(confirming.sum()),
               "search_value": spread(group.loc[~confirming, metric].tolist()).mean if confirming.any() else None}
        for name, column in SPREAD_OF.items():
            s = spread(scored[column or metric].tolist())
            row.update({f"{name}_mean": s.mean, f"{name}_std": s.std, f"{name}_ci95": s.ci95,
                        f"{name}_min": s.low, f"{name}_max": s.high})
        rows.append(row)
    columns = ["number", "n_repeats", "epochs", "param_count", MLFLOW_RUN_ID, "stop_reason", "confirmation_seeds",
               "search_value"]
    columns += [f"{name}_{stat}" for name in SPREAD_OF for stat in ("mean", "std", "ci95", "min", "max")]
    return pd.DataFrame(rows, columns=columns)
