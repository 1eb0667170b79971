"""A space's Optuna study and the MLflow run of a sweep over it: opening, naming, baselines, budget.

TensorFlow-free, so the supervising process (``sweeps.search.supervisor``) can use it without importing it.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState
from rich.console import Console

from experiments.settings import TrainSettings
from sweeps.errors import UsageError
from sweeps.search.samplers import make_pruner, make_sampler
from sweeps.search.space import Space, parse_space
from sweeps.store import records
from sweeps.store.records import (
    BASELINE_FIXED,
    EPOCH_BUDGET,
    GIT_COMMIT,
    KIND,
    QUICK,
    RUN_ENGINE,
    RUN_SPACE_SHA,
    RUN_WORKER,
    SPACE,
    SPACE_YAML,
    STUDY,
    SWEEP_RUN,
)
from sweeps.store.recovery import close_orphan_runs, worker_id
from sweeps.store.storage import masked
from sweeps.store.tracking import Tracker

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best completed trial by the first objective (on a Pareto front: its best member by that objective)."""
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return None
    if len(study.directions) == 1:
        return study.best_trial
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(study.best_trials, key=lambda t: t.values[0])


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def count_running(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def is_surplus(study: optuna.Study, number: int, target: int) -> bool:
    """Whether trial ``number`` would take the study past ``target`` finished trials: the finished ones and the
    running ones begun before it already make the target. Workers that started trials at the same moment agree
    on which are surplus, as the trial numbers order them."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in FINISHED for t in trials)
    earlier = sum(t.state == TrialState.RUNNING and t.number < number for t in trials)
    return finished + earlier >= target


@dataclass(frozen=True)
class SweepOptions:
    """What the command line may override; None means "as the space file says"."""

    trials: int | None = None
    timeout: float | None = None
    quick: bool = False
    storage: str | None = None
    worker_index: int = 0
    engine: str = "optuna"  # or "kerastuner"
    tuner: str = "hyperband"  # the Keras Tuner engine's search
    subset: int | None = None  # train on a seeded sample of this many images (quick runs, the benchmark)
    max_epochs: int | None = None  # cap every trial's epochs
    trials_per_process: int | None = None  # a worker process's share of trials before a fresh one takes over
    sweep_run: str | None = None  # the supervising process's MLflow sweep run (this process is its worker)
    deadline_at: float | None = None  # wall-clock time.time() when the budget ends (set by the supervisor)
    keras_log: bool = False  # Keras's own epoch lines even on a terminal (where the live line replaces them)
    simulate: bool = False  # train nothing: a synthetic objective, for measuring the framework's own costs

    @property
    def train_subset(self) -> int | None:
        return QUICK["subset"] if self.quick else self.subset

    @property
    def epoch_cap(self) -> int | None:
        return QUICK["epochs"] if self.quick else self.max_epochs


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def target_trials(space: Space, options: SweepOptions) -> int:
    return options.trials or (QUICK["trials"] if options.quick else space.spec.sweep.n_trials)


def budget_s(space: Space, options: SweepOptions) -> float | None:
    """Seconds left of this sweep's budget (from the supervisor's deadline, the command line or the space)."""
    if options.deadline_at is not None:
        return options.deadline_at - time.time()
    return options.timeout or space.spec.sweep.timeout


def start_sweep_run(tracker: Tracker, study: str, space: Space, root: Path, options: SweepOptions, url: str) -> str:
    """The MLflow run of one sweep invocation; its trials' runs nest under it."""
    spec = space.spec
    run_id = tracker.start_run(f"sweep-{time.strftime('%Y%m%d-%H%M%S')}", tags={
        STUDY: study, RUN_SPACE_SHA: space.sha, GIT_COMMIT: git_commit(root),
        RUN_ENGINE: options.engine, KIND: SWEEP_RUN, RUN_WORKER: worker_id()}, params={
        "target_trials": target_trials(space, options), "timeout_s": budget_s(space, options),
        "sampler": spec.sweep.sampler.name, "pruner": spec.sweep.pruner.name, "repeats": spec.sweep.repeats,
        "quick": options.quick, "storage": masked(url), "trials_per_process": options.trials_per_process,
    })
    tracker.log_text(run_id, space.path.read_text(), "space.yaml")
    return run_id


