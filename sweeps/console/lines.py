"""The lines a sweep prints: one per finished trial (:class:`TrialLine`, an Optuna callback) and its last one, saying
which rule ended it (:func:`end_line`, :func:`why_ended`)."""

from __future__ import annotations

import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from sweeps.store.keys import FAIL_REASON, FOLDS_TRAINED, REJECTED, VALUE_STD
from sweeps.store.sweep_end import EndRecord, ended_by
from sweeps.store.trials import ReadPerTrial, StudyTrials, count_finished, cut_by_the_budget


class TrialLine:
    """Prints one line per finished trial: state, result, time, best so far, progress to the target, params.
    ``reads``: the study's trials as read once after each trial, shared with the other after-trial callbacks."""

    def __init__(self, console: Console, metric: str, target: int, reads: ReadPerTrial | None = None):
        self.console, self.metric, self.target = console, metric, target
        self.reads = reads or ReadPerTrial()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        start, end = trial.datetime_start, trial.datetime_complete
        elapsed = (end - start).total_seconds() if start and end else 0.0
        if trial.state == TrialState.COMPLETE:
            result = f"{self.metric} {trial.values[0]:.4f} ± {trial.user_attrs.get(VALUE_STD, 0):.4f}"
            if len(trial.values) > 1:
                result += f", {trial.values[1]:.4g}"
        elif trial.state == TrialState.FAIL:
            result = f"failed: {trial.user_attrs.get(FAIL_REASON, 'see MLflow run')}"
        elif REJECTED in trial.user_attrs:  # never trained: its config broke a constraint on params
            result = f"rejected, not trained: {trial.user_attrs[REJECTED]}"
        elif FOLDS_TRAINED in trial.user_attrs:  # k-fold: pruned across folds, its later folds never trained
            result = f"pruned after fold {trial.user_attrs[FOLDS_TRAINED]}"
        else:
            cut = "cut by the time budget" if cut_by_the_budget(trial) else "stopped"
            result = f"{cut} at epoch {max(trial.intermediate_values, default=-1) + 1}"
        now = self.reads.of(study, trial)
        top = now.best
        best = "" if top is None else f"best {top.values[0]:.4f} (#{top.number})"
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        self.console.print(
            f"trial {trial.number:>3} {trial.state.name:<8} {result:<32} {elapsed:6.0f}s  {best}  "
            f"[{now.finished}/{self.target}]  {params}", highlight=False,
        )


def end_line(study: optuna.Study, target: int, budget_s: float | None, started: datetime.datetime,
             budget_from: str) -> str:
    """The last line of a sweep begun at ``started``: what the study holds and which rule ended the sweep (see
    :func:`why_ended`)."""
    return why_ended(study, target, budget_s, started, budget_from)[1]


def why_ended(study: optuna.Study, target: int, budget_s: float | None, started: datetime.datetime,
              budget_from: str) -> tuple[str, str]:
    """Which rule ended the sweep begun at ``started`` (``trials``, ``on_target``, ``plateau``, ``budget``, the engine's
    own end ``no_more_trials``) and the sweep's last line saying it. ``budget_from`` says where the budget was set
    (``--timeout``, ``sweep.timeout`` or its default)."""
    finished = count_finished(study)
    head = f"study {study.study_name}: {finished} finished trials"
    if finished >= target:
        return "trials", f"{head} — ended: TRIALS reached ({target})"
    ended = ended_by(study)
    if ended is not None:
        return ended.rule, f"{head} of {target} — ended: {_rule_ended(ended)}"
    spent = (datetime.datetime.now() - started).total_seconds()
    cut = any(cut_by_the_budget(t) for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
              if t.datetime_start and t.datetime_start >= started)
    if budget_s is not None and (cut or spent >= budget_s):
        return "budget", (f"{head} of {target} — ended: the time budget of {budget_s / 60:.4g} min ({budget_from}) was "
                          "spent; --timeout to extend it, the same command to go on")
    return "no_more_trials", f"{head} of {target} — ended: the search had no more trials to run"


def _rule_ended(ended: EndRecord) -> str:
    return f"sweep.stop.{ended.rule}: {ended.why}; --trials above {ended.target} to go on"


def standing_line(name: str, where: str, now: StudyTrials, target: int, extra: str = "") -> str:
    """Where a study stands when a sweep starts: its finished and running trials against the target."""
    return f"study {name} in {where}: {now.finished} finished trials, {now.running} running, target {target}{extra}"


def nothing_to_do_line(now: StudyTrials, target: int) -> str:
    """Why a sweep starts no trial: the study holds its target already, or a stop rule ended its sweep."""
    if not now.target_reached(target) and (ended := ended_by(now.study)) is not None:
        return f"nothing to do: the sweep already ended by {_rule_ended(ended)}"
    return f"nothing to do: {now.finished} finished + {now.running} running ≥ {target} (raise TRIALS to go on)"
