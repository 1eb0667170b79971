"""Workers as processes of this machine: each in a session of its own, the cores split between them and each
given its own GPU when the machine has several."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field, replace
from typing import TextIO

from rich.console import Console

from sweeps.execution.forked import ForkedProcess, forking_is_safe, start_template
from sweeps.execution.placement import ChildProcess, WorkerProcess
from sweeps.execution.spec import WorkerSpec
from sweeps.search.options import SweepOptions


class LocalProcess:
    """A worker process of this machine (the command passes one SIGTERM on to it on Ctrl-C), forked from the
    template (:mod:`sweeps.execution.forked`) where that is safe, else started with ``exec``; its output prefixed
    with ``prefix`` when several workers share the terminal."""

    lost: str | None = None

    def __init__(self, spec: WorkerSpec, prefix: str | None, console: Console, fork: bool):
        read, write = os.pipe() if prefix else (None, None)
        start = ForkedProcess if fork else ChildProcess
        try:
            self.process = start(spec.command(), spec.env(), write)
        except BaseException:
            if read is not None:
                os.close(read)
            raise
        finally:
            if write is not None:
                os.close(write)  # the worker holds its own copy: the pipe ends when the worker does
        if read is not None:
            threading.Thread(target=_pump, args=(os.fdopen(read, errors="replace"), prefix, console), daemon=True).start()

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout)

    def poll(self) -> int | None:
        return self.process.poll()

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def worker(self) -> str:
        return self.process.worker()


def _pump(lines: TextIO, prefix: str, console: Console) -> None:
    for line in lines:
        console.print(f"{prefix} {line.rstrip()}", highlight=False, markup=False)


def local_gpus() -> list[str]:
    """The GPUs of this machine a worker may be given: those in $CUDA_VISIBLE_DEVICES when set, else those
    ``nvidia-smi`` lists (none without it)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return [str(i) for i, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]


def start_template_if_forked(options: SweepOptions) -> bool:
    """Whether a sweep with ``options`` runs its trials in worker processes of this machine forked from the
    template; if so, the template is started now, without waiting for its imports."""
    forked = options.supervised and not options.cluster and forking_is_safe(local_gpus())
    if forked:
        start_template()
    return forked


@dataclass
class LocalPlacement:
    """Worker processes of this machine: the cores split between them (unless --cpus-per-trial says), and on a
    machine with GPUs each worker its own (round robin)."""

    options: SweepOptions
    console: Console
    gpus: list[str] = field(default_factory=local_gpus)

    def spec(self, first: WorkerSpec, index: int) -> WorkerSpec:
        workers = self.options.workers
        threads = self.options.cpus_per_trial or (max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None)
        devices = self.gpus[index % len(self.gpus)] if self.gpus and workers > 1 else None
        return replace(first, worker_index=index, threads=int(threads) if threads else None, devices=devices)

    def launch(self, spec: WorkerSpec, prefix: str | None) -> WorkerProcess:
        return LocalProcess(spec, prefix, self.console, forking_is_safe(self.gpus))
