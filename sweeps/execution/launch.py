"""The one entry point of a sweep: ``sweep run``, the benchmarks and a notebook all start a sweep here."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import optuna
from rich.console import Console

from sweeps.console.lines import why_ended
from sweeps.console.notify import SweepNotices
from sweeps.errors import as_sweeps_error
from sweeps.execution.local import LocalPlacement
from sweeps.execution.pool import supervise
from sweeps.execution.spec import WorkerSpec
from sweeps.search.confirm import queue_confirmation
from sweeps.search.options import SweepOptions
from sweeps.search.study import open_sweep
from sweeps.space.space import Space
from sweeps.store.keys import study_name
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.trials import count_finished


def start_sweep(space: Space, root: Path, options: SweepOptions, console: Console) -> int:
    """Run or continue the sweep of ``space`` in project ``root``, then confirm its winner on new seeds when the space
    (or ``options.confirm``) asks for it; the exit status. With a notification address (``options.notify``, else
    ``$SWEEPS_NOTIFY_URL``), this process tells it the sweep's end, failure and new bests."""
    url = options.notify_url  # a bad address is refused before anything is written
    if url is None:
        return _search_and_confirm(space, root, options, console)[0]
    name = study_name(space.name, options.quick, options.engine)
    notices = SweepNotices(url, console, name, space.name, space.spec.objective.metric,
                           options.storage or default_storage(root))
    try:
        code, rule, line = _search_and_confirm(space, root, options, console)
    except KeyboardInterrupt:
        notices.ended("stopped_by_user", "stopped by the user (Ctrl-C or SIGTERM); the same command goes on")
        raise
    except BaseException as exc:
        error = as_sweeps_error(exc)
        notices.failed(f"error: {error}" if error is not None else f"{type(exc).__name__}: {exc}")
        raise
    if code != 0:
        notices.failed(f"the sweep ended with exit status {code}")
    else:
        notices.ended(rule, line)
    return code


def _search_and_confirm(space: Space, root: Path, options: SweepOptions, console: Console) -> tuple[int, str, str]:
    """The search, then the confirmation of its winner; the exit status, the rule that ended the search and the
    sweep's last line saying it."""
    started = datetime.datetime.now()  # naive local time, as Optuna stamps its trials
    code = _run(space, root, options, console)
    if code != 0:
        return code, "", ""
    study = optuna.load_study(study_name=study_name(space.name, options.quick, options.engine),
                              storage=open_storage(options.storage or default_storage(root)))
    rule, line = why_ended(study, options.target(space), options.budget(space), started, _budget_from(space, options))
    console.print(line, highlight=False)
    count = options.confirm_seeds(space)
    if count < 1 or options.engine != "optuna":
        return code, rule, line
    sweep = open_sweep(space, root, options, Console(quiet=True))
    winner = queue_confirmation(sweep.study, space, count)
    if winner is None:
        return code, rule, line
    took = (f": about {count * winner.duration.total_seconds() / 60:.1f} min more (its trial took "
            f"{winner.duration.total_seconds() / 60:.1f} min)" if winner.duration else "")
    console.print(f"confirming the winner, trial {winner.number}, on {count} new seed(s) after the search's budget{took}",
                  highlight=False)
    # The search's own count as TRIALS, one worker: only the owed confirmation runs.
    once = dataclasses.replace(options, trials=count_finished(sweep.study), timed=False, workers=1)
    return _run(space, root, once, console), rule, line


def _budget_from(space: Space, options: SweepOptions) -> str:
    if options.timeout:
        return "--timeout"
    return "sweep.timeout" if "timeout" in space.spec.sweep.model_fields_set else "sweep.timeout's default"


def _run(space: Space, root: Path, options: SweepOptions, console: Console) -> int:
    """Under a supervisor of worker tasks of a Ray cluster (``options.cluster``), of worker processes of this machine
    when ``options`` ask for workers or recycling (the Optuna engine), else in this process. The one place that
    picks a placement."""
    if options.cluster == "ray":  # connected to, and checked, before anything is written
        from sweeps.execution.ray_cluster import ray_placement  # Ray only for a sweep on a cluster

        with ray_placement(space, root, options, console) as placement:
            return supervise(space, root, options, console, placement)
    if options.supervised:
        return supervise(space, root, options, console, LocalPlacement(options, console))
    from sweeps.execution.forked import imports_frozen

    with imports_frozen():  # trains in this process, which lives for its task: TensorFlow from here on, as a worker
        from sweeps.execution.worker_loop import run_worker
    run_worker(WorkerSpec.of(space, root, options), console)
    return 0
