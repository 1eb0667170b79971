"""Hints to change a space file, read from a study's trials: a best value on the edge of its range (the range
is too narrow), a param whose importance is about zero (fix it and search the rest)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from experiments.settings import base_name
from sweeps.results.study_results import ranked
from sweeps.space.schema import CategoricalParam, FloatParam, IntParam
from sweeps.space.space import TRAIN_KEYS, Space, is_allowed

MIN_TRIALS = 5  # completed trials before an edge means more than one lucky draw
MIN_TRIALS_IMPORTANCE = 10  # Optuna's importance from fewer trials is mostly noise
EDGE = 0.1  # the outer tenth of a range (of its logarithm for a log param)
NEGLIGIBLE = 0.02  # importance below this: the param barely moves the objective


@dataclass(frozen=True)
class Hint:
    """One suggested change to the space file."""

    param: str  # the key under params:
    text: str

    def __str__(self) -> str:
        return f"params.{self.param}: {self.text}"


def hints(space: Space, trials: pd.DataFrame, importances: dict[str, float], maximise: bool) -> list[Hint]:
    """Hints from a study's trials (Optuna's frame: state, value, params_*), best value first."""
    done = trials[ranked(trials)].dropna(subset=["value"])  # excluded and infeasible trials steer nothing
    if len(done) < MIN_TRIALS:
        return []
    best = done.sort_values("value", ascending=not maximise).iloc[0]
    found = []
    for column in (c for c in trials.columns if c.startswith("params_")):
        name = column.removeprefix("params_")
        key = base_name(name, space.spec.model)
        param = space.spec.params.get(key)
        if param is not None and pd.notna(best[column]):
            hint = _edge(space, key, name, param, best[column], len(done))
            if hint is not None:
                found.append(hint)
    if len(done) >= MIN_TRIALS_IMPORTANCE:
        for name, importance in importances.items():  # per-layer params are left alone: their layers differ
            if importance < NEGLIGIBLE and name in space.spec.params and f"params_{name}" in best:
                section = "train" if name in TRAIN_KEYS else "fixed"
                found.append(Hint(name, f"{name} barely matters (importance {importance:.3f} over {len(done)} trials): "
                                       f"fix it at its best value {_fmt(best[f'params_{name}'])} under `{section}:` "
                                       "and search the rest faster."))
    return found


def _edge(space: Space, key: str, name: str, param: Any, value: Any, trials: int) -> Hint | None:
    """A hint when ``value`` (the best trial's) sits in the outer tenth of the param's range."""
    what = f"the best trial's {name} = {_fmt(value)}"
    if isinstance(param, CategoricalParam):
        numeric = sorted(c for c in param.choices if isinstance(c, int | float) and not isinstance(c, bool))
        if len(numeric) < 3 or len(numeric) != len(param.choices) or value not in (numeric[0], numeric[-1]):
            return None
        side = "largest" if value == numeric[-1] else "smallest"
        return Hint(key, f"{what} is the {side} choice of {numeric} (over {trials} trials): add a "
                         f"{'larger' if side == 'largest' else 'smaller'} choice.")
    if not isinstance(param, IntParam | FloatParam) or param.high <= param.low:
        return None
    scale = (lambda v: math.log(v)) if param.log else (lambda v: v)
    position = (scale(float(value)) - scale(param.low)) / (scale(param.high) - scale(param.low))
    if EDGE <= position <= 1 - EDGE:
        return None
    top = position > 1 - EDGE
    edge, field = (param.high, "high") if top else (param.low, "low")
    wider = _widen(param, top, space.spec.model, name)
    if wider is None:  # the range already ends where the setting's allowed values end
        return Hint(key, f"{what} sits at the {'top' if top else 'bottom'} of [{_fmt(param.low)}, {_fmt(param.high)}], "
                         f"the {'highest' if top else 'lowest'} value {base_name(name, space.spec.model)} may take "
                         f"(over {trials} trials): it may not be worth searching; consider fixing it there.")
    return Hint(key, f"{what} sits at the {'top' if top else 'bottom'} of [{_fmt(param.low)}, {_fmt(param.high)}] "
                     f"(over {trials} trials): the best may lie beyond it; try {field}: {_fmt(wider)} "
                     f"(was {_fmt(edge)}).")


def _widen(param: IntParam | FloatParam, top: bool, family: str, name: str) -> float | int | None:
    """The edge moved out by half the range (a factor of 3 for a log param), or as far as the setting allows."""
    edge = param.high if top else param.low
    if param.log:
        far = param.high * 3 if top else param.low / 3
    else:
        far = edge + (1 if top else -1) * (param.high - param.low) / 2
    for wider in (far, (far + edge) / 2, 0 if not top and not param.log else None):
        if wider is None:
            continue
        if isinstance(param, IntParam):
            wider = param.low + round((wider - param.low) / param.step) * param.step  # on the step's grid
        if wider != edge and is_allowed(name, wider, family):
            return wider
    return None


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
