"""``make bench-scale``: how the framework's own costs grow with a study's size and its workers. Not a test.

A study of the fashion_cnn space grows to each size in turn (``sweep run --trials N --extensions
sweeps.bench.simulation:extensions``: the real sampler, pruner, storages and MLflow logging, nothing trained), and after each size ``sweep status`` and
``sweep report`` run as users run them. Per size: sampler and MLflow seconds per trial (from the timings each
trial writes), trials per minute per worker, status and report seconds, report size, peak RSS; per cost, its
growth exponent (the slope of log cost over log trials). With ``servers`` the study lives in a PostgreSQL server
and the runs in an MLflow tracking server, both started on 127.0.0.1 for the run and stopped after. Raw numbers go
to ``reports/bench_scale.json``, one entry per set-up (worker count and stores), so set-ups measured by separate
runs sit side by side.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from sweeps.bench.local_servers import MlflowServer, local_postgres
from sweeps.bench.measure import machine, peak_rss_per_trial, sweep_command
from sweeps.errors import BenchFailed
from sweeps.execution.spec import child_env
from sweeps.reporting.output import write_file
from sweeps.store.tracking import tracking_uri

SPACE = "fashion_cnn"
SHARE = 250  # trials per worker process before a fresh one: recycling stays a small, constant cost
SIMULATED = "sweeps.bench.simulation:extensions"
NODE_CPUS = 4  # the logical CPUs of each node of the local Ray cluster (--cluster ray)


def _why(done: subprocess.CompletedProcess) -> str:
    """The failed command's own error line (a worker's, prefixed [wN]), else its last line of output."""
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or ["no output"])[-1].strip()


def _sweep(project: Path, *args: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    done = subprocess.run(sweep_command(*args), cwd=project, env=env, capture_output=True,
                          text=True)
    return time.monotonic() - start, done


def _size_of(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def _band(timings: pd.DataFrame, low: int, high: int) -> pd.DataFrame:
    """The timings of trials numbered low ≤ n < high."""
    return timings[(timings["trial"] >= low) & (timings["trial"] < high)]


def _peak_rss(project: Path, env: dict[str, str], name: str) -> float | None:
    peaks = peak_rss_per_trial(env.get("MLFLOW_TRACKING_URI") or tracking_uri(project), name)
    return max(peaks) if peaks else None


def grow(root: Path, sizes: tuple[int, ...], workers: int, console: Console, storage: str | None = None,
         tracking: str | None = None, ray_address: str | None = None) -> list[dict]:
    """Grow one simulated study through ``sizes`` with ``workers`` processes; a row of costs per size. ``storage``
    and ``tracking`` (a URI) replace the project's journal file and SQLite MLflow store; with ``ray_address`` the
    workers are tasks of that Ray cluster."""
    project = root / ".sweeps" / "bench-scale" / f"workers-{workers}"
    shutil.rmtree(project, ignore_errors=True)
    (project / "search_spaces").mkdir(parents=True)
    # Its own space name, so a shared database or tracking server holds one fresh study (and experiment) per run.
    name = f"scale_{time.strftime('%Y%m%d_%H%M%S')}_w{workers}"
    shutil.copy(root / "search_spaces" / f"{SPACE}.yaml", project / "search_spaces" / f"{name}.yaml")
    timings_file = project / "timings.jsonl"
    env = child_env(SWEEPS_STORAGE=storage, SWEEPS_SCALE_TIMINGS=str(timings_file), SWEEPS_TRIALS_PER_PROCESS=str(SHARE),
                    MLFLOW_TRACKING_URI=tracking, RAY_ADDRESS=ray_address)
    placement = ["--cluster", "ray"] if ray_address else []
    rows, previous = [], 0
    for size in sizes:
        wall, done = _sweep(project, "run", name, "--extensions", SIMULATED, "--trials", str(size), "--timeout", "48h",
                            "--no-report", "--confirm", "0", *(["--workers", str(workers)] if workers > 1 else []), *placement, env=env)
        if done.returncode != 0:
            raise BenchFailed(f"the simulated sweep to {size} trials failed: {_why(done)}")
        status_s, status = _sweep(project, "status", name, env=env)
        report_s, report = _sweep(project, "report", env=env)
        timings = pd.read_json(timings_file, lines=True)
        band = _band(timings, previous, size)
        finished = timings[timings["state"].isin(["COMPLETE", "PRUNED"])]
        row = {
            "trials": size, "workers": workers, "finished": int(finished["trial"].nunique()),
            "duplicate_timings": int(finished["trial"].duplicated().sum()),
            "status_consistent": status.returncode == 0 and "consistent" in status.stdout,
            "sampler_s_per_trial": round(float(band["sampler_s"].mean()), 4),
            "mlflow_s_per_trial": round(float(band["mlflow_s"].mean()), 4),
            "trial_s": round(float(band["trial_s"].mean()), 4),
            "trials_per_min_per_worker": round((size - previous) / (wall / 60) / workers, 1),
            "status_s": round(status_s, 1), "report_s": round(report_s, 1),
            "report_ok": report.returncode == 0,
            "report_mb": round(_size_of(project / "reports"), 2),
            "summary_and_page_mb": round(sum(p.stat().st_size for p in (project / "reports").glob("*.html")) / 2**20, 2),
            "peak_rss_mb": _peak_rss(project, env, name),
        }
        rows.append(row)
        console.print(f"  {workers} worker(s), {size} trials: {row}", highlight=False)
        previous = size
    return rows


def growth(rows: list[dict], cost: str) -> float | None:
    """The exponent k of cost ∝ trials^k, fitted on a log-log scale (None with fewer than two sizes)."""
    points = [(r["trials"], r[cost]) for r in rows if r.get(cost)]
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return round(float(np.polyfit(x, y, 1)[0]), 2)


@contextmanager
def _stores(storage: str | None, servers: bool) -> Iterator[tuple[str | None, str | None, str]]:
    """The Optuna storage URL, the MLflow tracking URI (None: the project's files) and their label."""
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or None
    if not servers:
        studies = "journal file" if not storage else "PostgreSQL" if storage.startswith("postgresql") else storage.split(":")[0]
        runs = "SQLite MLflow" if not tracking else "MLflow server" if tracking.startswith("http") else "given MLflow store"
        yield storage, tracking, f"{studies} + {runs}"
        return
    with local_postgres() as postgres:
        postgres.createdb("optuna")
        postgres.createdb("mlflow")
        with MlflowServer(postgres.url("mlflow")).serving() as uri:
            yield postgres.url("optuna"), uri, "PostgreSQL + MLflow server"


@contextmanager
def _placement(workers: int, cluster: bool) -> Iterator[tuple[str | None, str]]:
    """Where the workers run: this machine's processes, or tasks of a Ray cluster started on this machine for the
    run (a head that runs nothing and nodes of 4 CPUs, as many as the workers need), stopped after; the cluster's
    address and a label."""
    if not cluster:
        yield None, ""
        return
    from ray.cluster_utils import Cluster  # Ray only for the cluster set-up

    nodes = max(1, math.ceil(workers / NODE_CPUS))
    ray_cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        for _ in range(nodes):
            ray_cluster.add_node(num_cpus=NODE_CPUS)
        ray_cluster.wait_for_nodes()
        yield ray_cluster.address, f" on Ray ({nodes} node{'s' if nodes > 1 else ''} and a head)"
    finally:
        ray_cluster.shutdown()


def run_bench_scale(root: Path, sizes: tuple[int, ...], workers: tuple[int, ...], console: Console,
                    storage: str | None = None, servers: bool = False, cluster: bool = False) -> dict:
    """Every worker count through every size (with ``servers``: on a PostgreSQL and an MLflow server started
    afresh for each count, so its report holds its own study alone; with ``cluster``: the workers placed by a
    local multi-node Ray cluster); per set-up its rows, growth exponents and what ran where."""
    results: dict = {}
    for count in workers:
        with _stores(storage, servers) as (optuna_url, tracking, label), _placement(count, cluster) as (address, where):
            label += where
            console.print(f"bench-scale: {count} worker(s), {label}, sizes {list(sizes)}")
            rows = grow(root, sizes, count, console, optuna_url, tracking, address)
        costs = ("sampler_s_per_trial", "mlflow_s_per_trial", "trial_s", "status_s", "report_s", "report_mb")
        results[f"{count} worker{'s' if count > 1 else ''}, {label}"] = {
            "about": {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "workers": count,
                      "stores": label, "sizes": list(sizes)},
            "rows": rows, "growth": {c: growth(rows, c) for c in costs}}
    return results


def print_scale(results: dict, console: Console) -> None:
    """The rows as a table per set-up, with the growth exponents."""
    for key, part in results.items():
        table = Table(title=f"bench-scale: {key}")
        columns = ("trials", "finished", "sampler_s_per_trial", "mlflow_s_per_trial", "trials_per_min_per_worker",
                   "status_s", "report_s", "report_mb", "peak_rss_mb")
        for column in columns:
            table.add_column(column.replace("_", " "))
        for row in part["rows"]:
            table.add_row(*(str(row[c]) for c in columns))
        console.print(table)
        console.print(f"growth exponents: {part['growth']}")


def save_scale(results: dict, reports_dir: Path) -> Path:
    """Write ``results`` into reports/bench_scale.json, replacing the set-ups they measured and keeping the others."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / "bench_scale.json"
    try:
        earlier = json.loads(path.read_text()).get("setups", {})
    except (OSError, ValueError, AttributeError):  # none yet, or written by an older version
        earlier = {}
    write_file(path, json.dumps({"setups": {**earlier, **results}}, indent=1,
                                default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))
    return path
