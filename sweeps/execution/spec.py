"""The worker contract: one worker of a sweep as one value (:class:`WorkerSpec`): the user's
:class:`~sweeps.search.options.SweepOptions`, what to run, on which study and stores, for how long.

The command that starts a sweep builds the specs; the local supervisor starts each as a process
(:meth:`WorkerSpec.command` with :meth:`WorkerSpec.env`), a cluster engine could start it as a task; either way the
worker runs :func:`sweeps.execution.worker_loop.run_worker` on it. The spec travels whole in the worker's environment
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
from sweeps.search.options import SweepOptions
from sweeps.space.space import Space, parse_space

SPEC_ENV = "SWEEPS_WORKER"
RECYCLE = 75  # a worker's exit status: it ran its share of trials and the study wants more (EX_TEMPFAIL)


def child_env(**settings: str | None) -> dict[str, str]:
    """The one way a process of the sweep's is given its environment: this one with ``settings`` (None: left
    out). Stores and passwords travel here, never on a command line, where any user of the machine could read them
    in the process list."""
    return {**os.environ, **{name: value for name, value in settings.items() if value is not None}}


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

    def env(self, placed: dict[str, str] | None = None) -> dict[str, str]:
        """The worker's environment: this one, its thread count and its GPUs (whose memory TensorFlow grows as
        needed rather than taking it all, so workers can share a device), what its placement sets (``placed``: a
        cluster's stores and node), and the spec itself."""
        threads = {"TF_NUM_INTRAOP_THREADS": str(self.threads), "TF_NUM_INTEROP_THREADS": "1"} if self.threads else {}
        devices = {"CUDA_VISIBLE_DEVICES": self.devices} if self.devices is not None else {}
        return child_env(**threads, **devices, TF_FORCE_GPU_ALLOW_GROWTH="true", **(placed or {}),
                         **{SPEC_ENV: json.dumps(dataclasses.asdict(self))})

    @classmethod
    def from_env(cls) -> WorkerSpec:
        """The spec this process was started with (one error line when it was started without one)."""
        text = os.environ.get(SPEC_ENV)
        if not text:
            raise UsageError(f"sweep worker: ${SPEC_ENV} is not set; workers are started by `sweep run`")
        fields = json.loads(text)
        return cls(**{**fields, "options": SweepOptions(**fields["options"])})
