"""Fill the report's snapshots from the two stores: Optuna for trials, params and importances, MLflow for every
repeat's numbers, learning curves and the best checkpoint."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import optuna
import pandas as pd
from optuna.storages import BaseStorage

from sweeps.errors import MissingCheckpoint, SpaceError
from sweeps.results.study_results import REFIT_COLUMNS, REPEAT_COLUMNS, TOP_K, StudyResults, ranked, trials_table
from sweeps.search.study import space_of
from sweeps.space.space import Space
from sweeps.store.keys import BASELINE, CONFIRMS, FAIL_REASON, KIND, QUEUED_BY_HAND, REFIT_RUN, SEED, engine_of
from sweeps.store.tracking import Tracker, ui_url
from sweeps.store.trials import can_win, excluded, is_feasible, is_search_trial, own_trials

TRIAL_ATTRS = ("number", "state", "value", "params", "duration", "datetime_start", "datetime_complete")
CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")


def _space_of(study: optuna.Study) -> Space | None:
    """The space file a study ran with; None when it has none or one this version cannot read."""
    try:
        return space_of(study)
    except SpaceError:
        return None


def _repeats(runs: pd.DataFrame) -> pd.DataFrame:
    if runs.empty or f"tags.{SEED}" not in runs:
        return pd.DataFrame(columns=list(REPEAT_COLUMNS.values()))
    runs = runs[runs[f"tags.{SEED}"].notna()]
    frame = runs.reindex(columns=list(REPEAT_COLUMNS)).rename(columns=REPEAT_COLUMNS)
    frame["trial"] = frame["trial"].astype(int)
    frame["seed"] = frame["seed"].astype(int)
    frame["max_epochs"] = pd.to_numeric(frame["max_epochs"])
    return frame.sort_values(["trial", "seed"]).reset_index(drop=True)


def _merge_confirmations(raw: pd.DataFrame, repeats: pd.DataFrame,
                         trials: list[optuna.trial.FrozenTrial]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A completed confirmation's seeds become repeats of the winner it confirms (marked ``confirmation``); no
    confirmation is a row of its own (an unfinished one counts for nothing)."""
    confirming = {t.number: t for t in trials if CONFIRMS in t.user_attrs}
    merged = {n: int(t.user_attrs[CONFIRMS]) for n, t in confirming.items() if t.state == optuna.trial.TrialState.COMPLETE}
    repeats = repeats[~repeats["trial"].isin(set(confirming) - set(merged))]
    repeats = repeats.assign(confirmation=repeats["trial"].isin(set(merged)), trial=repeats["trial"].replace(merged))
    raw = raw[~raw["number"].isin(set(confirming))]
    return raw, repeats.sort_values(["trial", "confirmation", "seed"]).reset_index(drop=True)


def _refits(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished refit runs (``sweep refit``), the newest per trial and seed."""
    if runs.empty or f"tags.{KIND}" not in runs:
        return pd.DataFrame(columns=list(REFIT_COLUMNS.values()))
    refits = runs[(runs[f"tags.{KIND}"] == REFIT_RUN) & (runs["status"] == "FINISHED")]
    frame = refits.reindex(columns=list(REFIT_COLUMNS)).rename(columns=REFIT_COLUMNS)
    frame = frame.astype({"trial": int, "seed": int}).sort_values("start_time")
    return frame.drop_duplicates(["trial", "seed"], keep="last").sort_values(["trial", "seed"]).reset_index(drop=True)


def _pareto_front(trials: list[optuna.trial.FrozenTrial], directions: list, out: dict[str, str]) -> list[int]:
    """The numbers of the search's completed trials that no other of them dominates (confirmations, infeasible and
    excluded trials left out)."""
    from optuna.study._multi_objective import _get_pareto_front_trials_by_trials

    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and is_search_trial(t) and can_win(t, out)]
    return sorted(t.number for t in _get_pareto_front_trials_by_trials(done, directions))


def _importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    """Optuna's param importances of the (first) objective over the search's own trials, or why they cannot be
    computed yet. Confirmations would weigh the winner's params once per seed, and warm-start copies are another
    study's, so the evaluator reads an in-memory study of the search trials alone."""
    search = optuna.create_study(directions=study.directions)
    search.add_trials([t for t in study.get_trials(deepcopy=False) if is_search_trial(t)])
    try:
        with warnings.catch_warnings():  # "few trials in a regime": the page says how many trials there are
            warnings.simplefilter("ignore", UserWarning)
            values = optuna.importance.get_param_importances(search, target=lambda t: t.values[0])
    except (RuntimeError, ValueError) as exc:
        return {}, str(exc)
    return dict(values), "" if values else "too few completed trials"


