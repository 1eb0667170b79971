"""The environment of every sweep run (packages, Python, the OS, TensorFlow, the uncommitted diff) logged as MLflow
artifacts, and ``sweep reproduce`` saying which package versions differ from the trial's sweep run."""

from __future__ import annotations

import importlib.metadata
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from sweeps.cli import main
from sweeps.search.environment import (
    FOLDER,
    log_environment,
    packages,
    sweep_packages,
    version_differences,
)
from sweeps.store.keys import MLFLOW_RUN_ID
from sweeps.store.tracking import Tracker, tracking_uri

REPO = Path(__file__).resolve().parents[1]


def _artifact(tracker: Tracker, run_id: str, name: str, dest: Path) -> str:
    return (tracker.download(run_id, FOLDER, dest) / name).read_text()


def test_the_packages_are_the_installed_versions():
    found = packages()
    assert found["optuna"] == importlib.metadata.version("optuna") and found["mlflow"] == importlib.metadata.version("mlflow")


def test_tensorflow_build_is_read_without_importing_it():
    code = ("import json, sys; from sweeps.search.environment import system; s = system(); "
            "print(json.dumps([s['tensorflow'], 'tensorflow' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    tf, imported = json.loads(out.stdout)
    assert not imported  # the supervisor stays TensorFlow-free
    assert tf["installed"] and tf["version"].startswith("2.") and "is_cuda_build" in tf["build"]
    assert tf["devices"].startswith("not asked")


def test_a_sweep_run_logs_its_environment_and_the_uncommitted_diff(tmp_path: Path):
    root = tmp_path / "project"
    root.mkdir()
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (root / "model.py").write_text("UNITS = 32\n")
    subprocess.run([*git, "add", "model.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    (root / "model.py").write_text("UNITS = 64\n")  # an edit not committed: the run must keep it
    tracker = Tracker(tracking_uri(tmp_path), "env")
    run_id = tracker.start_run("sweep")
    log_environment(tracker, run_id, root)
    assert json.loads(_artifact(tracker, run_id, "packages.json", tmp_path / "a")) == packages()
    system = json.loads(_artifact(tracker, run_id, "system.json", tmp_path / "b"))
    assert system["python"] == sys.version and system["git_repository"] and system["uncommitted"]
    assert "-UNITS = 32\n+UNITS = 64" in _artifact(tracker, run_id, "uncommitted.diff", tmp_path / "c")

    elsewhere = tracker.start_run("sweep")  # a project that is no git repository: no diff, and it says so
    log_environment(tracker, elsewhere, tmp_path / "no-repo")
    assert tracker.artifact_names(elsewhere, FOLDER) == ["packages.json", "system.json"]
    assert json.loads(_artifact(tracker, elsewhere, "system.json", tmp_path / "d"))["git_repository"] is False


def test_reproduce_names_each_version_that_differs_from_the_trials_sweep_run(tmp_path: Path):
    from sweeps.reproduce import _compare_versions

    tracker = Tracker(tracking_uri(tmp_path), "env")
    sweep_run = tracker.start_run("sweep")
    then = {**packages(), "optuna": "3.0.0", "gone-package": "1.0"}
    del then["mlflow"]
    tracker.log_text(sweep_run, json.dumps(then), f"{FOLDER}/packages.json")
    trial = {MLFLOW_RUN_ID: tracker.start_run("trial-3", parent=sweep_run)}
    assert sweep_packages(tracker, trial) == then
    out = io.StringIO()
    _compare_versions(tracker, trial, Console(file=out, width=300))
    assert out.getvalue().splitlines() == [
        "package version differs: gone-package: 1.0 in the sweep, not installed here",
        f"package version differs: mlflow: {importlib.metadata.version('mlflow')} here, not installed in the sweep",
        f"package version differs: optuna: 3.0.0 in the sweep, {importlib.metadata.version('optuna')} here"]
    assert version_differences(packages(), packages()) == []


@pytest.mark.slow
@pytest.mark.parametrize("project", ["workers"], indirect=True)
def test_a_sweep_through_worker_processes_logs_its_environment_and_reproduce_finds_the_same_versions(tiny: Path,
                                                                                                      capfd):
    # The commands in this process (its workers forked from the template it keeps between tests).
    assert main(["run", "tiny", "--quick", "--trials", "1", "--no-report"]) == 0, capfd.readouterr()
    tracker = Tracker(tracking_uri(tiny), "tiny-quick", create=False)
    runs = tracker.runs(kind="sweep")
    assert len(runs) == 1
    assert tracker.artifact_names(runs["run_id"].item(), FOLDER) == ["packages.json", "system.json"]  # no git repo
    capfd.readouterr()
    assert main(["reproduce", "tiny", "--quick", "--trial", "0"]) == 0
    again = capfd.readouterr()
    assert "package versions: same versions as the trial's sweep run" in again.out, again.out + again.err
