"""Hostile and careless input: one clear line, exit status 2, nothing written; training faults fail one trial only."""

from __future__ import annotations

import contextlib
import copy
import errno
import gc
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import mlflow
import optuna
import psutil
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.data.loading import load_dataset
from experiments.settings import TrainSettings
from experiments.train import TrainingInterrupted, train_repeat
from sweeps.cli import command, main
from sweeps.errors import SpaceError
from sweeps.space.space import parse_space
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.tracking import tracking_uri

from .conftest import REPO, SPACES, real_data_dir

DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: 500 examples in a second, not six
VALID = yaml.safe_load((SPACES / "fashion_cnn.yaml").read_text())
junk = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                 st.text(max_size=12), st.lists(st.integers(-5, 5), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def _paths(tree, prefix=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


PATHS = list(_paths(VALID))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=junk, drop=st.booleans())
def test_any_mangled_space_file_is_either_valid_or_one_line_naming_the_file(path, value, drop):
    tree = copy.deepcopy(VALID)
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    try:
        parse_space(yaml.dump(tree, Dumper=DUMPER), Path("search_spaces/fashion_cnn.yaml"))
    except SpaceError as exc:
        message = str(exc)
        assert message.startswith("search_spaces/fashion_cnn.yaml: ") and len(message.splitlines()) == 1
        assert len(message) < 600


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_raises_anything_but_a_space_error(text):
    try:
        parse_space(text, Path("search_spaces/x.yaml"))
    except SpaceError as exc:
        assert len(str(exc).splitlines()) == 1


def _project(tmp_path: Path, space: str = "") -> Path:
    (tmp_path / "search_spaces").mkdir()
    if space:
        (tmp_path / "search_spaces" / "demo.yaml").write_text(textwrap.dedent(space))
    return tmp_path


def _sweep(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeps.cli", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "SWEEPS_DATA_DIR": str(real_data_dir()), **env}, timeout=300)


def _nothing_written(root: Path) -> None:
    assert not (root / ".sweeps").exists() and not (root / "mlflow.db").exists() and not (root / "mlruns").exists()
    assert not (root / "optuna.journal").exists()


def test_cli_bad_space_file_exit_2_one_line_nothing_written(tmp_path, monkeypatch, capsys):
    root = _project(tmp_path, "dataset: fashion_mnist\nmodel: cnn\nparams:\n  dropout: {type: float, low: 0.2, high: 1.2}\n")
    done = _sweep(root, "run", "demo")
    assert done.returncode == 2
    assert done.stderr.startswith("error: search_spaces/demo.yaml: params.dropout: 1.2 is not allowed")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    _nothing_written(root)
    monkeypatch.chdir(root)  # the same check in this process: the executable's own one line is tried above
    assert main(["run", "../etc/passwd"]) == 2 and "available: demo" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "status"), [(["list"], 0), (["check", "nosuch"], 2)])
def test_the_sweep_executable_exits_with_mains_status_and_without_the_last_collection(project, monkeypatch, argv,
                                                                                      status):
    monkeypatch.setattr(sys, "argv", ["sweep", *argv])
    monkeypatch.setattr("sweeps.execution.forked.stop_template", lambda: None)  # pytest's template serves later tests
    gc.unfreeze()  # the suite's own freeze (conftest) would hide the command's
    try:
        with pytest.raises(SystemExit) as exited:
            command()
        assert exited.value.code == status
        assert gc.get_freeze_count() > 0  # the exit's collection (about 1 s with TensorFlow loaded) is skipped
    finally:
        gc.unfreeze()


def test_cli_missing_data_exit_2_before_anything_is_written_and_the_template_ends_with_the_command(tmp_path):
    """The workers' template, started before the data is read, is still importing TensorFlow when the command gives
    up: it ends with the command, not seconds later holding the command's output open."""
    root = _project(tmp_path, "dataset: mnist\nmodel: mlp\n")
    env = {**os.environ, "SWEEPS_DATA_DIR": str(tmp_path / "nowhere"), "KERAS_HOME": str(tmp_path / "k")}
    with subprocess.Popen([sys.executable, "-m", "sweeps.cli", "run", "demo", "--quick"], cwd=root, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        templates = _templates_of(proc)
        assert proc.wait(300) == 2
        ended_at = time.monotonic() + 2
        while not all(_ended(t) for t in templates) and time.monotonic() < ended_at:
            time.sleep(0.05)
        assert templates and all(_ended(t) for t in templates)
        err = proc.stderr.read()
    assert "error: dataset mnist not found" in err and "Traceback" not in err
    _nothing_written(root)


def _templates_of(proc: subprocess.Popen) -> list[psutil.Process]:
    """The fork servers ``proc`` starts, found while it runs."""
    command = psutil.Process(proc.pid)
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            if found := [c for c in command.children() if "forkserver" in " ".join(c.cmdline())]:
                return found
        time.sleep(0.02)
    return []


def _ended(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_unwritable_reports_folder_is_refused_before_training(project: Path, capsys):
    (project / "reports").write_text("a file where the reports folder should be")
    assert main(["run", "mnist_mlp", "--quick"]) == 2
    assert "reports: cannot write the report" in capsys.readouterr().err
    assert not (project / ".sweeps" / "work").exists()


@pytest.mark.parametrize("project", ["workers"], indirect=True)
def test_a_study_begun_on_one_sample_refuses_another_before_a_worker_starts(project: Path, capsys):
    from rich.console import Console

    from sweeps.search.study import open_study
    from sweeps.space.space import load_space

    storage = open_storage(default_storage(project))
    open_study(load_space("mnist_mlp", project / "search_spaces"), storage, False, Console(quiet=True), subset=1500)
    before = [(t.number, t.state) for t in optuna.load_study(study_name="mnist_mlp", storage=storage).get_trials()]
    assert main(["run", "mnist_mlp", "--trials", "1", "--subset", "1600", "--no-report"]) == 2  # supervised workers
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: study mnist_mlp trained its trials on a 1500-row sample "
                                               "(--subset 1500); this run asks for a 1600-row sample (--subset 1600)")
    assert [(t.number, t.state) for t in optuna.load_study(study_name="mnist_mlp", storage=storage).get_trials()] == before
    mlflow.set_tracking_uri(tracking_uri(project))
    assert mlflow.get_experiment_by_name("mnist_mlp") is None  # no sweep run, no trial run
    assert not (project / ".sweeps" / "work").exists()  # no worker trained


def test_ui_and_dashboard_bind_to_loopback_unless_asked():
    for target in ("ui", "dashboard"):
        dry = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True).stdout
        assert "--host 127.0.0.1" in dry
        assert "--host 0.0.0.0" in subprocess.run(["make", "-n", target, "HOST=0.0.0.0"], cwd=REPO,
                                                  capture_output=True, text=True).stdout