def _curation(raw: pd.DataFrame, trials: list[optuna.trial.FrozenTrial], out: dict[str, str]) -> pd.DataFrame:
    """Each trial's reason when excluded by hand (``excluded``) and whether it broke the space's constraints
    (``infeasible``): neither ranks."""
    broke = {t.number for t in trials if not is_feasible(t)}
    return raw.assign(excluded=raw["number"].map(lambda n: out.get(str(n))), infeasible=raw["number"].isin(broke))


def found_by(trial: optuna.trial.FrozenTrial, space: Space, engine: str) -> str:
    """Who chose a trial's params: a baseline of the space file (its place there), the user (``sweep enqueue``) or
    the engine's search. Trials from before baselines were marked are known by their params."""
    if engine != "optuna":
        return "Keras Tuner"
    if QUEUED_BY_HAND in trial.user_attrs:
        return "queued by hand"
    place = trial.user_attrs.get(BASELINE) or next(
        (i for i, b in enumerate(space.spec.sweep.baselines, start=1) if dict(b.params) == trial.params), None)
    return f"baseline {place}" if place else "sampler"


def _curves(tracker: Tracker | None, trials: pd.DataFrame, repeats: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """Per-epoch history of the first repeat of each of the top TOP_K completed trials."""
    if tracker is None:
        return {}
    curves = {}
    for number in trials.loc[ranked(trials), "number"].head(TOP_K):
        first = repeats[repeats["trial"] == number].head(1)
        if not first.empty:
            curves[int(number)] = tracker.metric_history(first["run_id"].iloc[0], CURVES)
    return curves


def collect_study(storage: str | BaseStorage, name: str, tracking: str, cache_dir: Path | None = None) -> StudyResults | None:
    """A snapshot of study ``name`` (None when its space file cannot be read); with ``cache_dir``, its best
    checkpoint is also scored on its test set (once per checkpoint, cached there)."""
    study = optuna.load_study(study_name=name, storage=storage)
    space = _space_of(study)
    if space is None:
        return None
    try:
        tracker: Tracker | None = Tracker(tracking, name, create=False)
    except LookupError:
        tracker = None
    maximise = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    runs = tracker.runs() if tracker else pd.DataFrame()
    repeats = _repeats(runs)
    raw = study.trials_dataframe(attrs=TRIAL_ATTRS)
    if raw.empty:
        raw = pd.DataFrame(columns=["number", "state", "value", "duration", "datetime_start", "datetime_complete"])
    # Trials copied in by a warm start belong to their own study's report (they have no runs in this one).
    finished = own_trials(study)
    raw = raw[raw["number"].isin({t.number for t in finished})]
    raw, repeats = _merge_confirmations(raw, repeats, finished)
    raw = _curation(raw, finished, excluded(study))
    trials = trials_table(raw, repeats, space.spec.objective.metric, maximise)
    importances, note = _importances(study)
    engine = engine_of(name, study.user_attrs)
    trials["found_by"] = trials["number"].map({t.number: found_by(t, space, engine) for t in finished})
    intermediate = {t.number: dict(t.intermediate_values) for t in finished if t.intermediate_values}
    failures = {t.number: str(t.user_attrs.get(FAIL_REASON, "no reason recorded")) for t in finished
                if t.state == optuna.trial.TrialState.FAIL}
    result = StudyResults(name=name, space=space, attrs=dict(study.user_attrs), maximise=maximise, trials=trials,
                          repeats=repeats, experiment_id=tracker.experiment_id if tracker else None,
                          mlflow_ui=ui_url(tracking),
                          curves=_curves(tracker, trials, repeats), importances=importances, importance_note=note,
                          refits=_refits(runs), intermediate=intermediate, failures=failures,
                          pareto_front=_pareto_front(finished, study.directions, excluded(study)) if space.spec.objective.secondary else [])
    if cache_dir is not None and tracker is not None:
        from sweeps.results.best_scores import evaluate_best  # TensorFlow: only when a checkpoint is scored

        try:
            result.best_model = evaluate_best(study, tracker, space, cache_dir)
        except MissingCheckpoint as exc:  # the rest of the page is still worth having
            print(f"note: report of {name}: no best-model section: {exc}", file=sys.stderr)
    return result


def collect(storage: str | BaseStorage, tracking: str, cache_dir: Path | None = None) -> list[StudyResults]:
    """Snapshots of every study in ``storage`` whose space file can be read, by name."""
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    return [r for r in (collect_study(storage, name, tracking, cache_dir) for name in names) if r is not None]
