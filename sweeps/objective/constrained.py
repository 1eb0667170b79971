"""A trial against the space's constraints. Those on params alone are checked before anything trains: a config that
breaks one is never trained; the trial ends pruned as infeasible, not counted toward TRIALS (the sampler samples
another in its place). Those on outcomes are recorded once the trial has its result. Every value goes through
``Trial.set_constraint`` (Optuna's record: <= 0 holds), which TPE, GP and CMA-ES read to learn the feasible region,
and which keeps an infeasible trial from winning (``sweeps.store.trials.can_win``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from experiments.outcome import RepeatResult
from sweeps.space.constraints import Constraint
from sweeps.space.space import Space, outcome_names
from sweeps.stats import spread
from sweeps.store.keys import REJECTED, STOP_REASONS

INFEASIBLE = "infeasible"  # a rejected trial's stop reason


class Infeasible(optuna.TrialPruned):
    """The sampled params break a constraint: the trial ends untrained."""


def reject_infeasible(space: Space, trial: optuna.Trial, params: Mapping[str, Any]) -> None:
    """Record the constraints on params of ``trial``'s sampled ``params``; raise Infeasible naming those broken."""
    on_params, _ = space.split_constraints()
    broken = _record(trial, on_params, params)
    if broken:
        reason = "; ".join(f"{c.text} broken by {value:g}" for c, value in broken)
        trial.set_user_attr(REJECTED, reason)
        trial.set_user_attr(STOP_REASONS, [INFEASIBLE])
        raise Infeasible(reason)


def record_outcomes(space: Space, trial: optuna.Trial, params: Mapping[str, Any], results: Sequence[RepeatResult],
                    epoch_time_s: float | None) -> None:
    """Record the constraints on outcomes of a trial that has its ``results`` (its repeats)."""
    _, on_outcomes = space.split_constraints()
    if on_outcomes:
        _record(trial, on_outcomes, {**params, **outcomes(space, results, epoch_time_s)})


def outcomes(space: Space, results: Sequence[RepeatResult], epoch_time_s: float | None) -> dict[str, float]:
    """What a trial measured that a constraint may name: its model's size, its mean epoch time, and each
    validation metric at its repeats' checkpoints (their mean)."""
    measured: dict[str, float] = {}
    if results and results[0].param_count:
        measured["param_count"] = float(results[0].param_count)
    if epoch_time_s is not None:
        measured["epoch_time_s"] = epoch_time_s
    for name in outcome_names(space.spec) - set(measured):
        metric = spread([r.best(name) for r in results])
        if metric.n:
            measured[name] = metric.mean
    return measured


def _record(trial: optuna.Trial, constraints: Sequence[Constraint], known: Mapping[str, Any]) -> list[tuple[Constraint, float]]:
    """Set each constraint's value on ``trial`` (0, holding, where a side was not sampled or measured: the constraint
    does not apply); the broken ones with their values."""
    broken = []
    for constraint in constraints:
        value = constraint.value(known)
        trial.set_constraint(constraint.text, 0.0 if value is None else value)
        if value is not None and value > 0:
            broken.append((constraint, value))
    return broken
