"""A space's Optuna study and the MLflow run of a sweep over it: opening them (:func:`open_sweep`, shared by every
command, the supervisor and its workers), baselines, a trial's config, an existing study and its space file.

TensorFlow-free (an import contract keeps it so): the supervising process uses it without importing TensorFlow.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from experiments.data.loading import raw_data
from experiments.settings import TrainSettings
from sweeps.errors import SpaceError, StoreError, UsageError
from sweeps.next_command import next_command
from sweeps.processes import worker_id
from sweeps.search.environment import log_environment
from sweeps.search.options import SweepOptions
from sweeps.search.retries import close_orphan_runs, stale_trials
from sweeps.search.samplers import make_pruner, make_sampler
from sweeps.search.warm_start import warm_start, warm_start_source
from sweeps.space.space import Space, parse_space
from sweeps.store import keys
from sweeps.store.keys import (
    BASELINE,
    BASELINE_FIXED,
    EPOCH_BUDGET,
    GIT_COMMIT,
    KIND,
    QUICK,
    RUN_ENGINE,
    RUN_SPACE_SHA,
    RUN_WORKER,
    SEEDS,
    SPACE,
    SPACE_YAML,
    STUDY,
    SWEEP_RUN,
)
from sweeps.store.storage import check_tracking, default_storage, masked, open_storage
from sweeps.store.sweep_end import ended_by, go_on_past
from sweeps.store.tracking import Tracker, tracking_uri
from sweeps.store.trials import FINISHED_STATES, StudyTrials, cut_by_the_budget, is_owed, is_search_trial, own_trials


def is_surplus(study: optuna.Study, number: int, target: int, trials: Sequence[FrozenTrial] | None = None) -> bool:
    """Whether trial ``number`` would take the study past ``target`` finished search trials: the finished ones and
    the running ones begun before it already make the target. Workers that started trials at the same moment agree
    on which are surplus, as the trial numbers order them. An owed trial never is (a retry goes on with a trial that
    counted as running until it was lost; a confirmation is not one of the search's trials). ``trials``: the study's
    as just read (else read here)."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    if any(t.number == number and is_owed(t) for t in trials):
        return False
    search = [t for t in trials if is_search_trial(t)]
    finished = sum(t.state in FINISHED_STATES and not cut_by_the_budget(t) for t in search)
    earlier = sum(t.state == TrialState.RUNNING and t.number < number for t in search)
    return finished + earlier >= target


@dataclass
class Sweep:
    """A sweep opened in this process: the space and options, the stores (address, storage, study, experiment)."""

    space: Space
    root: Path
    options: SweepOptions
    url: str
    storage: BaseStorage
    study: optuna.Study
    tracker: Tracker

    @property
    def name(self) -> str:
        return self.study.study_name

    @property
    def target(self) -> int:
        """Finished trials the study should reach."""
        return self.options.target(self.space)

    def wants_more(self, now: StudyTrials) -> bool:
        """Whether the study, as read in ``now``, wants more trials than it holds finished or running, and no stop
        rule ended its sweep (an owed trial, a retry or a confirmation, runs even then)."""
        if now.target_reached(self.target):
            return False
        return ended_by(self.study) is None or any(is_owed(t) for t in now.in_states(TrialState.WAITING))


def open_sweep(space: Space, root: Path, options: SweepOptions, console: Console, worker_index: int = 0,
               create: bool = True) -> Sweep:
    """Check the input, then open the stores and the space's study and MLflow experiment (created when new; a
    supervisor's worker, ``create`` False, only joins the study its command created).

    Everything that can be wrong with the input (sampler and pruner options, the data files) is found before
    anything is written anywhere. TensorFlow-free: the supervisor of worker processes opens its sweep here too.
    """
    make_sampler(space), make_pruner(space)
    data = raw_data(space.data)
    if create and data.numbered_classes and data.schema is not None:
        console.print(f"[yellow]note: {space.data}: target {data.schema.target!r} has {data.numbered_classes} classes, "
                      "every one a whole number; for a number to predict set task: regression[/]", highlight=False)
    url = options.storage or default_storage(root)
    storage = open_storage(url, stale_trials())
    tracking = tracking_uri(root)
    check_tracking(tracking)
    study = open_study(space, storage, options.quick, console, worker_index, options.engine, create,
                       options.train_subset, data.md5)
    ended = ended_by(study) if create else None
    if ended is not None and options.target(space) > ended.target:  # TRIALS raised: the sweep goes on past its end
        go_on_past(study, ended)
        console.print(f"going on past sweep.stop.{ended.rule} ({ended.why}): TRIALS raised from {ended.target} to "
                      f"{options.target(space)}", highlight=False)
    return Sweep(space, root, options, url, storage, study, Tracker(tracking, study.study_name))


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def start_sweep_run(sweep: Sweep, budget_s: float | None) -> str:
    """The MLflow run of one sweep invocation, with its space file and environment; its trials' runs nest under it."""
    spec, options = sweep.space.spec, sweep.options
    run_id = sweep.tracker.start_run(f"sweep-{time.strftime('%Y%m%d-%H%M%S')}", tags={
        STUDY: sweep.name, RUN_SPACE_SHA: sweep.space.sha, GIT_COMMIT: git_commit(sweep.root),
        RUN_ENGINE: options.engine, KIND: SWEEP_RUN, RUN_WORKER: worker_id()}, params={
        "target_trials": sweep.target, "timeout_s": budget_s,
        "sampler": spec.sweep.sampler.name, "pruner": spec.sweep.pruner.name, "repeats": spec.sweep.repeats,
        "quick": options.quick, "storage": masked(sweep.url), "trials_per_process": options.trials_per_process,
    })
    sweep.tracker.log_text(run_id, sweep.space.text, "space.yaml")
    log_environment(sweep.tracker, run_id, sweep.root)  # packages, Python, OS, TensorFlow, the uncommitted diff
    return run_id


def log_trial_counts(sweep: Sweep, run_id: str) -> None:
    """Before a sweep run closes: close what dead workers left open, and log the count of trials in each state."""
    close_orphan_runs(sweep.study, sweep.tracker)  # runs of trials the heartbeat failed while we ran
    states = [t.state for t in own_trials(sweep.study)]
    sweep.tracker.log_metrics(run_id, {f"trials_{s.name.lower()}": states.count(s) for s in TrialState})


def _record_space(study: optuna.Study, space: Space, quick: bool, engine: str, console: Console,
                  subset: int | None, data_md5: str | None) -> None:
    previous = study.user_attrs.get(keys.SPACE_SHA)
    if previous and previous != space.sha:
        console.print(f"[yellow]note: {space.path} changed since this study began; new trials use the new file[/]")
    for key, value in {keys.SPACE: space.name, keys.SPACE_SHA: space.sha, keys.SPACE_YAML: space.text,
                       keys.QUICK_STUDY: quick, keys.ENGINE: engine, keys.TRAIN_SUBSET: subset}.items():
        study.set_user_attr(key, value)
    if data_md5 is not None:
        study.set_user_attr(keys.TRAINED_ON, data_md5)


def _sample_words(subset: int | None) -> str:
    return "every training row (no --subset)" if subset is None else f"a {subset}-row sample (--subset {subset})"


def _check_subset(study: optuna.Study, subset: int | None) -> None:
    """Refuse to add trials trained on another sample of the data to a study: its trials would be ranked against
    each other (and TPE would learn from them) as if they had trained on the same rows. A study from before this
    was recorded is taken as it is."""
    if keys.TRAIN_SUBSET not in study.user_attrs or study.user_attrs[keys.TRAIN_SUBSET] == subset:
        return
    before = study.user_attrs[keys.TRAIN_SUBSET]
    raise UsageError(f"study {study.study_name} trained its trials on {_sample_words(before)}; this run asks for "
                     f"{_sample_words(subset)}, and its trials would be ranked against theirs as if trained on the "
                     f"same data: run it {'without --subset' if before is None else f'with --subset {before}'}, or "
                     f"copy the space file to a new name for a study of its own")


def _check_data(study: optuna.Study, space: Space, data_md5: str | None) -> None:
    """Refuse to add trials trained on other data to a study (an edited table, images added to a folder, another
    file under the same name): they would be ranked against its trials as if trained on the same data. A study from
    before the data was recorded is taken as it is."""
    before = study.user_attrs.get(keys.TRAINED_ON)
    if data_md5 is None or before is None or before == data_md5:
        return
    raise UsageError(f"study {study.study_name} trained its trials on {space.data} as it was then (md5 {before[:8]}); "
                     f"it has changed since (md5 {data_md5[:8]}), and new trials would be ranked against the old "
                     "ones as if trained on the same data: put the data back as it was, or copy the space file to a "
                     "new name for a study of its own")


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
               worker_index: int = 0, engine: str = "optuna", create: bool = True,
               subset: int | None = None, data_md5: str | None = None) -> optuna.Study:
    """Create or load the space's study and record the space file, the data (its fingerprint ``data_md5``) and the
    training sample (``subset``) it runs with; a study begun on other data or another sample is refused.
    The process that creates it queues the space's baselines first and copies in the finished trials of the study it
    warm-starts from (once: creating a study is atomic in every Optuna storage, so two commands starting at once
    never both copy)."""
    name = keys.study_name(space.name, quick, engine)
    source = warm_start_source(space, storage, name, quick, engine, console)  # checked before anything is written
    study, created = _create_or_load(name, storage, space) if create else (_join(name, storage, space), False)
    _check_data(study, space, data_md5)
    _check_subset(study, subset)
    study.sampler = make_sampler(space, seed_offset=_seed_offset(study, storage, worker_index))
    _record_space(study, space, quick, engine, console, subset, data_md5)
    if engine == "optuna":
        _enqueue_baselines(study, space)
    if created and source is not None:
        warm_start(study, source, space, console)
    return study


