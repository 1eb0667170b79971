"""Ray as the cluster engine: each worker of a sweep is a Ray task, placed by the CPUs and GPUs a trial needs, that
runs today's worker process (``sweep worker``) on its node. Ray core only: the sampler, the pruner and the tracking
stay ours; the study lives in PostgreSQL and the runs and checkpoints on an MLflow server, which every node reaches.

The command that starts the sweep is the driver: it connects to ``$RAY_ADDRESS`` (Ray's own convention), else to
the cluster ``ray start`` runs on this machine, else starts a Ray instance for the sweep; it sends the project
folder (Ray's ``working_dir``) and the data (the object store, checked by digest on arrival), keeps the one MLflow
sweep run, and starts a fresh task whenever one ends or is lost with its node; the trial of a lost worker goes on
from its last epoch wherever the next task runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# Worker lines as they come, each once, without colour codes in logs (set before Ray is imported).
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_COLOR_PREFIX", "0")

import ray
import ray.exceptions

from sweeps.errors import ClusterError, UsageError, one_line
from sweeps.execution.placement import ChildProcess, WorkerProcess, stop_then_kill, wait_in_steps
from sweeps.execution.shipping import DataBundle, data_files, pack, unpack
from sweeps.execution.spec import WorkerSpec
from sweeps.search.options import SweepOptions
from sweeps.space.space import Space
from sweeps.store.storage import default_storage, is_journal, masked
from sweeps.store.tracking import tracking_uri

# What the project folder sent to every node leaves out: the stores, caches, reports and environments of this
# machine (and the data, which goes through the object store).
NOT_SENT = [".git/", ".venv/", "venv/", ".sweeps/", "mlruns/", "mlartifacts/", "mlflow.db", "*.journal", "reports/",
            "__pycache__/", "*.egg-info/", "build/"]
# The settings a worker needs from the driver's environment (the stores it writes to, their credentials).
PASSED_ON = ("MLFLOW_", "SWEEPS_", "OPTUNA_")
CONNECT_TIMEOUT_S = 10
TASK_ENDS_S = 2.0  # how long after the driver's grace a cancelled task may take to end its worker itself
# Ray's errors that mean a machine or a process went away under a worker (not the trial's doing: it goes on).
LOST = (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError, ray.exceptions.LocalRayletDiedError,
        ray.exceptions.ObjectLostError)


def _alive_nodes() -> list[dict[str, Any]]:
    return [node for node in ray.nodes() if node["Alive"]]


def _check_shared_stores(nodes: list[dict[str, Any]], storage: str, tracking: str) -> None:
    """A node that is not this machine must reach the study and the runs: files of this machine are refused then,
    however few nodes there are (one remote node would open a study of its own on its own disk)."""
    here = ray.util.get_node_ip_address()
    elsewhere = sorted({n["NodeManagerAddress"] for n in nodes} - {here})
    if not elsewhere:
        return
    where = f"nodes at {', '.join(elsewhere[:3])} (not this machine, {here})"
    if is_journal(storage) or storage.startswith("sqlite"):
        raise UsageError(f"--cluster ray: {where} cannot share the study in {masked(storage)} (a file of this "
                         "machine); use STORAGE=postgresql://user:pass@host/db, a database every node reaches")
    if not tracking.startswith(("http://", "https://")):
        raise UsageError(f"--cluster ray: {where} cannot share the MLflow store {masked(tracking)}; start "
                         "`mlflow server --serve-artifacts` and set MLFLOW_TRACKING_URI=http://host:port")


def _check_fits(cpus: float, gpus: float, nodes: list[dict[str, Any]]) -> None:
    """A worker that fits on no node would wait forever: refuse it."""
    if any(n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("GPU", 0) >= gpus for n in nodes):
        return
    sizes = ", ".join(sorted({f"{n['Resources'].get('CPU', 0):g} CPUs/{n['Resources'].get('GPU', 0):g} GPUs"
                              for n in nodes}))
    raise UsageError(f"sweep.resources: a worker needs {cpus:g} CPUs and {gpus:g} GPUs, but no node of the cluster "
                     f"has that many (its nodes: {sizes}); lower --cpus-per-trial / --gpus-per-trial")


def _check_answers(address: str) -> None:
    """A head that does not answer is one line at once: Ray's own client would retry for minutes, logging."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        return  # "auto", "local": Ray's own words
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterError(f"RAY_ADDRESS={address}: no Ray cluster answers there ({exc.strerror or exc}); start its "
                           "head with `ray start --head`, or unset RAY_ADDRESS for a Ray instance of this sweep") from None


