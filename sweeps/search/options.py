"""What the user (or a benchmark) chose for a sweep (:class:`SweepOptions`), and what follows from it with the space
file: the trials to reach, the budget, the confirmation seeds, a worker's resources."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from sweeps.errors import UsageError
from sweeps.space.space import Space
from sweeps.store.keys import QUICK

NOTIFY_ENV = "SWEEPS_NOTIFY_URL"  # the notification address when --notify gives none


def notify_address(url: str | None) -> str | None:
    """``url`` when it is an http(s) address to post notifications to; a UsageError (one line, exit 2) when not."""
    if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
        raise UsageError(f"--notify (or ${NOTIFY_ENV}) {url!r}: not an http:// or https:// address to post "
                         "notifications to")
    return url or None


@dataclass(frozen=True)
class SweepOptions:
    """What the user (or a benchmark) chose for this sweep; None means "as the space file says"."""

    trials: int | None = None
    timeout: float | None = None
    quick: bool = False
    storage: str | None = None  # Optuna storage URL; None: the project's journal file
    engine: str = "optuna"  # or "kerastuner"
    tuner: str = "hyperband"  # the Keras Tuner engine's search
    workers: int = 1  # worker processes on this machine, one study
    trials_per_process: int | None = None  # a worker process's share of trials before a fresh one takes over
    subset: int | None = None  # train on a seeded sample of this many images (the benchmark)
    max_epochs: int | None = None  # cap every trial's epochs
    keras_log: bool = False  # Keras's own epoch lines even on a terminal (where the live line replaces them)
    extensions: str | None = None  # "module:function" giving the training function and callbacks to plug in
    cluster: str | None = None  # "ray": workers are tasks placed by a Ray cluster ($RAY_ADDRESS, else a local one)
    cpus_per_trial: float | None = None  # None: the space's sweep.resources
    gpus_per_trial: float | None = None
    confirm: int | None = None  # confirmation seeds of the winner; None: the space's sweep.confirm
    timed: bool = True  # False: no time budget at all (the confirmation, which runs after the search's)
    notify: str | None = None  # an http(s) address: JSON messages when the sweep ends, fails or finds a new best

    def __post_init__(self) -> None:
        notify_address(self.notify)  # refused with the other options, before anything is written

    @property
    def notify_url(self) -> str | None:
        """Where to post the sweep's notifications: ``notify``, else ``$SWEEPS_NOTIFY_URL``; None: nowhere."""
        return notify_address(self.notify or os.environ.get(NOTIFY_ENV))

    def confirm_seeds(self, space: Space) -> int:
        """Confirmation seeds of the winner: the command line's, else the space's; a quick smoke run's numbers are not
        results, so it confirms only when told to."""
        if self.confirm is not None:
            return self.confirm
        return 0 if self.quick else space.spec.sweep.confirm

    def target(self, space: Space) -> int:
        """Finished trials the study should reach: the command line's, else a quick run's, else the space's."""
        return self.trials or (QUICK["trials"] if self.quick else space.spec.sweep.n_trials)

    def budget(self, space: Space) -> float | None:
        """Seconds the sweep may run: the command line's, else the space's; None: no limit."""
        return (self.timeout or space.spec.sweep.timeout) if self.timed else None

    @property
    def train_subset(self) -> int | None:
        return QUICK["subset"] if self.quick else self.subset

    @property
    def epoch_cap(self) -> int | None:
        return QUICK["epochs"] if self.quick else self.max_epochs

    @property
    def supervised(self) -> bool:
        """Whether trials train in worker processes under a supervisor (Keras Tuner keeps its search state in one
        process, so it never is)."""
        return self.engine == "optuna" and (self.workers > 1 or bool(self.trials_per_process) or bool(self.cluster))

    def resources(self, space: Space) -> tuple[float, float]:
        """CPUs and GPUs of one worker: the command line's, else the space's."""
        given = space.spec.sweep.resources
        return self.cpus_per_trial or given.cpus, given.gpus if self.gpus_per_trial is None else self.gpus_per_trial