def _create_or_load(name: str, storage: optuna.storages.BaseStorage, space: Space) -> tuple[optuna.Study, bool]:
    """The study ``name`` and whether this call created it."""
    sampler, pruner = make_sampler(space), make_pruner(space)
    try:
        return optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                   directions=space.spec.objective.directions), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner), False


def _join(name: str, storage: optuna.storages.BaseStorage, space: Space) -> optuna.Study:
    """The study ``name`` its command created; a StoreError when this process's storage does not hold it (a file
    of another machine: a cluster node must reach the driver's database, never start a study of its own)."""
    try:
        return optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(space), pruner=make_pruner(space))
    except KeyError:
        raise StoreError(f"study {name} is not in this worker's storage: on a cluster every node must reach the "
                         "command's database (STORAGE=postgresql://…), not a file of its own machine") from None


def _enqueue_baselines(study: optuna.Study, space: Space) -> None:
    """Queue the space's known configurations first (once: Optuna skips params the study already has)."""
    for place, baseline in enumerate(space.spec.sweep.baselines, start=1):
        attrs = {BASELINE: place, **({EPOCH_BUDGET: baseline.epochs} if baseline.epochs else {}),
                 **({BASELINE_FIXED: dict(baseline.fixed)} if baseline.fixed else {})}
        study.enqueue_trial(dict(baseline.params), user_attrs=attrs, skip_if_exists=True)


