"""Ray as the cluster engine, on a real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a
head without CPUs and two worker nodes, each a raylet of its own), with PostgreSQL and an MLflow server serving
the artifacts: trials run on both nodes; a node removed while it trains costs at most the epoch in flight."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from ray.cluster_utils import Cluster

from sweeps.processes import worker_pid
from sweeps.store.keys import CONTINUES, FAIL_REASON, NODE, RESUMED_AT, RUN_NODE, WORKER
from sweeps.store.status import problems
from sweeps.store.storage import open_storage
from sweeps.store.tracking import Tracker

pytestmark = pytest.mark.slow

EPOCHS = 8
LONG_TRIALS = f"""\
dataset: fashion_mnist
model: mlp
train: {{epochs: {EPOCHS}, batch_size: 64, patience: 20}}
params:
  units: {{type: categorical, choices: [48, 64]}}
sweep: {{n_trials: 2, sampler: {{name: grid}}, pruner: {{name: median}}}}
"""
SUBSET = "20000"  # the lost node's training images: epochs of about a second, not the whole 50,000's several


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Cluster]:
    """A head that trains nothing and two nodes of 1 CPU each: a worker needs one, so each node holds one."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def _sweep(root: Path, cluster: Cluster, storage: str, tracking: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "RAY_ADDRESS": cluster.address, "SWEEPS_STORAGE": storage, "MLFLOW_TRACKING_URI": tracking}
    return subprocess.Popen([sys.executable, "-m", "sweeps.cli", "run", *args, "--cluster", "ray", "--no-report"],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _consistent(storage: str, tracking: str, name: str) -> tuple[optuna.Study, Tracker]:
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    tracker = Tracker(tracking, name, create=False)
    assert problems(study, tracker) == []
    return study, tracker


@pytest.fixture
def one_remote_node() -> Iterator[Cluster]:
    """A head that trains nothing and ONE node of 1 CPU at another address (127.0.0.2): as Ray sees it, another
    machine, whose disk does not hold this machine's files."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.2")
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_a_journal_is_refused_when_one_node_is_another_machine_before_anything_is_written(tiny: Path,
                                                                                          one_remote_node: Cluster):
    proc = _sweep(tiny, one_remote_node, str(tiny / "optuna.journal"), f"sqlite:///{tiny / 'mlflow.db'}", "tiny",
                  "--quick")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "nodes at 127.0.0.2 (not this machine" in out and "cannot share the study" in out
    assert "STORAGE=postgresql://" in out and "Traceback" not in out
    assert not (tiny / "optuna.journal").exists() and not (tiny / "mlflow.db").exists()


def test_nodes_of_this_machine_share_its_journal_and_mlflow_file(tiny: Path, two_nodes: Cluster):
    journal, tracking = tiny / "optuna.journal", f"sqlite:///{tiny / 'mlflow.db'}"
    proc = _sweep(tiny, two_nodes, str(journal), tracking, "tiny", "--quick", "--trials", "2", "--workers", "2")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    study, _ = _consistent(str(journal), tracking, "tiny-quick")
    finished = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]  # one study, where the command is
    assert len(finished) == 2 and {t.user_attrs[NODE] for t in finished} <= {n.node_id for n in two_nodes.worker_nodes}


def test_a_worker_that_fits_on_no_node_is_refused(tiny: Path, two_nodes: Cluster, postgres, mlflow_server):
    postgres.createdb("optuna_gpu")
    proc = _sweep(tiny, two_nodes, postgres.url("optuna_gpu"), mlflow_server, "tiny", "--quick", "--gpus-per-trial", "1")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "a worker needs 1 CPUs and 1 GPUs, but no node of the cluster has that many" in out and "Traceback" not in out


def test_a_quick_sweep_runs_trials_on_both_nodes(tiny: Path, two_nodes: Cluster, postgres, mlflow_server):
    postgres.createdb("optuna_ray")
    storage = postgres.url("optuna_ray")
    proc = _sweep(tiny, two_nodes, storage, mlflow_server, "tiny", "--quick", "--trials", "4", "--workers", "2")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "Ray cluster: 3 nodes, 2 CPUs; each worker 1 CPUs, 0 GPUs, data 29.4 MiB" in out
    study, tracker = _consistent(storage, mlflow_server, "tiny-quick")
    finished = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert 4 <= len(finished) <= 5  # TRIALS=4: at most the one trial already running when the 4th finished
    worker_nodes = {node.node_id for node in two_nodes.worker_nodes}
    assert {t.user_attrs[NODE] for t in finished} == worker_nodes  # both nodes trained
    runs = tracker.runs(kind="trial")
    assert set(runs[f"tags.{RUN_NODE}"]) == worker_nodes
    assert all(tracker.artifact_names(run_id, "checkpoint") for run_id in runs["run_id"])  # on the server's store


def _training_node(study_name: str, storage: str, epochs: int, limit_s: float = 300) -> tuple[int, str, int]:
    """(trial, node, worker pid) of the first trial seen with ``epochs`` epochs reported (its resume point is kept
    by then)."""
    deadline = time.time() + limit_s
    while time.time() < deadline:
        try:
            study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
            for trial in study.get_trials(states=(TrialState.RUNNING,)):
                if len(trial.intermediate_values) >= epochs and NODE in trial.user_attrs:
                    return trial.number, trial.user_attrs[NODE], worker_pid(trial.user_attrs[WORKER])
        except KeyError:
            pass  # the study is not created yet
        time.sleep(0.5)
    raise AssertionError(f"no trial reached epoch {epochs}")


def test_a_node_lost_mid_trial_costs_at_most_the_epoch_in_flight(tiny: Path, two_nodes: Cluster, postgres,
                                                                   mlflow_server):
    (tiny / "search_spaces" / "long.yaml").write_text(LONG_TRIALS)
    postgres.createdb("optuna_ray_chaos")
    storage = postgres.url("optuna_ray_chaos")
    proc = _sweep(tiny, two_nodes, storage, mlflow_server, "long", "--workers", "2", "--subset", SUBSET)
    lost_trial, node_id, pid = _training_node("long", storage, epochs=3)
    lost = next(node for node in two_nodes.worker_nodes if node.node_id == node_id)
    # The machine goes away: its worker process at once (on one machine it would outlive its raylet a few seconds
    # and queue its trial itself), then its raylet and every Ray process on it.
    os.kill(pid, signal.SIGKILL)
    two_nodes.remove_node(lost, allow_graceful=False)
    out, _ = proc.communicate(timeout=900)
    two_nodes.add_node(num_cpus=1)  # the module's other tests find two nodes again
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out

    study, tracker = _consistent(storage, mlflow_server, "long")
    trials = study.get_trials()
    # Ray told the command its task was lost (the lost path ran, whatever else did) ...
    assert "a worker was lost with its node or task (w" in out, out[-3000:]
    # ... and the command failed and queued the trial, unless the other worker saw the dead pid first, as on one
    # machine (Ray kills a lost task's processes of this host, so that race cannot be kept out here).
    reason = trials[lost_trial].user_attrs.get(FAIL_REASON, "")
    assert (f"trial(s) [{lost_trial}] queued again: its trial goes on from its last epoch" in out
            if reason.startswith("its cluster task") else reason == "worker died"), (reason, out[-3000:])
    assert sum(t.system_attrs.get("failed_trial") == lost_trial for t in trials) == 1  # queued once
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2  # exactly TRIALS
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == lost_trial)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs[NODE] != node_id  # went on on the other node
    assert sorted(retry.intermediate_values) == list(range(EPOCHS))  # the pruner saw one history
    run = tracker.runs(kind="trial").set_index(f"tags.{CONTINUES}").loc[str(lost_trial)]
    # Killed once its 3rd epoch was reported: the point after it may still have been on its way to the store.
    assert int(run[f"tags.{RESUMED_AT}"]) >= 2
    epochs = [m.step for m in tracker.client.get_metric_history(run["run_id"], "loss")]
    assert sorted(set(epochs)) == list(range(1, EPOCHS + 1))
    assert len(epochs) <= EPOCHS + 2  # at most the epoch in flight and the one being kept trained twice (over: 3+)
    print(f"node lost after epoch {int(run[f'tags.{RESUMED_AT}'])} of trial {lost_trial}: {len(epochs)} epochs "
          f"trained for {EPOCHS}")


def test_sigterm_stops_a_sweep_on_ray_promptly_and_its_trial_goes_on_later(tiny: Path):
    (tiny / "search_spaces" / "long.yaml").write_text(LONG_TRIALS)
    env = {**os.environ, "RAY_ADDRESS": "local"}  # a Ray instance of the command's own, not this machine's cluster
    proc = subprocess.Popen([sys.executable, "-m", "sweeps.cli", "run", "long", "--cluster", "ray", "--no-report",
                             "--keras-log"], cwd=tiny, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    for line in proc.stdout:  # type: ignore[union-attr]
        if "Epoch 2/" in line:
            break
    time.sleep(1)
    stopped = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out = proc.stdout.read()  # type: ignore[union-attr]
    proc.wait(timeout=60)
    took = time.monotonic() - stopped
    assert proc.returncode == 143 and took < 10, (took, out[-2000:])
    assert out.count("interrupted: finished trials are saved") == 1 and "Traceback" not in out
    study = optuna.load_study(study_name="long", storage=open_storage(str(tiny / "optuna.journal")))
    stopped_trial, queued = study.get_trials()
    assert (stopped_trial.state, queued.state) == (TrialState.FAIL, TrialState.WAITING)  # queued to go on
    worker = worker_pid(stopped_trial.user_attrs[WORKER])
    assert not Path(f"/proc/{worker}").exists()  # no worker left behind


@pytest.fixture
def token_head(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A head begun as the README says (`ray start --head`), checking a token (Ray's token authentication), in a
    home of its own that holds the token; its address and that home. Stopped by its own process group, not `ray
    stop` (which would stop every Ray of the machine)."""
    import socket

    import ray

    host = ray.util.get_node_ip_address()  # where `ray start` listens: this machine's address, not 127.0.0.1
    home = tmp_path / "head-home"
    home.mkdir()
    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    ray_cli = str(Path(sys.executable).with_name("ray"))
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    subprocess.run([ray_cli, "get-auth-token", "--generate"], env=env, check=True, capture_output=True)
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", f"--temp-dir={temp}"], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until its port answers
            with socket.socket() as probe:
                if probe.connect_ex((host, port)) == 0:
                    break
            time.sleep(0.5)
        else:
            raise AssertionError(f"`ray start --head` did not answer on {host}:{port}")
        yield f"{host}:{port}", home
    finally:
        # SIGKILL to its process group (all its daemons are in it): a SIGTERM makes `ray start --block` stop them
        # one by one, some 30 s; nothing of this throw-away head needs a clean stop.
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=60)
        for pid in _pids_naming(temp):  # any that left the group: by their temp folder, each by its id
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def _pids_naming(text: str) -> list[int]:
    """The processes whose command line holds ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
    return found


def test_a_ray_start_head_with_token_authentication_runs_the_sweep_and_a_missing_token_is_named(
        tiny: Path, token_head: tuple[str, Path], tmp_path: Path):
    address, home = token_head

    def sweep(home: Path, mode: str | None) -> subprocess.CompletedProcess:
        env = {**os.environ, "RAY_ADDRESS": address, "HOME": str(home), "RAY_AUTH_MODE": mode or ""}
        if mode is None:
            env.pop("RAY_AUTH_MODE")
        return subprocess.run([sys.executable, "-m", "sweeps.cli", "run", "tiny", "--quick", "--trials", "1",
                               "--cluster", "ray", "--no-report"], cwd=tiny, env=env, capture_output=True, text=True,
                              timeout=600)

    bare = tmp_path / "no-token-home"
    bare.mkdir()
    refused = sweep(home, None)  # the head's token is here, but Ray sends it only in token mode
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "did not let this command join: most likely its token authentication (RAY_AUTH_MODE is not token); set " \
           "RAY_AUTH_MODE=token with the head's token here" in refused.stderr
    assert "(this machine holds no token)" in sweep(bare, "token").stderr
    done = sweep(home, "token")  # as the README says: RAY_AUTH_MODE=token and the head's token
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    study = optuna.load_study(study_name="tiny-quick", storage=open_storage(str(tiny / "optuna.journal")))
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]


def test_rays_errors_are_told_apart_a_lost_process_goes_on_a_task_that_cannot_run_is_one_line():
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from sweeps.errors import ClusterError
    from sweeps.execution.ray_cluster import RayWorker

    @ray.remote(max_retries=0)
    def dies() -> tuple[int, str]:
        os._exit(1)  # its Ray worker process goes away under it, as with a lost machine

    @ray.remote(max_retries=0)
    def fine() -> tuple[int, str]:
        return 0, "host:1:1.0"

    ray.init(num_cpus=1, include_dashboard=False, address="local")
    try:
        lost = RayWorker(dies.remote(), "w0-lost")
        assert lost.wait(60) == 1 and lost.lost == "w0-lost"
        nowhere = NodeAffinitySchedulingStrategy(node_id="ab" * 28, soft=False)  # a node the cluster never had
        with pytest.raises(ClusterError, match=r"a worker task cannot run on the cluster \(TaskUnschedulableError"):
            RayWorker(fine.options(scheduling_strategy=nowhere).remote(), "w1").wait(60)
        done = RayWorker(fine.remote(), "w2")
        assert done.wait(60) == 0 and done.lost is None and done.worker() == "host:1:1.0"
    finally:
        ray.shutdown()


def test_a_task_rays_memory_monitor_kills_is_the_trials_crash_not_a_lost_node():
    """Ray's memory monitor (set here to act above 5 % of this machine's memory) kills a task that holds 1 GiB:
    the worker is told as killed (SIGKILL, the trial's crash, as a local out-of-memory kill), not as lost."""
    import ray

    from sweeps.execution.ray_cluster import RayWorker

    @ray.remote(max_retries=0)
    def hog() -> tuple[int, str]:
        held = bytearray(2**30)
        time.sleep(60)
        return len(held), "host:1:1.0"

    ray.init(num_cpus=1, include_dashboard=False, address="local",
             _system_config={"memory_usage_threshold": 0.05, "memory_monitor_refresh_ms": 100})
    try:
        killed = RayWorker(hog.remote(), "w0-hog")
        assert killed.wait(60) == -signal.SIGKILL and killed.lost is None
    finally:
        ray.shutdown()


def test_a_cluster_that_keeps_losing_its_worker_tasks_stops_the_sweep(tiny: Path, monkeypatch: pytest.MonkeyPatch):
    """Every worker task dies with its process: the sweep goes on past each (not the trial's doing), and stops with
    one line once MAX_LOST_IN_A_ROW are lost in a row, where it would otherwise start tasks until its budget."""
    import ray
    from rich.console import Console

    from sweeps.errors import SweepStopped
    from sweeps.execution import pool as supervisor
    from sweeps.execution.ray_cluster import RayWorker
    from sweeps.search.options import SweepOptions
    from sweeps.search.study import open_sweep
    from sweeps.space.space import load_space

    @ray.remote(max_retries=0)
    def dies() -> tuple[int, str]:
        os._exit(1)

    monkeypatch.setattr(supervisor, "STOP_GRACE_S", 0)  # no worker process outlives these tasks
    options = SweepOptions(quick=True, trials=2)
    sweep = open_sweep(load_space("tiny", tiny / "search_spaces"), tiny, options, Console())
    launched: list[str] = []

    def launch(spec: object, prefix: str | None) -> RayWorker:
        launched.append(f"w0-{len(launched)}")
        return RayWorker(dies.remote(), launched[-1])

    ray.init(num_cpus=1, include_dashboard=False, address="local")
    try:
        workers = supervisor.Workers(sweep, Console(), time.time() + 120, launch)  # without the cap: to the deadline
        with pytest.raises(SweepStopped, match=rf"{supervisor.MAX_LOST_IN_A_ROW + 1} worker tasks in a row were lost "
                                               r"\(the last: w0-5\)"):
            supervisor._slot(workers, None, 0, None)  # type: ignore[arg-type]
    finally:
        ray.shutdown()
    assert len(launched) == supervisor.MAX_LOST_IN_A_ROW + 1
