"""The one entry point of a sweep: ``sweep run``, the benchmarks and a notebook all start a sweep here."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from sweeps.search.space import Space
from sweeps.search.supervisor import supervise
from sweeps.search.worker import SweepOptions, WorkerSpec


def start_sweep(space: Space, root: Path, options: SweepOptions, console: Console) -> int:
    """Run or continue the sweep of ``space`` in project ``root``: under a supervisor of worker processes when
    ``options`` ask for workers or recycling (the Optuna engine), else in this process; the exit status."""
    if options.supervised:
        return supervise(space, root, options, console)
    from sweeps.search.sweep import run_worker  # trains in this process: TensorFlow from here on

    run_worker(WorkerSpec.of(space, root, options), console)
    return 0
