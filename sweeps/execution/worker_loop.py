"""One worker's sweep in this process: continue the space's study until it holds TRIALS finished trials, the budget
is spent or the process has run its share. ``run_worker`` → ``run_sweep`` → ``_optimize`` (one engine's loop) →
:func:`sweeps.objective.trial.run_trial`, as Optuna's ``optimize`` → ``_optimize`` → ``_run_trial``."""

from __future__ import annotations

import importlib
import importlib.metadata
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console

from experiments.data.loading import Dataset, load_dataset
from experiments.data.tables import TEST_SPLIT_SEED
from experiments.train import train_repeat
from sweeps.console.lines import TrialLine, nothing_to_do_line, standing_line
from sweeps.console.live import LiveLine, SweepProgress
from sweeps.errors import SweepStopped, TrialFailed, UsageError
from sweeps.execution.spec import WorkerSpec
from sweeps.objective.checkpoints import register_best
from sweeps.objective.trial import TrainRepeat, TrialContext, run_trial
from sweeps.processes import node_name
from sweeps.search.retries import close_orphan_runs, fail_dead_trials, queue_interrupted, queue_left_interrupted
from sweeps.search.stop_rules import MAX_FAILURES_IN_A_ROW, AfterTrial, DeadWorkerRecovery, EndRules, SweepStops
from sweeps.search.study import Sweep, git_commit, log_trial_counts, open_sweep, start_sweep_run
from sweeps.space.space import Space
from sweeps.store.keys import (
    DATA_MD5,
    GIT_COMMIT,
    GPUS_UNSEEN,
    INPUT_SCALE,
    RUN_ENGINE,
    RUN_NODE,
    RUN_SPACE_SHA,
    STUDY,
    VALIDATION,
)
from sweeps.store.storage import masked
from sweeps.store.tracking import closing_run
from sweeps.store.trials import ReadPerTrial, StudyTrials, count_finished


def _measures_nothing(sweep: Sweep) -> list[AfterTrial]:
    return []


@dataclass(frozen=True)
class Extensions:
    """What a caller plugs into a sweep (the benchmarks do; ``--extensions module:function`` names a function
    that returns one for a space): the function that trains a repeat, a hook that may instrument the opened
    sweep and returns callbacks to call after each trial, and whether the best model is registered (a training
    function that writes no Keras checkpoint has none)."""

    train: TrainRepeat = train_repeat
    instrument: Callable[[Sweep], list[AfterTrial]] = _measures_nothing
    register_best: bool = True


def load_extensions(name: str | None, space: Space) -> Extensions:
    """The extensions that ``module:function`` returns for ``space`` (none given: the defaults)."""
    if not name:
        return Extensions()
    module, _, function = name.partition(":")
    try:
        return getattr(importlib.import_module(module), function)(space)
    except (ImportError, AttributeError, TypeError) as exc:
        raise UsageError(f"--extensions {name}: expected module:function returning Extensions ({exc})") from None


def run_worker(spec: WorkerSpec, console: Console) -> bool:
    """The worker loop: run the sweep that ``spec`` describes with the extensions its options name. True when only
    its share of trials stopped it (the study wants more from a fresh process)."""
    space = spec.space()
    return run_sweep(spec, space, console, load_extensions(spec.options.extensions, space))


def run_sweep(spec: WorkerSpec, space: Space, console: Console, extensions: Extensions) -> bool:
    """Continue the study of ``spec`` in this process (see :func:`run_worker`)."""
    data = load_dataset(space.data, space.spec.validation, space.spec.val_size, space.spec.sweep.seed,
                        spec.options.train_subset)
    sweep = open_sweep(space, spec.root_path, spec.options, console, spec.worker_index, create=spec.sweep_run is None)
    sweep.study.set_user_attr(INPUT_SCALE, data.input_scale)  # what the registered model must do to raw inputs
    after_trial = extensions.instrument(sweep)
    _recover(sweep, console, alone=spec.sweep_run is None)
    timeout = spec.budget_s(space)
    if not _has_work(sweep, console, alone=spec.sweep_run is None) or (timeout is not None and timeout <= 0):
        return False
    deadline = time.monotonic() + timeout if timeout else None
    console.print(f"data {data.name} from {data.source}: train {len(data.y_train)}, validation {len(data.y_val)} "
                  f"({data.validation}), test {len(data.y_test)}")
    with _sweep_run(sweep, spec, data, timeout) as run_id:
        _say_if_no_gpu(spec, sweep, run_id, console)
        stops = _optimize(sweep, spec, _context(sweep, spec, data, run_id, deadline, extensions), after_trial,
                          timeout, console)
        if extensions.register_best:
            register_best(sweep.study, sweep.tracker, run_id, sweep.root / ".sweeps" / "cache")
        if stops.stopped_for:
            raise SweepStopped(f"stopped after {MAX_FAILURES_IN_A_ROW} trials in a row failed with: {stops.stopped_for}")
    return stops.recycle