def end_sweep_run(tracker: Tracker, study: optuna.Study, run_id: str, status: str) -> None:
    """Close the sweep's MLflow run with the count of trials in each state."""
    close_orphan_runs(study, tracker)  # runs of trials the heartbeat failed while we ran
    states = [t.state for t in study.get_trials(deepcopy=False)]
    tracker.log_metrics(run_id, {f"trials_{s.name.lower()}": states.count(s) for s in TrialState})
    tracker.end_run(run_id, status)


def _record_space(study: optuna.Study, space: Space, quick: bool, engine: str, console: Console) -> None:
    previous = study.user_attrs.get(records.SPACE_SHA)
    if previous and previous != space.sha:
        console.print(f"[yellow]note: {space.path} changed since this study began; new trials use the new file[/]")
    for key, value in {records.SPACE: space.name, records.SPACE_SHA: space.sha, records.SPACE_YAML: space.path.read_text(),
                       records.QUICK_STUDY: quick, records.ENGINE: engine}.items():
        study.set_user_attr(key, value)


def _seed_offset(study: optuna.Study, storage: optuna.storages.BaseStorage, worker_index: int) -> int:
    """Each process draws its own random stream: offset by the trials already there (a resumed sweep must not
    repeat its first suggestions) and by its worker index (the workers of one ``--workers`` command must not copy
    each other). On a database storage, processes on several machines (or restarted at the same moment) may open
    the study at the same trial count: their host and pid are mixed in too, so they never suggest the same params
    (reproducible suggestions are kept for the one-machine journal)."""
    offset = len(study.get_trials(deepcopy=False)) + 10007 * worker_index
    if isinstance(storage, optuna.storages.RDBStorage):
        offset += zlib.crc32(worker_id().encode()) % 1_000_003
    return offset


def open_study(space: Space, storage: optuna.storages.BaseStorage, quick: bool, console: Console,
               worker_index: int = 0, engine: str = "optuna") -> optuna.Study:
    """Create or load the space's study and record the space file it runs with."""
    study = optuna.create_study(study_name=records.study_name(space.name, quick, engine), storage=storage, sampler=make_sampler(space),
                                pruner=make_pruner(space), directions=space.spec.objective.directions,
                                load_if_exists=True)
    study.sampler = make_sampler(space, seed_offset=_seed_offset(study, storage, worker_index))
    _record_space(study, space, quick, engine, console)
    if engine == "optuna":
        _enqueue_baselines(study, space)
    return study


def _enqueue_baselines(study: optuna.Study, space: Space) -> None:
    """Queue the space's known configurations first (once: Optuna skips params the study already has)."""
    for baseline in space.spec.sweep.baselines:
        attrs = {**({EPOCH_BUDGET: baseline.epochs} if baseline.epochs else {}),
                 **({BASELINE_FIXED: dict(baseline.fixed)} if baseline.fixed else {})}
        study.enqueue_trial(dict(baseline.params), user_attrs=attrs or None, skip_if_exists=True)


def trial_config(space: Space, params: dict[str, Any], user_attrs: dict[str, Any]) -> tuple[dict[str, Any], TrainSettings]:
    """A trial's model settings and training settings: the space's, its params, and a baseline's own epoch budget
    and fixed values (the one place that reads them, so a sweep and a reproduction train the same model)."""
    model_params, settings = space.resolve(params)
    model_params.update(user_attrs.get(BASELINE_FIXED, {}))
    if user_attrs.get(EPOCH_BUDGET):
        settings = dataclasses.replace(settings, epochs=min(settings.epochs, user_attrs[EPOCH_BUDGET]))
    return model_params, settings


def existing_study(name: str, storage: BaseStorage, url: str, tracking: str) -> tuple[optuna.Study, Space, Tracker]:
    """The study ``name`` (stored at ``url``), the space file it ran with, and its MLflow experiment; one line
    saying what to run first when there is none."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        tracker = Tracker(tracking, name, create=False)
    except (KeyError, LookupError):
        raise UsageError(f"no sweep of {name!r} yet in {masked(url)}: run make sweep SPACE={name.removesuffix('-quick')} first") from None
    space = parse_space(study.user_attrs[SPACE_YAML], Path(f"{study.user_attrs[SPACE]}.yaml"))
    return study, space, tracker
