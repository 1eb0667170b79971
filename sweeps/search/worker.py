"""The worker contract: what a user chose for a sweep (:class:`SweepOptions`), and one worker of it as one value
(:class:`WorkerSpec`): what to run, on which study and stores, for how long.

The command that starts a sweep builds the specs; the local supervisor starts each as a process
(:meth:`WorkerSpec.command` with :meth:`WorkerSpec.env`), a cluster engine could start it as a task; either way the
worker runs :func:`sweeps.search.sweep.run_worker` on it. The spec travels whole in the worker's environment
(``$SWEEPS_WORKER``, JSON): the space file's text with it, and no database password on a command line, where any
user of the machine could read it in the process list.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sweeps.errors import UsageError
from sweeps.search.space import Space, parse_space
from sweeps.store.keys import QUICK

SPEC_ENV = "SWEEPS_WORKER"
RECYCLE = 75  # a worker's exit status: it ran its share of trials and the study wants more (EX_TEMPFAIL)


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


@dataclass(frozen=True)
class WorkerSpec:
    """One worker of a sweep: the user's options, and what the framework decided for this worker."""

    space_text: str
    space_path: str
    root: str  # the project folder: its stores, caches and work folders
    options: SweepOptions
    worker_index: int = 0  # offsets the worker's random stream, so workers never copy each other
    sweep_run: str | None = None  # the supervisor's MLflow sweep run (None: the worker opens its own)
    deadline_at: float | None = None  # time.time() at which the sweep's budget ends
    share: int | None = None  # trials before this process exits with RECYCLE (None: until the sweep ends)
    threads: int | None = None  # TensorFlow's intra-op threads (workers sharing a machine split its cores)
    devices: str | None = None  # the GPUs this worker may see ($CUDA_VISIBLE_DEVICES); None: as the machine has them

    @classmethod
    def of(cls, space: Space, root: Path, options: SweepOptions, **decided: object) -> WorkerSpec:
        return cls(space.text, str(space.path), str(root), options, **decided)  # type: ignore[arg-type]

    def space(self) -> Space:
        return parse_space(self.space_text, Path(self.space_path))

    @property
    def root_path(self) -> Path:
        return Path(self.root)

    def budget_s(self, space: Space) -> float | None:
        """Seconds left of the sweep's budget (the supervisor's deadline, else the command line's or the space's)."""
        if self.deadline_at is not None:
            return self.deadline_at - time.time()
        return self.options.budget(space)

    def command(self) -> list[str]:
        """The worker's command line: the ``sweep`` command's hidden ``worker`` sub-command, nothing more."""
        return [sys.executable, "-m", "sweeps.cli", "worker"]

    def env(self) -> dict[str, str]:
        """The worker's environment: this one, the spec, its thread count and its GPUs (whose memory TensorFlow
        grows as needed rather than taking it all, so workers can share a device)."""
        threads = {"TF_NUM_INTRAOP_THREADS": str(self.threads), "TF_NUM_INTEROP_THREADS": "1"} if self.threads else {}
        devices = {"CUDA_VISIBLE_DEVICES": self.devices} if self.devices is not None else {}
        return {**os.environ, **threads, **devices, "TF_FORCE_GPU_ALLOW_GROWTH": "true",
                SPEC_ENV: json.dumps(dataclasses.asdict(self))}

    @classmethod
    def from_env(cls) -> WorkerSpec:
        """The spec this process was started with (one error line when it was started without one)."""
        text = os.environ.get(SPEC_ENV)
        if not text:
            raise UsageError(f"sweep worker: ${SPEC_ENV} is not set; workers are started by `sweep run`")
        fields = json.loads(text)
        return cls(**{**fields, "options": SweepOptions(**fields["options"])})
