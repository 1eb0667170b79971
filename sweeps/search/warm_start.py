"""``sweep.warm_start: STUDY``: a study, when it is created, begins with the finished trials of an earlier study of the
same task in the same storage, so the sampler models from its first pick instead of spending its start-up trials at
random (TPE counts them among its ``n_startup_trials``). The copies keep their params, values and per-epoch values
(and, under the same successive-halving pruner, their rungs: the sweep prunes from its first trial), and carry
``warm_start_from``; they are not the sweep's trials: no MLflow runs, not counted toward TRIALS, never its
winner, not in its report.

TensorFlow-free: the supervising process creates (and so warm-starts) the study before any worker starts.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FixedTrial, FrozenTrial, TrialState
from rich.console import Console

from sweeps.errors import SpaceError
from sweeps.space.schema import SpaceFile
from sweeps.space.space import Space, parse_space
from sweeps.store.keys import (
    BASELINE_FIXED,
    EPOCH_BUDGET,
    INITIAL_EPOCH,
    QUICK_STUDY,
    SPACE,
    SPACE_YAML,
    WARM_FROM,
    WARM_STARTED,
)
from sweeps.store.trials import FINISHED_STATES, is_search_trial

OWN_SETUP = (EPOCH_BUDGET, BASELINE_FIXED, INITIAL_EPOCH)  # trials trained unlike the space's: not copied
RUNG_PREFIX = "completed_rung_"  # Optuna's SuccessiveHalvingPruner keeps a trial's value at rung N under completed_rung_N
SAME_TASK = ("dataset", "task", "model", "validation", "val_size", "objective")  # what the source must share


def warm_start_source(space: Space, storage: BaseStorage, target: str, quick: bool, engine: str,
                      console: Console) -> optuna.Study | None:
    """The study to copy from, when the space names one and the ``target`` study is not there yet; a SpaceError when
    it is missing, the target itself, a smoke run, or a different task (data, model, objective or settings)."""
    name = space.spec.sweep.warm_start
    studies = sorted(s.study_name for s in storage.get_all_studies())
    if name is None or target in studies:
        return None
    if quick or engine != "optuna":
        why = "a quick smoke run" if quick else "Keras Tuner, which keeps its own search state,"
        console.print(f"[yellow]note: sweep.warm_start left out: {why} starts cold[/]")
        return None
    if name == target or name not in studies:
        why = "the study itself" if name == target else f"not a study in this storage (studies: {', '.join(studies) or 'none'})"
        raise SpaceError(f"{space.path}: sweep.warm_start: {name!r} is {why}")
    source = optuna.load_study(study_name=name, storage=storage)
    if SPACE_YAML not in source.user_attrs or source.user_attrs.get(QUICK_STUDY):
        why = "a quick smoke run" if source.user_attrs.get(QUICK_STUDY) else "a study without its space file recorded"
        raise SpaceError(f"{space.path}: sweep.warm_start: {name!r} is {why}")
    earlier = parse_space(source.user_attrs[SPACE_YAML], Path(f"{source.user_attrs[SPACE]}.yaml"))
    if (difference := _difference(earlier.spec, space.spec)) is not None:
        raise SpaceError(f"{space.path}: sweep.warm_start: {name!r} {difference}: its trials would not score this space's models")
    return source


def _difference(earlier: SpaceFile, now: SpaceFile) -> str | None:
    """How the earlier space trains or scores differently (a setting neither searches), or None."""
    for field in SAME_TASK:
        if getattr(earlier, field) != getattr(now, field):
            return f"has {field} {getattr(earlier, field)!r}, this space {getattr(now, field)!r}"
    settings = _settings(earlier), _settings(now)
    for key in sorted(set(settings[0]) | set(settings[1])):
        if key not in earlier.params and key not in now.params and settings[0].get(key) != settings[1].get(key):
            return f"ran with {key} {settings[0].get(key)!r}, this space {settings[1].get(key)!r}"
    return None


def _settings(spec: SpaceFile) -> dict[str, Any]:
    return {**spec.train.model_dump(exclude_none=True), **spec.fixed}


def warm_start(study: optuna.Study, source: optuna.Study, space: Space, console: Console) -> None:
    """Copy ``source``'s finished search trials into the just-created ``study``."""
    earlier_spec = parse_space(source.user_attrs[SPACE_YAML], space.path).spec
    earlier = _settings(earlier_spec)
    # Successive halving's rungs are epochs fixed by its options (the epochs are the same: _difference checks them),
    # so under the same pruner a copy's rung values compete and the sweep prunes from its first trial.
    rungs = earlier_spec.sweep.pruner == space.spec.sweep.pruner and space.spec.sweep.pruner.name == "successive_halving"
    finished = source.get_trials(deepcopy=False, states=FINISHED_STATES)
    copies = [copy for t in finished if is_search_trial(t) and not any(key in t.user_attrs for key in OWN_SETUP)
              and (copy := _copy(t, earlier, source.study_name, space, rungs)) is not None]
    study.add_trials(copies)
    study.set_user_attr(WARM_STARTED, {"study": source.study_name, "trials": len(copies)})
    left = len(finished) - len(copies)
    note = f" ({left} left out: confirmations, baselines of their own budget or settings, params outside this space)"
    console.print(f"warm start: {len(copies)} finished trials of study {source.study_name} copied in{note if left else ''}")


def _copy(trial: FrozenTrial, earlier: dict[str, Any], source: str, space: Space, rungs: bool) -> FrozenTrial | None:
    """``trial`` as this space would have sampled it — its params (and the earlier space's fixed settings this one
    searches) asked again through this space's ranges and choices, with its successive-halving rungs when ``rungs`` —
    or None when one is missing or outside them, or when it searched a setting this space fixes at another value."""
    fixed = FixedTrial({**earlier, **trial.params})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # FixedTrial only warns of a value outside the range
            params = space.suggest(fixed)
    except (ValueError, Warning):
        return None
    fixed_now = _settings(space.spec)
    if any(name not in params and fixed_now.get(name) != value for name, value in trial.params.items()):
        return None
    values = trial.values if trial.state == TrialState.COMPLETE else None
    return optuna.trial.create_trial(state=trial.state, params=params, distributions=fixed.distributions, values=values,
                                     intermediate_values=dict(trial.intermediate_values),
                                     user_attrs={WARM_FROM: f"{source}#{trial.number}"},
                                     system_attrs={k: v for k, v in trial.system_attrs.items()
                                                   if rungs and k.startswith(RUNG_PREFIX)})
