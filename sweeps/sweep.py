"""One sweep: open (or continue) the space's Optuna study, run trials until it holds TRIALS finished ones."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from experiments.data import load_dataset
from sweeps.best_model import register_best
from sweeps.samplers import make_pruner, make_sampler
from sweeps.space import Space
from sweeps.tracking import KIND, STUDY, Tracker, tracking_uri
from sweeps.trial import TrialContext, TrialFailed, run_trial

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


def default_storage(root: Path) -> str:
    """The local Optuna store: one SQLite file under ``.sweeps/``."""
    (root / ".sweeps").mkdir(exist_ok=True)
    return f"sqlite:///{(root / '.sweeps' / 'optuna.db').resolve()}"


def masked(url: str) -> str:
    """``url`` with any password replaced by ***, safe to print and log."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def study_name(space: Space, quick: bool) -> str:
    """Quick smoke runs get their own study so they never mix with real results."""
    return f"{space.name}-quick" if quick else space.name


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


class Progress:
    """Prints one line per finished trial and stops the study after repeated failures."""

    def __init__(self, console: Console, metric: str, target: int):
        self.console, self.metric, self.target = console, metric, target
        self.failures: list[str] = []
        self.stopped_for: str | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        elapsed = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
        if trial.state == TrialState.COMPLETE:
            result = f"{self.metric} {trial.value:.4f} ± {trial.user_attrs.get('value_std', 0):.4f}"
        elif trial.state == TrialState.FAIL:
            result = f"failed: {trial.user_attrs.get('fail_reason', 'see MLflow run')}"
        else:
            result = f"stopped at epoch {max(trial.intermediate_values, default=-1) + 1}"
        best = ""
        if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
            best = f"best {study.best_value:.4f} (#{study.best_trial.number})"
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        self.console.print(
            f"trial {trial.number:>3} {trial.state.name:<8} {result:<32} {elapsed:6.0f}s  {best}  "
            f"[{count_finished(study)}/{self.target}]  {params}", highlight=False,
        )
        self._watch_failures(study, trial)

    def _watch_failures(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            self.failures.clear()
            return
        self.failures.append(trial.user_attrs.get("fail_reason", ""))
        recent = self.failures[-MAX_FAILURES_IN_A_ROW:]
        if len(recent) == MAX_FAILURES_IN_A_ROW and len(set(recent)) == 1:
            self.stopped_for = recent[0]
            study.stop()


class SweepStopped(RuntimeError):
    """The sweep stopped itself: the same failure kept repeating."""


def _record_space(study: optuna.Study, space: Space, quick: bool, console: Console) -> None:
    previous = study.user_attrs.get("space_sha")
    if previous and previous != space.sha:
        console.print(f"[yellow]note: {space.path} changed since this study began; new trials use the new file[/]")
    for key, value in {"space": space.name, "space_sha": space.sha, "space_yaml": space.path.read_text(),
                       "quick": quick}.items():
        study.set_user_attr(key, value)


def run_sweep(space: Space, root: Path, options: SweepOptions, console: Console) -> optuna.Study:
    """Continue the space's study until it has ``trials`` finished trials (or the timeout passes)."""
    sampler, pruner = make_sampler(space), make_pruner(space)
    storage = options.storage or default_storage(root)
    name = study_name(space, options.quick)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                direction=space.spec.objective.resolved_direction, load_if_exists=True)
    _record_space(study, space, options.quick, console)
    target = options.trials or (QUICK["trials"] if options.quick else space.spec.sweep.n_trials)
    timeout = options.timeout or space.spec.sweep.timeout
    done = count_finished(study)
    console.print(f"study {name} in {masked(storage)}: {done} finished trials, target {target}")
    if done >= target:
        console.print(f"nothing to do: the study already has {done} ≥ {target} finished trials (raise TRIALS to go on)")
        return study
    spec = space.spec
    data = load_dataset(spec.dataset, spec.validation, spec.val_size, spec.sweep.seed,
                        QUICK["subset"] if options.quick else None)
    console.print(f"data {data.name} from {data.source}: train {len(data.y_train)}, validation {len(data.y_val)} "
                  f"({data.validation}), test {len(data.y_test)}")
    tracker = Tracker(tracking_uri(root), name)
    tags = {STUDY: name, "sweeps.space_sha": space.sha, "sweeps.git_commit": git_commit(root),
            "sweeps.data_md5": data.md5, "sweeps.validation": data.validation, "sweeps.engine": "optuna"}
    sweep_run = tracker.start_run(f"sweep-{time.strftime('%Y%m%d-%H%M%S')}", tags={**tags, KIND: "sweep"}, params={
        "target_trials": target, "timeout_s": timeout, "sampler": spec.sweep.sampler.name,
        "pruner": spec.sweep.pruner.name, "repeats": spec.sweep.repeats, "quick": options.quick,
        "storage": masked(storage), "train_size": len(data.y_train), "val_size": len(data.y_val),
        "test_size": len(data.y_test),
    })
    tracker.log_text(sweep_run, space.path.read_text(), "space.yaml")
    ctx = TrialContext(space=space, data=data, tracker=tracker, sweep_run=sweep_run,
                       workdir=root / ".sweeps" / "work" / name, tags=tags,
                       max_epochs=QUICK["epochs"] if options.quick else None, prune=spec.sweep.pruner.name != "none")
    progress = Progress(console, spec.objective.metric, target)
    status = "FAILED"
    try:
        study.optimize(lambda trial: run_trial(ctx, trial), timeout=timeout, catch=(TrialFailed,), gc_after_trial=True,
                       callbacks=[optuna.study.MaxTrialsCallback(target, states=FINISHED), progress])
        status = "FAILED" if progress.stopped_for else "FINISHED"
        register_best(study, tracker, sweep_run, root / ".sweeps" / "cache")
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        states = [t.state for t in study.get_trials(deepcopy=False)]
        tracker.log_metrics(sweep_run, {f"trials_{s.name.lower()}": states.count(s) for s in TrialState})
        tracker.end_run(sweep_run, status)
    if progress.stopped_for:
        raise SweepStopped(f"stopped after {MAX_FAILURES_IN_A_ROW} trials in a row failed with: {progress.stopped_for}")
    console.print(f"study {name}: {count_finished(study)} finished trials")
    return study