def _say_if_no_gpu(spec: WorkerSpec, sweep: Sweep, run_id: str, console: Console) -> None:
    """One warning line when the sweep asks for GPUs and TensorFlow in this worker sees none: said by the first
    worker, once per sweep run (its tag; recycled worker processes and later workers stay quiet)."""
    gpus = spec.options.resources(sweep.space)[1]
    if gpus <= 0 or spec.worker_index != 0:
        return
    import tensorflow as tf  # imported already: the trials' training module needs it

    if tf.config.list_physical_devices("GPU") or sweep.tracker.client.get_run(run_id).data.tags.get(GPUS_UNSEEN):
        return
    sweep.tracker.set_tags(run_id, {GPUS_UNSEEN: "true"})
    try:
        importlib.metadata.version("tensorflow-cpu")
        why = "tensorflow-cpu is installed: `make install GPU=1` puts TensorFlow for GPUs in its place"
    except importlib.metadata.PackageNotFoundError:
        why = "no GPU, or no driver or CUDA library TensorFlow can load"
    console.print(f"warning: {gpus:g} GPU(s) per trial asked for, but TensorFlow sees none ({why}); trials train on the CPU",
                  highlight=False, markup=False)


def _has_work(sweep: Sweep, console: Console, alone: bool) -> bool:
    """Whether the study wants more trials; ``alone`` (no supervisor, which said it for its workers): where it
    stands, printed."""
    now = StudyTrials(sweep.study)
    if alone:
        console.print(standing_line(sweep.name, masked(sweep.url), now, sweep.target))
    if sweep.wants_more(now):
        return True
    console.print(nothing_to_do_line(now, sweep.target))
    return False


def _recover(sweep: Sweep, console: Console, alone: bool) -> None:
    """Fail and retry the trials of dead workers, close their MLflow runs; ``alone`` (no supervisor, which does it
    once for its workers): queue interrupted trials their worker could not (not Keras Tuner's: its oracle runs its
    unfinished trial again itself, as a new Optuna trial)."""
    optuna_engine = sweep.options.engine == "optuna"
    retried = fail_dead_trials(sweep.storage, sweep.study, retry=optuna_engine)
    if alone and optuna_engine:
        retried += queue_left_interrupted(sweep.storage, sweep.study)
    closed = close_orphan_runs(sweep.study, sweep.tracker)
    if retried or closed:
        done = "failed and queued again" if optuna_engine else "failed (Keras Tuner runs them again itself)"
        console.print(f"recovered from dead workers: trials {retried} {done}, {closed} MLflow runs closed")


@contextmanager
def _sweep_run(sweep: Sweep, spec: WorkerSpec, data: Dataset, timeout: float | None) -> Iterator[str]:
    """The MLflow sweep run the trials nest under: the supervisor's (left open for it: it closes what dead workers
    left open when the sweep ends, as each worker does when it starts), or one opened here and closed with the
    right status on every way out."""
    data_tags = {DATA_MD5: data.md5, VALIDATION: data.validation}
    sizes = {"train_size": len(data.y_train), "val_size": len(data.y_val), "test_size": len(data.y_test),
             "split_seed": sweep.space.spec.sweep.seed}  # the validation split's (a user's test hold-out: TEST_SPLIT_SEED)
    if not isinstance(sweep.space.data, str):
        sizes["test_split_seed"] = TEST_SPLIT_SEED
    if spec.sweep_run is not None:
        if spec.worker_index == 0:  # one writer: workers logging the same params at once collide in the database
            sweep.tracker.set_tags(spec.sweep_run, data_tags)
            sweep.tracker.log_params(spec.sweep_run, sizes)
        yield spec.sweep_run
        return
    run_id = start_sweep_run(sweep, timeout)
    with closing_run(sweep.tracker, run_id, before_close=lambda status: log_trial_counts(sweep, run_id)):
        sweep.tracker.set_tags(run_id, data_tags)
        sweep.tracker.log_params(run_id, sizes)
        yield run_id