def _token_found() -> bool:
    """Whether this machine holds a Ray authentication token (where Ray looks for one)."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path).is_file()


def _connect(root: Path, excluded: list[str]) -> None:
    address = os.environ.get("RAY_ADDRESS")
    if address:
        _check_answers(address)
    runtime_env = {"working_dir": str(root), "excludes": NOT_SENT + excluded}
    # Ray takes SIGTERM over (its core aborts the process on it): the command's own stop is given back after.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ray.init(address=address or None, runtime_env=runtime_env, log_to_driver=True, include_dashboard=False,
                 configure_logging=False)
    except ray.exceptions.AuthenticationError as exc:
        raise ClusterError(f"--cluster ray: {_unauthenticated(address)} ({one_line(exc)})") from None
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if address:  # its port answered (checked above): the head turned this command away
            raise ClusterError(f"--cluster ray: {_unauthenticated(address)} ({one_line(exc)})") from None
        raise ClusterError(f"--cluster ray: cannot start Ray on this machine ({one_line(exc)})") from None
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _unauthenticated(address: str | None) -> str:
    """Why a head that answers turns a driver away, as far as this machine can tell: Ray's token authentication,
    which a driver joins only in token mode (set by the user: turned on for a cluster without it, it breaks the
    nodes' transfers), with the head's token."""
    if os.environ.get("RAY_AUTH_MODE") != "token":
        held = "RAY_AUTH_MODE is not token"
    else:
        held = "the token here was refused" if _token_found() else "this machine holds no token"
    return (f"RAY_ADDRESS={address} answers but did not let this command join: most likely its token authentication "
            f"({held}); set RAY_AUTH_MODE=token with the head's token here (its ~/.ray/auth_token, or RAY_AUTH_TOKEN)")


@dataclass
class RayPlacement:
    """Workers as Ray tasks of ``cpus`` CPUs and ``gpus`` GPUs, sharing the stores in ``env`` and the data."""

    storage: str
    env: dict[str, str]
    cpus: float
    gpus: float
    data: ray.ObjectRef | None

    def spec(self, first: WorkerSpec, index: int) -> WorkerSpec:
        options = replace(first.options, storage=self.storage)  # the driver's store, not a node's copy's
        return replace(first, options=options, worker_index=index, threads=max(1, math.floor(self.cpus)))

    def launch(self, spec: WorkerSpec, prefix: str | None) -> WorkerProcess:
        name = f"w{spec.worker_index}-{uuid.uuid4().hex[:8]}"  # its trials record it: a lost task's are retried
        task = run_worker_task.options(num_cpus=self.cpus, num_gpus=self.gpus, name=f"sweep-worker-{name}")
        return RayWorker(task.remote(json.dumps(dataclasses.asdict(spec)), {**self.env, "SWEEPS_TASK": name},
                                     self.data), name)


@contextmanager
def ray_placement(space: Space, root: Path, options: SweepOptions, console: Any) -> Iterator[RayPlacement]:
    """Connect to the cluster, check it can run this sweep, send the data; disconnect on the way out."""
    storage, tracking = options.storage or default_storage(root), tracking_uri(root)
    found = data_files(space, root)
    _connect(root, [] if found is None or found[1] else ["/" + name for name in found[0]])
    try:
        cpus, gpus = options.resources(space)
        nodes = _checked_nodes(storage, tracking, cpus, gpus)
        bundle = pack(space, root)
        data = ray.put(bundle) if bundle is not None else None
        sent = f", data {bundle.size / 2**20:.1f} MiB (md5 {bundle.digest[:8]}) sent once" if bundle else ""
        console.print(f"Ray cluster: {len(nodes)} nodes, {sum(n['Resources'].get('CPU', 0) for n in nodes):g} CPUs; "
                      f"each worker {cpus:g} CPUs, {gpus:g} GPUs{sent}")
        env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ON)} | {"MLFLOW_TRACKING_URI": tracking}
        yield RayPlacement(storage, env, cpus, gpus, data)
    finally:
        ray.shutdown()


def _checked_nodes(storage: str, tracking: str, cpus: float, gpus: float) -> list[dict[str, Any]]:
    """The cluster's live nodes, once every one can reach the stores and one can hold a worker."""
    nodes = _alive_nodes()
    _check_shared_stores(nodes, storage, tracking)
    _check_fits(cpus, gpus, nodes)
    return nodes


class RayWorker:
    """A worker task as the supervisor sees a worker process: its exit status, a polite stop (Ray's cancel
    raises KeyboardInterrupt in the task, which passes SIGTERM on), a kill, and whether its node was lost."""

    def __init__(self, ref: ray.ObjectRef, name: str):
        self.ref, self.name = ref, name
        self.lost: str | None = None
        self._code: int | None = None
        self._worker = "unknown"

    def wait(self, timeout: float | None = None) -> int:
        if self._code is None:
            self._code = self._outcome(timeout)
        return self._code

    def _outcome(self, timeout: float | None) -> int:
        try:
            code, self._worker = ray.get(self.ref, timeout=timeout)
            return code
        except ray.exceptions.GetTimeoutError:
            raise TimeoutError("worker task still running") from None
        except ray.exceptions.TaskCancelledError:
            return 128 + signal.SIGTERM
        except ray.exceptions.RayTaskError as exc:  # the task itself raised: the data arrived damaged, …
            raise ClusterError(f"a worker task failed on its node: {one_line(exc.cause or exc)}") from None
        except ray.exceptions.OutOfMemoryError:  # Ray's memory monitor killed it: the trial's doing, as locally
            return -signal.SIGKILL
        except LOST:  # its node, its Ray worker process or the data's owner died under it
            self.lost = self.name
            return 1
        except ray.exceptions.RayError as exc:  # no worker can run as asked: a broken runtime env, no node fits, …
            raise ClusterError(f"a worker task cannot run on the cluster ({type(exc).__name__}: {one_line(exc)})") from None

    def poll(self) -> int | None:
        try:
            return self.wait(0)
        except TimeoutError:
            return None

    def stop(self) -> None:
        ray.cancel(self.ref)

    def kill(self) -> None:
        """Force the task off, unless it ends its worker itself a moment later: after a cancel it kills its worker at
        the end of the same grace period (:func:`stop_then_kill`), which began a little after the driver's."""
        try:
            self.wait(TASK_ENDS_S)
        except TimeoutError:
            ray.cancel(self.ref, force=True)

    def worker(self) -> str:
        return self._worker


@ray.remote(max_retries=0)  # the driver starts a fresh task itself, and knows why the last one ended
def run_worker_task(spec_json: str, env: dict[str, str], data: DataBundle | None) -> tuple[int, str]:
    """On a node: unpack the data (checked), then run the worker process in this node's copy of the project folder
    with only this task's GPUs visible; its exit status and worker id. Ray's cancel (a KeyboardInterrupt between two
    steps of the wait) ends it as the local pool would."""
    fields = json.loads(spec_json)
    spec = WorkerSpec(**{**fields, "options": SweepOptions(**fields["options"]), "root": os.getcwd()})
    placed = unpack(data, Path.cwd()) if data is not None else {}
    context = ray.get_runtime_context()
    gpus = ",".join(str(g) for g in context.get_accelerator_ids().get("GPU", []))
    child = ChildProcess(spec.command(), spec.env({**env, **placed, "SWEEPS_NODE": context.get_node_id(),
                                                   "CUDA_VISIBLE_DEVICES": gpus}))
    try:
        wait_in_steps(lambda: child.poll() is not None)
        return child.wait(), child.worker()
    except KeyboardInterrupt:
        stop_then_kill([child])
        raise