def trial_config(space: Space, params: dict[str, Any], user_attrs: dict[str, Any]) -> tuple[dict[str, Any], TrainSettings]:
    """A trial's model settings and training settings: the space's, its params, and a baseline's own epoch budget
    and fixed values (the one place that reads them, so a sweep and a reproduction train the same model)."""
    model_params, settings = space.resolve(params)
    model_params.update(user_attrs.get(BASELINE_FIXED, {}))
    if user_attrs.get(EPOCH_BUDGET):
        settings = dataclasses.replace(settings, epochs=min(settings.epochs, user_attrs[EPOCH_BUDGET]))
    return model_params, settings


def trial_seeds(space: Space, user_attrs: dict[str, Any]) -> list[int]:
    """The seeds a trial trains with: the space's repeats, or a confirmation's own."""
    first = space.spec.sweep.seed
    return list(user_attrs.get(SEEDS) or range(first, first + space.spec.sweep.repeats))


def space_of(study: optuna.Study) -> Space:
    """The space file a study ran with (recorded when it was opened; a SpaceError when this version cannot read it)."""
    if SPACE_YAML not in study.user_attrs:
        raise SpaceError(f"study {study.study_name!r} has no space file recorded")
    return parse_space(study.user_attrs[SPACE_YAML], Path(f"{study.user_attrs[SPACE]}.yaml"))


def existing_study(name: str, storage: BaseStorage, url: str, tracking: str) -> tuple[optuna.Study, Space, Tracker]:
    """The study ``name`` (stored at ``url``), the space file it ran with, and its MLflow experiment; one line
    saying what to run first when there is none."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        tracker = Tracker(tracking, name, create=False)
    except (KeyError, LookupError):
        space, quick, engine = keys.study_of(name)
        first = next_command("run", space, quick=quick, engine=engine)
        raise UsageError(f"no sweep of {name!r} yet in {masked(url)}: run `{first}` first") from None
    return study, space_of(study), tracker


def quick_settings(study: optuna.Study, settings: TrainSettings) -> tuple[TrainSettings, int | None]:
    """A trial's settings as a quick study trained them (capped epochs), and the training subset it used."""
    if not study.user_attrs.get(keys.QUICK_STUDY):
        return settings, None
    return dataclasses.replace(settings, epochs=min(settings.epochs, QUICK["epochs"])), QUICK["subset"]
