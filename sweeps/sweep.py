"""One sweep: open (or continue) the space's Optuna study, run trials until it holds TRIALS finished ones."""

from __future__ import annotations

import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from experiments.data import load_dataset
from sweeps.best_model import best_trial, register_best
from sweeps.errors import SweepStopped
from sweeps.samplers import make_pruner, make_sampler
from sweeps.recovery import WORKER, close_orphan_runs, fail_dead_trials, worker_id
from sweeps.space import Space
from sweeps.stores import check_tracking, default_storage, masked, open_storage
from sweeps.tracking import KIND, STUDY, Tracker, tracking_uri
from sweeps.trial import EPOCH_BUDGET, EPOCH_TIME, TrialContext, TrialFailed, run_trial

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
QUICK = {"subset": 6000, "epochs": 2, "trials": 2}
MAX_FAILURES_IN_A_ROW = 3


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

    @property
    def train_subset(self) -> int | None:
        return QUICK["subset"] if self.quick else self.subset

    @property
    def epoch_cap(self) -> int | None:
        return QUICK["epochs"] if self.quick else self.max_epochs


def study_name(space: Space, quick: bool, engine: str = "optuna") -> str:
    """Each engine, and quick smoke runs, get their own study so they never mix."""
    return space.name + ("-kerastuner" if engine == "kerastuner" else "") + ("-quick" if quick else "")


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def count_running(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


class Progress:
    """After each trial: print a line, recover dead workers' trials, stop when enough trials are finished or
    in flight (Optuna's MaxTrialsCallback counts finished ones only, so N workers would overshoot by N-1),
    and stop after repeated identical failures."""

    def __init__(self, console: Console, metric: str, target: int, stops: bool = True, deadline: float | None = None):
        self.console, self.metric, self.target = console, metric, target
        self.stops = stops  # False when Keras Tuner drives the trials (it stops itself)
        self.deadline = deadline  # time.monotonic() when the budget ends
        self.failures: list[str] = []
        self.stopped_for: str | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        elapsed = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
        if trial.state == TrialState.COMPLETE:
            result = f"{self.metric} {trial.values[0]:.4f} ± {trial.user_attrs.get('value_std', 0):.4f}"
            if len(trial.values) > 1:
                result += f", {trial.values[1]:.4g}"
        elif trial.state == TrialState.FAIL:
            result = f"failed: {trial.user_attrs.get('fail_reason', 'see MLflow run')}"
        else:
            result = f"stopped at epoch {max(trial.intermediate_values, default=-1) + 1}"
        best = ""
        top = best_trial(study)
        if top is not None:
            best = f"best {top.values[0]:.4f} (#{top.number})"
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        self.console.print(
            f"trial {trial.number:>3} {trial.state.name:<8} {result:<32} {elapsed:6.0f}s  {best}  "
            f"[{count_finished(study)}/{self.target}]  {params}", highlight=False,
        )
        self._watch_failures(study, trial)
        fail_dead_trials(study)
        if self.stops and count_finished(study) + count_running(study) >= self.target:
            study.stop()
        if self.stops and self.deadline is not None:
            self._stop_if_no_time(study)

    def _stop_if_no_time(self, study: optuna.Study) -> None:
        """No trial is started that cannot train one epoch (the median so far) before the budget ends."""
        epoch_s = [t.user_attrs[EPOCH_TIME] for t in study.get_trials(deepcopy=False, states=FINISHED)
                   if EPOCH_TIME in t.user_attrs]
        left = self.deadline - time.monotonic()
        if epoch_s and left < statistics.median(epoch_s):
            self.console.print(f"budget: {max(left, 0):.0f} s left, less than one epoch ({statistics.median(epoch_s):.0f} s): "
                               "no new trial", highlight=False)
            study.stop()

    def _watch_failures(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            self.failures.clear()
            return
        self.failures.append(trial.user_attrs.get("fail_reason", ""))
        recent = self.failures[-MAX_FAILURES_IN_A_ROW:]
        if len(recent) == MAX_FAILURES_IN_A_ROW and len(set(recent)) == 1:
            self.stopped_for = recent[0]
            if self.stops:
                study.stop()


def _record_space(study: optuna.Study, space: Space, quick: bool, console: Console) -> None:
    previous = study.user_attrs.get("space_sha")
    if previous and previous != space.sha:
        console.print(f"[yellow]note: {space.path} changed since this study began; new trials use the new file[/]")
    for key, value in {"space": space.name, "space_sha": space.sha, "space_yaml": space.path.read_text(),
                       "quick": quick}.items():
        study.set_user_attr(key, value)


def open_study(space: Space, storage: optuna.storages.BaseStorage, quick: bool, console: Console,
               worker_index: int = 0, engine: str = "optuna") -> optuna.Study:
    """Create or load the space's study and record the space file it runs with."""
    study = optuna.create_study(study_name=study_name(space, quick, engine), storage=storage, sampler=make_sampler(space),
                                pruner=make_pruner(space), directions=space.spec.objective.directions,
                                load_if_exists=True)
    # Each process draws its own random stream, offset by the trials already there (a resumed sweep must
    # not repeat its first suggestions) and by its worker index (simultaneous workers must not copy each other).
    study.sampler = make_sampler(space, seed_offset=len(study.get_trials(deepcopy=False)) + 10007 * worker_index)
    _record_space(study, space, quick, console)
    if engine == "optuna":
        _enqueue_baselines(study, space)
    return study


def _enqueue_baselines(study: optuna.Study, space: Space) -> None:
    """Queue the space's known configurations first (once: Optuna skips params the study already has)."""
    for baseline in space.spec.sweep.baselines:
        attrs = {EPOCH_BUDGET: baseline.epochs} if baseline.epochs else None
        study.enqueue_trial(dict(baseline.params), user_attrs=attrs, skip_if_exists=True)


def run_sweep(space: Space, root: Path, options: SweepOptions, console: Console) -> optuna.Study:
    """Continue the space's study until it has ``trials`` finished trials (or the timeout passes)."""
    # Everything that can be wrong with the input is checked before anything is written anywhere.
    make_sampler(space), make_pruner(space)
    spec = space.spec
    data = load_dataset(spec.dataset, spec.validation, spec.val_size, spec.sweep.seed,
                        options.train_subset)
    url = options.storage or default_storage(root)
    storage = open_storage(url)
    tracking = tracking_uri(root)
    check_tracking(tracking)
    study = open_study(space, storage, options.quick, console, options.worker_index, options.engine)
    name = study.study_name
    tracker = Tracker(tracking, name)
    retried = fail_dead_trials(study)
    closed = close_orphan_runs(study, tracker)
    if retried or closed:
        console.print(f"recovered from dead workers: trials {retried} failed and queued again, {closed} MLflow runs closed")
    target = options.trials or (QUICK["trials"] if options.quick else spec.sweep.n_trials)
    timeout = options.timeout or spec.sweep.timeout
    deadline = time.monotonic() + timeout if timeout else None
    done, running = count_finished(study), count_running(study)
    console.print(f"study {name} in {masked(url)}: {done} finished trials, {running} running, target {target}")
    if done + running >= target:
        console.print(f"nothing to do: {done} finished + {running} running ≥ {target} (raise TRIALS to go on)")
        return study
    console.print(f"data {data.name} from {data.source}: train {len(data.y_train)}, validation {len(data.y_val)} "
                  f"({data.validation}), test {len(data.y_test)}")
    tags = {STUDY: name, "sweeps.space_sha": space.sha, "sweeps.git_commit": git_commit(root),
            "sweeps.data_md5": data.md5, "sweeps.validation": data.validation, "sweeps.engine": options.engine}
    sweep_run = tracker.start_run(f"sweep-{time.strftime('%Y%m%d-%H%M%S')}", tags={
        **tags, KIND: "sweep", f"sweeps.{WORKER}": worker_id()}, params={
        "target_trials": target, "timeout_s": timeout, "sampler": spec.sweep.sampler.name,
        "pruner": spec.sweep.pruner.name, "repeats": spec.sweep.repeats, "quick": options.quick,
        "storage": masked(url), "train_size": len(data.y_train), "val_size": len(data.y_val),
        "test_size": len(data.y_test),
    })
    tracker.log_text(sweep_run, space.path.read_text(), "space.yaml")
    ctx = TrialContext(space=space, data=data, tracker=tracker, sweep_run=sweep_run,
                       workdir=root / ".sweeps" / "work" / name, tags=tags,
                       max_epochs=options.epoch_cap, deadline=deadline,
                       prune=spec.sweep.pruner.name != "none" and options.engine == "optuna")
    progress = Progress(console, spec.objective.metric, target, stops=options.engine == "optuna", deadline=deadline)
    status = "FAILED"
    try:
        if options.engine == "kerastuner":
            from sweeps import kerastuner

            kerastuner.search(space, ctx, study, options.tuner, target, root / ".sweeps" / "kerastuner", progress, timeout)
        else:
            # No gc_after_trial: each repeat's keras.backend.clear_session() already collects (0.5 s a time).
            study.optimize(lambda trial: run_trial(ctx, trial), timeout=timeout, catch=(TrialFailed,),
                           callbacks=[progress])
        status = "FAILED" if progress.stopped_for else "FINISHED"
        register_best(study, tracker, sweep_run, root / ".sweeps" / "cache")
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        close_orphan_runs(study, tracker)  # runs of trials the heartbeat failed while we ran
        states = [t.state for t in study.get_trials(deepcopy=False)]
        tracker.log_metrics(sweep_run, {f"trials_{s.name.lower()}": states.count(s) for s in TrialState})
        tracker.end_run(sweep_run, status)
    if progress.stopped_for:
        raise SweepStopped(f"stopped after {MAX_FAILURES_IN_A_ROW} trials in a row failed with: {progress.stopped_for}")
    console.print(f"study {name}: {count_finished(study)} finished trials")
    return study
