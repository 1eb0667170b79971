"""Manual trials and curation: a configuration queued by hand (``sweep enqueue``), a finished trial kept out of best
(``sweep exclude``) and let back in (``sweep include``).

A queued configuration is Optuna's ``enqueue_trial``: the params it names are fixed, the others are sampled as
usual, and the next worker to ask for a trial takes it. Optuna lets no finished trial change, so an exclusion is a
study attribute (number → reason, read by :func:`sweeps.store.trials.can_win`): the trial's record stays, and TPE
still reads it as one of the study's completed trials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import mlflow
import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from experiments.settings import base_name
from sweeps.errors import UsageError
from sweeps.space.schema import CategoricalParam, FloatParam, IntParam, Param
from sweeps.space.space import Space, _check_baseline_value
from sweeps.store.keys import BEST_ALIAS, CONFIRMS, EXCLUDED, QUEUED_BY_HAND, WARM_FROM
from sweeps.store.registry import point_best_alias, selected_versions, tag_excluded
from sweeps.store.trials import best_trial, excluded


def parse_assignments(space: Space, assignments: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` texts → the params they fix, each value read as its param's type, then checked
    (:func:`check_params`); a UsageError naming ``--set NAME`` otherwise."""
    params: dict[str, Any] = {}
    for text in assignments:
        name, equals, raw = (part.strip() for part in text.partition("="))
        if not equals or not name:
            raise UsageError(f"--set {text!r}: expected NAME=VALUE, e.g. --set units=64")
        if name in params:
            raise UsageError(f"--set {name}: given twice")
        params[name] = _typed(_param(space, name), raw)
    return check_params(space, params)


def check_params(space: Space, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` when each is a value its param could sample (in its range or choices, on its step grid); a
    UsageError naming ``--set NAME=VALUE`` and what is allowed otherwise. Params left out are sampled."""
    if not params:
        raise UsageError(f"--set: name at least one param (params: {', '.join(space.spec.params)})")
    for name, value in params.items():
        try:
            _check_baseline_value(space.spec, name, value, params)  # params: a `when:` condition reads the others
            _check_step(_param(space, name), value)
        except ValueError as exc:
            raise UsageError(f"--set {name}={value}: {exc}") from None
    return params


def _param(space: Space, name: str) -> Param | None:
    return space.spec.params.get(name) or space.spec.params.get(base_name(name, space.spec.model))


def _typed(param: Param | None, raw: str) -> Any:
    """The text as the param's type: a choice (matched as written, ``64`` or ``relu``), an int, a float."""
    try:
        value = yaml.safe_load(raw) if raw else raw
    except yaml.YAMLError:
        value = raw
    if isinstance(param, CategoricalParam):
        return value if value in param.choices else next((c for c in param.choices if str(c) == raw), value)
    if isinstance(param, FloatParam) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(param, IntParam) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_step(param: Param | None, value: float) -> None:
    """A whole number for an int param, on the param's step grid (Optuna would train a value off it, warning only)."""
    if not isinstance(param, IntParam | FloatParam) or param.step is None:
        return
    if isinstance(param, IntParam) and not isinstance(value, int):
        raise ValueError(f"{value!r} is not a whole number (an int param, {param.low} to {param.high})")
    steps = (value - param.low) / param.step
    if not math.isclose(steps, round(steps), abs_tol=1e-9):
        raise ValueError(f"{value!r} is off the grid {param.low}, {param.low + param.step}, … {param.high} "
                         f"(step {param.step})")


def enqueue(study: optuna.Study, params: dict[str, Any]) -> None:
    """Queue ``params`` (the rest sampled) as a trial marked queued by hand: the next worker trains it, even past
    the study's TRIALS (it is owed)."""
    study.enqueue_trial(params, user_attrs={QUEUED_BY_HAND: True})


def _trial(study: optuna.Study, number: int) -> FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    found = next((t for t in trials if t.number == number), None)
    if found is None:
        raise UsageError(f"--trial {number}: study {study.study_name} has no such trial (trials 0 to {len(trials) - 1})")
    return found


def exclude(study: optuna.Study, number: int, reason: str | None) -> None:
    """Keep trial ``number`` out of best with ``reason``: a completed search trial only; a UsageError otherwise,
    with nothing changed. Excluding an excluded trial again replaces its reason."""
    reason = (reason or "").strip()
    if not reason:
        raise UsageError(f"--reason: say why trial {number} is excluded (the report shows it beside the trial)")
    trial = _trial(study, number)
    if trial.state != TrialState.COMPLETE:
        raise UsageError(f"--trial {number}: trial {number} is {trial.state.name}; only a COMPLETE trial can win, so "
                         "only one can be excluded")
    if CONFIRMS in trial.user_attrs or WARM_FROM in trial.user_attrs:
        what = (f"confirms trial {trial.user_attrs[CONFIRMS]}: exclude that trial" if CONFIRMS in trial.user_attrs
                else f"is a copy from {trial.user_attrs[WARM_FROM]} (a warm start): it never wins here")
        raise UsageError(f"--trial {number}: trial {number} {what}")
    study.set_user_attr(EXCLUDED, {**excluded(study), str(number): reason})


def include(study: optuna.Study, number: int) -> str:
    """Let excluded trial ``number`` compete for best again; the reason it was excluded for."""
    out = excluded(study)
    if str(number) not in out:
        listed = ", ".join(sorted(out, key=int)) or "none"
        raise UsageError(f"--trial {number}: trial {number} is not excluded (excluded: {listed})")
    reason = out.pop(str(number))
    study.set_user_attr(EXCLUDED, out)
    return reason


def standing(study: optuna.Study, client: mlflow.MlflowClient) -> list[str]:
    """After an exclusion or inclusion: the best trial now, and the registry made to follow it (each excluded
    trial's versions tagged with the reason, the alias ``best`` on the best trial's version or removed)."""
    best = best_trial(study)
    lines = ["best: no trial can win (none completed, or all excluded or infeasible)" if best is None else
             f"best: trial {best.number} ({best.values[0]:.4f})"]
    name = study.study_name
    if not selected_versions(client, name):
        return lines  # nothing registered yet (a sweep registers its best model as it ends)
    tag_excluded(client, name, excluded(study))
    number = None if best is None else best.number
    version = point_best_alias(client, name, number)
    if version is not None:
        lines.append(f"registry: models:/{name}@{BEST_ALIAS} is version {version} (trial {number})")
    else:
        lines.append(f"registry: alias {BEST_ALIAS} removed: the best trial has no registered version yet (the next "
                     "sweep of this study that trains a trial registers it)")
    return lines


def status_lines(study: optuna.Study) -> list[str]:
    """For ``sweep status``: the trials excluded by hand with their reasons, and queued ones still waiting."""
    waiting = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
               if QUEUED_BY_HAND in t.user_attrs]
    lines = [f"excluded by hand: trial {n}: {reason}" for n, reason in sorted(excluded(study).items(), key=lambda i: int(i[0]))]
    if waiting:
        lines.append(f"queued by hand, waiting for a worker: trial{'s' if len(waiting) > 1 else ''} "
                     f"{', '.join(map(str, waiting))}")
    if lines:
        best = best_trial(study)
        lines.append("best: none can win" if best is None else f"best: trial {best.number} ({best.values[0]:.4f})")
    return lines
