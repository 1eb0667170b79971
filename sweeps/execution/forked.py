"""Worker processes forked from a template that has already imported the worker's code, TensorFlow included
(multiprocessing's fork server): a worker starts in a fraction of a second rather than the ~6 s of CPU its imports
take, so a recycled worker, or the second of four, costs next to nothing. The template lives as long as the
process that started it and ends with it.

A fork is safe only before a GPU is touched (CUDA cannot be used in a forked child): the template imports and
never runs anything, and sweeps on a machine with GPUs start their workers with ``exec`` as before
(:func:`forking_is_safe`)."""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import forkserver, reduction
from typing import Any

from sweeps.processes import worker_id

# By name: the supervisor itself never imports TensorFlow, only its template does (sweeps.execution.template).
PRELOAD = ["sweeps.execution.template"]
_SERVER = multiprocessing.get_context("forkserver")


def forking_is_safe(gpus: list[str]) -> bool:
    """Whether workers may be forked here: Linux (macOS's system libraries refuse a fork of a threaded process) and
    no GPU for them to use."""
    return sys.platform == "linux" and not gpus


@contextlib.contextmanager
def imports_frozen() -> Iterator[None]:
    """Import inside this block with the garbage collector off, then freeze every object this process holds (what
    its imports made: TensorFlow's, MLflow's, ~800,000), as a process does before it trains or checks a model.
    - Off: a full collection runs each time the objects have grown by a quarter, so an import of TensorFlow walks
      what it has made so far again and again, a quarter of the template's import time here (4.8 s -> 3.5 s of CPU).
    - Frozen: each repeat starts with ``keras.backend.clear_session()``, whose full collection would walk them all,
      0.3 s a repeat here; a forked process also keeps sharing those pages with its template instead of copying
      them when the collector touches them.
    Only a process that lives for its task uses it (the template, a worker, a call in the template): what is frozen
    is never collected (the few cycles its imports left behind included), only freed when nothing refers to it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def start_template() -> None:
    """Start the template without waiting for its imports: the command opens its stores and study meanwhile, on
    another core, and its first worker forks from a template that is ready, or nearly."""
    _SERVER.set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()


def stop_template() -> None:
    """End the template this process started, if any, as the command ends: one that fails before its first worker
    (missing data, a bad option) would otherwise leave it importing TensorFlow for seconds more, on a core and
    holding the command's output open, before it saw the command was gone. Its workers are over by then: the
    command waits for them."""
    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # multiprocessing keeps it private: no public stop
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):  # it ended already
            os.kill(pid, signal.SIGTERM)


def call_in_template(target: str, *args: Any) -> Any:
    """``module:function`` called with ``args`` in a process forked from the template, with this process's folder and
    environment; its result returned, its exception raised here. A command that must build a model or score a
    checkpoint asks the template it forks its workers from, rather than importing TensorFlow a second time itself."""
    _SERVER.set_forkserver_preload(PRELOAD)
    with ProcessPoolExecutor(max_workers=1, mp_context=_SERVER) as pool:
        return pool.submit(_call_here, target, os.getcwd(), dict(os.environ), args).result()


def _call_here(target: str, cwd: str, env: dict[str, str], args: tuple) -> Any:
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    if cwd not in sys.path:  # the project folder: a builder's module:function is imported from it
        sys.path.insert(0, cwd)
    return call_frozen(target, *args)


def call_frozen(target: str, *args: Any) -> Any:
    """``target`` ("module:function") called in this process, its module imported as a worker imports (collector
    off, then frozen): ``sweep report`` builds its report so (TensorFlow and the plots: 8.4 -> 7.5 s here)."""
    module, _, function = target.partition(":")
    with imports_frozen():
        called = getattr(importlib.import_module(module), function)
    return called(*args)


class _Inherited:
    """A file descriptor of this process handed to the forked worker, as an ``exec``'d one inherits its terminal or
    pipe (sent over the fork server's socket while the worker is being started)."""

    def __init__(self, fd: int):
        self.fd = fd

    def __reduce__(self):
        return _received, (reduction.DupFd(self.fd),)


def _received(duplicate) -> int:
    return duplicate.detach()


def _run_command(command: list[str], env: dict[str, str], cwd: str, out: int, err: int) -> None:
    """In the forked worker: become what ``command`` (``python -m module args``) would have started, its module's
    ``main``, in a session of its own with ``env``, ``cwd`` and the given output."""
    os.setsid()  # as start_new_session: a Ctrl-C at the terminal reaches only the command that started it
    os.dup2(out, 1)
    os.dup2(err, 2)
    for fd in {out, err} - {1, 2}:
        os.close(fd)
    if isinstance(sys.stdout, io.TextIOWrapper):  # the template's stdout was another file: buffer by line
        sys.stdout.reconfigure(line_buffering=True)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    at = command.index("-m")
    sys.argv = command[at + 1:]
    sys.exit(importlib.import_module(command[at + 1]).main(command[at + 2:]))  # as `python -m` runs its __main__ block


class ForkedProcess:
    """A worker forked from the template, as a :class:`~sweeps.execution.placement.Stoppable`: what
    :class:`~sweeps.execution.placement.ChildProcess` is for an ``exec``'d one. ``output``: the write end of a pipe
    for its stdout and stderr, else it shares this process's."""

    def __init__(self, command: list[str], env: dict[str, str], output: int | None = None):
        _SERVER.set_forkserver_preload(PRELOAD)
        out, err = (output, output) if output is not None else (1, 2)
        self.proc = _SERVER.Process(target=_run_command, name="sweep worker",
                                    args=(command, env, os.getcwd(), _Inherited(out), _Inherited(err)))
        self.proc.start()
        self.pid = self.proc.pid
        self.id = worker_id(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        self.proc.join(timeout)
        if self.proc.exitcode is None:
            raise TimeoutError(f"worker {self.pid} still running")
        return self.proc.exitcode

    def poll(self) -> int | None:
        return self.proc.exitcode

    def stop(self) -> None:
        self.proc.terminate()  # SIGTERM: a polite stop

    def kill(self) -> None:
        self.proc.kill()

    def worker(self) -> str:
        return self.id
