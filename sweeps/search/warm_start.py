"""``sweep.warm_start: STUDY``: a new study begins with the finished trials of an earlier one in the same storage, so
the sampler models from its first pick instead of spending its start-up trials at random (TPE counts them among its
``n_startup_trials``). The copies keep their params, values and per-epoch values, and carry ``warm_start_from``;
they are not the sweep's trials: no MLflow runs, not counted toward TRIALS, never its winner, not in its report.

TensorFlow-free: the supervising process opens (and so warm-starts) the study before any worker starts.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FixedTrial, FrozenTrial, TrialState
from rich.console import Console

from sweeps.errors import SpaceError
from sweeps.search.space import Space
from sweeps.store.keys import WARM_FROM, WARM_STARTED
from sweeps.store.trials import FINISHED_STATES, is_search_trial


def warm_start_source(space: Space, storage: BaseStorage, target: str) -> optuna.Study | None:
    """The study to copy from: the one the space's ``sweep.warm_start`` names, unless the ``target`` study has its
    copies already (or none is named); a SpaceError when it is not in ``storage`` or is the target itself."""
    name = space.spec.sweep.warm_start
    studies = sorted(s.study_name for s in storage.get_all_studies())
    if name is None or (target in studies and WARM_STARTED in _study_attrs(storage, target)):
        return None
    if name == target or name not in studies:
        why = "the study itself" if name == target else f"not a study in this storage (studies: {', '.join(studies) or 'none'})"
        raise SpaceError(f"{space.path}: sweep.warm_start: {name!r} is {why}")
    return optuna.load_study(study_name=name, storage=storage)


def warm_start(study: optuna.Study, source: optuna.Study, space: Space, console: Console) -> None:
    """Copy ``source``'s finished search trials into ``study``; once (a resumed or second process finds them there)."""
    if WARM_STARTED in study.user_attrs:
        return
    finished = [t for t in source.get_trials(deepcopy=False, states=FINISHED_STATES) if is_search_trial(t)]
    copied = sum(_add(study, copy) for t in finished if (copy := _copy(t, source.study_name, space)) is not None)
    study.set_user_attr(WARM_STARTED, {"study": source.study_name, "trials": copied})
    left = len(source.get_trials(deepcopy=False, states=FINISHED_STATES)) - copied
    note = f" ({left} left out: confirmations, or params outside this space)" if left else ""
    console.print(f"warm start: {copied} finished trials of study {source.study_name} copied in{note}")


def _study_attrs(storage: BaseStorage, name: str) -> dict:
    return storage.get_study_user_attrs(storage.get_study_id_from_name(name))


def _add(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Add ``trial``; False when the study holds a param of the same name of another kind (its space changed so)."""
    try:
        study.add_trial(trial)
    except ValueError:
        return False
    return True


def _copy(trial: FrozenTrial, source: str, space: Space) -> FrozenTrial | None:
    """``trial`` as this space would have sampled it (its params asked again through this space, with this space's
    ranges and choices), or None when one of this space's params is missing or outside them."""
    fixed = FixedTrial(trial.params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # FixedTrial only warns of a value outside the range
            params = space.suggest(fixed)
    except (ValueError, UserWarning):
        return None
    distributions = fixed.distributions
    values = trial.values if trial.state == TrialState.COMPLETE else None
    return optuna.trial.create_trial(state=trial.state, params=params, distributions=distributions, values=values,
                                     intermediate_values=dict(trial.intermediate_values),
                                     user_attrs={WARM_FROM: f"{source}#{trial.number}"})
