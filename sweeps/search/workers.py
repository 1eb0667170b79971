"""Run N worker processes of one sweep on this machine: each a plain ``sweep run`` on the same study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from rich.console import Console

from sweeps.store.storage import child_env


def _pump(stream, prefix: str, console: Console) -> None:
    for line in stream:
        console.print(f"{prefix} {line.rstrip()}", highlight=False, markup=False)


def run_workers(worker_argv: list[str], workers: int, console: Console, storage: str | None = None) -> int:
    """Start ``workers`` processes of ``sweep <worker_argv>`` on ``storage``, prefix their output, wait; the worst
    exit status.

    TensorFlow's thread pools are split between them so the workers do not fight over the cores.
    Ctrl-C or SIGTERM is passed on to every worker, which each end as a single sweep would.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {**child_env(storage), "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "sweeps.cli", *worker_argv, "--worker-index", str(i)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
             for i in range(workers)]
    pumps = [threading.Thread(target=_pump, args=(p.stdout, f"[w{i}]", console), daemon=True)
             for i, p in enumerate(procs)]
    for pump in pumps:
        pump.start()
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        raise
    finally:
        for pump in pumps:
            pump.join(timeout=5)
    return max(codes)