@pytest.mark.slow
def test_a_full_disk_fails_the_trial_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    real_save, calls = keras.Model.save, []

    def save_until_the_disk_fills(self, filepath, *args, **kwargs):
        calls.append(filepath)
        if len(calls) > 1:
            Path(filepath).write_bytes(b"PK half a zip")  # what a full disk leaves behind
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filepath)
        return real_save(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save_until_the_disk_fills)
    data = load_dataset("fashion_mnist", "holdout", subset=2000)
    settings_ = TrainSettings(epochs=4, monitor="val_loss", verbose=0)  # val_loss improves every early epoch
    with pytest.raises(TrainingInterrupted) as info:
        train_repeat("mlp", {"units": 32}, settings_, data, seed=1, workdir=tmp_path)
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]  # no partial file left
    monkeypatch.setattr(keras.Model, "save", real_save)
    assert keras.models.load_model(tmp_path / "best.keras").count_params() == 784 * 32 + 32 + 330


@pytest.mark.slow
def test_nan_loss_fails_only_that_trial_with_its_reason(project: Path):
    (project / "search_spaces" / "explode.yaml").write_text(textwrap.dedent("""\
        dataset: fashion_mnist
        model: mlp
        fixed: {hidden_layers: 3, units: 1024}
        train: {epochs: 2, optimizer: sgd}
        params:
          learning_rate: {type: categorical, choices: [10.0, 0.01]}
        sweep: {n_trials: 2, sampler: {name: grid}, pruner: {name: none}}
        """))
    assert main(["run", "explode", "--quick", "--no-report"]) == 0
    study = optuna.load_study(study_name="explode-quick", storage=open_storage(default_storage(project)))
    by_lr = {t.params["learning_rate"]: t for t in study.get_trials()}
    assert by_lr[10.0].state == optuna.trial.TrialState.FAIL and by_lr[10.0].user_attrs["fail_reason"] == "nan_loss"
    assert by_lr[0.01].state == optuna.trial.TrialState.COMPLETE
    mlflow.set_tracking_uri(tracking_uri(project))
    runs = mlflow.search_runs(experiment_names=["explode-quick"], filter_string="tags.`sweeps.kind` = 'trial'")
    failed = runs[runs["tags.sweeps.trial"] == str(by_lr[10.0].number)]
    assert failed["status"].item() == "FAILED" and failed["tags.sweeps.stop_reason"].item() == "nan_loss"


def test_a_bad_trials_per_process_is_one_line_before_anything_is_written(tmp_path):
    root = _project(tmp_path, "dataset: fashion_mnist\nmodel: mlp\n")
    done = _sweep(root, "run", "demo", SWEEPS_TRIALS_PER_PROCESS="ten")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("(also as SWEEPS_TRIALS_PER_PROCESS), got 'ten'")
    _nothing_written(root)


def _fails_in_a_thread(exc: BaseException) -> None:
    import threading

    def fail() -> None:
        raise exc

    thread = threading.Thread(target=fail)
    thread.start()
    thread.join()


def test_a_background_threads_store_error_is_one_line_and_a_bug_keeps_its_traceback(tmp_path, monkeypatch, capfd):
    """Optuna's heartbeat thread raised when PostgreSQL restarted under it, and its traceback reached the user."""
    import threading

    from sweeps.cli import _thread_error

    monkeypatch.setattr(threading, "excepthook", threading.excepthook)  # put back after the test
    monkeypatch.chdir(tmp_path)
    main(["list"])  # any command installs the hook
    assert threading.excepthook is _thread_error
    lost = optuna.exceptions.StorageInternalError("An exception is raised during the commit.")
    lost.__cause__ = ConnectionError("the database system is shutting down")
    capfd.readouterr()
    _fails_in_a_thread(lost)
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["warning: a background thread stopped: lost the study store (the database system is shutting down); "
                   "finished trials are saved: run the same command to continue"]
    _fails_in_a_thread(ValueError("a bug"))
    err = capfd.readouterr().err
    assert "Traceback" in err and "ValueError: a bug" in err
