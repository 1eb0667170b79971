"""One sweep in this process: continue the space's Optuna study until it holds TRIALS finished trials, the budget is
spent or the process has run its share."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from experiments.data import load_dataset
from sweeps.errors import SweepStopped
from sweeps.search.live import LiveLine, SweepProgress
from sweeps.search.progress import MAX_FAILURES_IN_A_ROW, AfterTrial, SweepStops, TrialLine
from sweeps.search.samplers import make_pruner, make_sampler
from sweeps.search.space import Space
from sweeps.search.study import (
    SweepOptions,
    budget_s,
    count_finished,
    count_running,
    end_sweep_run,
    git_commit,
    open_study,
    start_sweep_run,
    target_trials,
)
from sweeps.search.trial import TrialContext, TrialFailed, run_trial
from sweeps.store.records import DATA_MD5, GIT_COMMIT, INTERRUPTED, RUN_ENGINE, RUN_SPACE_SHA, STUDY, VALIDATION
from sweeps.store.recovery import close_orphan_runs, fail_dead_trials, recover_dead_workers
from sweeps.store.registry import register_best
from sweeps.store.storage import check_tracking, default_storage, masked, open_storage
from sweeps.store.tracking import Tracker, tracking_uri


def run_sweep(space: Space, root: Path, options: SweepOptions, console: Console) -> bool:
    """Continue the space's study in this process until it has ``trials`` finished trials, the budget is spent,
    or this process has run its share (``options.trials_per_process``). True when only the share stopped it:
    the study wants more trials from a fresh process."""
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
    measured: list[AfterTrial] = []
    if options.simulate:  # make bench-scale: nothing trained, the framework's own costs measured
        from sweeps import scale

        tracker, measured = scale.instrument(study, tracking)
    retried = fail_dead_trials(study)
    closed = close_orphan_runs(study, tracker)
    if retried or closed:
        console.print(f"recovered from dead workers: trials {retried} failed and queued again, {closed} MLflow runs closed")
    target, timeout = target_trials(space, options), budget_s(space, options)
    done, running = count_finished(study), count_running(study)
    if options.sweep_run is None:  # a worker of a supervisor: the supervisor said this already
        console.print(f"study {name} in {masked(url)}: {done} finished trials, {running} running, target {target}")
    if done + running >= target:
        console.print(f"nothing to do: {done} finished + {running} running ≥ {target} (raise TRIALS to go on)")
        return False
    if timeout is not None and timeout <= 0:
        return False
    deadline = time.monotonic() + timeout if timeout else None
    console.print(f"data {data.name} from {data.source}: train {len(data.y_train)}, validation {len(data.y_val)} "
                  f"({data.validation}), test {len(data.y_test)}")
    sweep_run = options.sweep_run or start_sweep_run(tracker, name, space, root, options, url)
    data_tags = {DATA_MD5: data.md5, VALIDATION: data.validation}
    tracker.set_tags(sweep_run, data_tags)
    tracker.log_params(sweep_run, {"train_size": len(data.y_train), "val_size": len(data.y_val),
                                   "test_size": len(data.y_test)})
    tags = {STUDY: name, RUN_SPACE_SHA: space.sha, GIT_COMMIT: git_commit(root), **data_tags, RUN_ENGINE: options.engine}
    progress = SweepProgress(spec.objective.metric, target, deadline, options.timeout or spec.sweep.timeout,
                             finished=done)
    live = LiveLine(console, progress)
    ctx = TrialContext(space=space, data=data, tracker=tracker, sweep_run=sweep_run,
                       workdir=root / ".sweeps" / "work" / name, tags=tags,
                       max_epochs=options.epoch_cap, deadline=deadline,
                       prune=spec.sweep.pruner.name != "none" and options.engine == "optuna", progress=progress,
                       keras_verbose=0 if live.live is not None and not options.keras_log else None,
                       target=target if options.engine == "optuna" else None)
    if options.simulate:
        ctx.train = scale.simulated_training(space)  # the one place that trains is replaced
    stops = SweepStops(console, target, stops=options.engine == "optuna", deadline=deadline, share=options.trials_per_process)
    after_trial: list[AfterTrial] = [live, TrialLine(console, spec.objective.metric, target), recover_dead_workers,
                                     *measured, stops]
    status = "FAILED"
    try:
        with live:
            if options.engine == "kerastuner":
                from sweeps.search import kerastuner

                kerastuner.search(space, ctx, study, options.tuner, target, root / ".sweeps" / "kerastuner",
                                  after_trial, root / ".sweeps" / "cache", timeout)
            else:
                # No gc_after_trial: each repeat's keras.backend.clear_session() already collects.
                study.optimize(lambda trial: run_trial(ctx, trial), timeout=timeout, catch=(TrialFailed,),
                               callbacks=after_trial)
        status = "FAILED" if stops.stopped_for else "FINISHED"
        if not options.simulate:  # a simulated trial has no model to register
            register_best(study, tracker, sweep_run, root / ".sweeps" / "cache")
    except KeyboardInterrupt:
        status = INTERRUPTED
        raise
    finally:
        if options.sweep_run is None:
            end_sweep_run(tracker, study, sweep_run, status)
        else:
            close_orphan_runs(study, tracker)
    if stops.stopped_for:
        raise SweepStopped(f"stopped after {MAX_FAILURES_IN_A_ROW} trials in a row failed with: {stops.stopped_for}")
    if options.sweep_run is None:
        console.print(f"study {name}: {count_finished(study)} finished trials")
    return stops.recycle
