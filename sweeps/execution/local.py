"""Workers as processes of this machine: each in a session of its own, the cores split between them and each
given its own GPU when the machine has several."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass, field, replace

from rich.console import Console

from sweeps.execution.placement import WorkerProcess
from sweeps.execution.spec import WorkerSpec
from sweeps.search.options import SweepOptions
from sweeps.store.recovery import worker_id


class LocalProcess:
    """A worker process of this machine, in a session of its own (Ctrl-C reaches the command only, which passes
    one SIGTERM on); its output prefixed with ``prefix`` when several workers share the terminal."""

    lost: str | None = None

    def __init__(self, spec: WorkerSpec, prefix: str | None, console: Console):
        output = subprocess.PIPE if prefix else None
        self.proc = subprocess.Popen(spec.command(), env=spec.env(), start_new_session=True, stdout=output,
                                     stderr=subprocess.STDOUT if prefix else None, text=True)
        self.id = worker_id(self.proc.pid)  # now, while it runs: its start time is part of it
        if prefix:
            threading.Thread(target=self._pump, args=(prefix, console), daemon=True).start()

    def _pump(self, prefix: str, console: Console) -> None:
        for line in self.proc.stdout or ():
            console.print(f"{prefix} {line.rstrip()}", highlight=False, markup=False)

    def wait(self, timeout: float | None = None) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"worker {self.proc.pid} still running") from None

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.proc.kill()

    def worker(self) -> str:
        return self.id


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
        return LocalProcess(spec, prefix, self.console)