def _context(sweep: Sweep, spec: WorkerSpec, data: Dataset, run_id: str, deadline: float | None,
             extensions: Extensions) -> TrialContext:
    """What every trial of this sweep shares."""
    space, options = sweep.space, spec.options
    tags = {STUDY: sweep.name, RUN_SPACE_SHA: space.sha, GIT_COMMIT: git_commit(sweep.root),
            DATA_MD5: data.md5, VALIDATION: data.validation, RUN_ENGINE: options.engine, RUN_NODE: node_name()}
    optuna_engine = options.engine == "optuna"
    return TrialContext(space=space, data=data, tracker=sweep.tracker, sweep_run=run_id,
                        workdir=sweep.root / ".sweeps" / "work" / sweep.name, tags=tags, max_epochs=options.epoch_cap,
                        deadline=deadline, prune=space.spec.sweep.pruner.name != "none" and optuna_engine,
                        progress=SweepProgress(space.spec.objective.metric, sweep.target, deadline,
                                               options.budget(space),
                                               finished=count_finished(sweep.study)),
                        train=extensions.train, target=sweep.target if optuna_engine else None)


def _optimize(sweep: Sweep, spec: WorkerSpec, ctx: TrialContext, extra: list[AfterTrial], timeout: float | None,
              console: Console) -> SweepStops:
    """Run the engine's loop of trials; what stopped it."""
    options, metric = spec.options, sweep.space.spec.objective.metric
    assert ctx.progress is not None
    reads = ReadPerTrial()  # the study read once after each trial, for every callback below
    live = LiveLine(console, ctx.progress, reads)
    if live.live is not None and not options.keras_log:
        ctx.keras_verbose = 0  # the live line replaces Keras's epoch lines on a terminal
    stops = SweepStops(console, sweep.target, stops=options.engine == "optuna", deadline=ctx.deadline,
                       share=spec.share, reads=reads, ends=EndRules.of(sweep.space, sweep.tracker))
    recovery = DeadWorkerRecovery(sweep.storage, retry=options.engine == "optuna", reads=reads)
    after_trial: list[AfterTrial] = [live, TrialLine(console, metric, sweep.target, reads), recovery, *extra, stops]
    with live:
        if options.engine == "kerastuner":
            from sweeps.objective import kerastuner  # Keras Tuner (and TensorBoard) only for its own engine

            kerastuner.search(sweep.space, ctx, sweep.study, options.tuner, sweep.target,
                              sweep.root / ".sweeps" / "kerastuner", after_trial, sweep.root / ".sweeps" / "cache",
                              timeout)
        else:
            try:
                _optimize_while_taken_over(sweep, ctx, after_trial, timeout, console)
            except KeyboardInterrupt:  # Optuna failed the trial in flight: queued again, it goes on from its epoch
                queue_interrupted(sweep.storage, sweep.study, ctx.interrupted)
                raise
    return stops


def _optimize_while_taken_over(sweep: Sweep, ctx: TrialContext, after_trial: list[AfterTrial], timeout: float | None,
                               console: Console) -> None:
    """Optuna's ``optimize``, going on when the trial in flight was ended by another process (which took this worker
    for dead, or its heartbeat for stale): the trial is its retry's now, and for this worker a stop, not a crash."""
    ends = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if ends is None else ends - time.monotonic()
        if left is not None and left <= 0:
            return
        try:  # No gc_after_trial: each repeat's keras.backend.clear_session() already collects.
            sweep.study.optimize(lambda trial: run_trial(ctx, trial), timeout=left, catch=(TrialFailed,),
                                 callbacks=after_trial)
            return
        except ValueError as exc:  # Optuna's tell of a trial another process has finished
            if not str(exc).startswith("Cannot tell a "):
                raise
            console.print("a trial this worker trained was ended by another process meanwhile: it goes on as its "
                          "retry; this worker goes on with the next", highlight=False)
