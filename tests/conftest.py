"""Shared fixtures: the real offline data, and a throw-away project folder for sweeps."""

from __future__ import annotations

import gc
import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.services"]  # the PostgreSQL and MLflow server fixtures

REPO = Path(__file__).resolve().parents[1]
SPACES = REPO / "search_spaces"


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session):
    """Collect (import every test module, and with them TensorFlow, MLflow, Ray) with the garbage collector off, as
    the workers' template imports (``sweeps.execution.forked.imports_frozen``): its full collections during the
    imports walk what they have made so far again and again. What they made is frozen."""
    gc.disable()
    try:
        return (yield)
    finally:
        gc.freeze()
        gc.enable()


def pytest_runtest_logfinish(nodeid: str, location: tuple) -> None:
    """Collect a test's garbage, then freeze what is left (the modules it imported, what it cached): the suite's
    process is long-lived, and each repeat's ``keras.backend.clear_session()`` runs a full ``gc.collect()`` that
    otherwise walks every object of every earlier test (0.5 s a repeat after 20 tests here, 1.3 s after 40) where a
    worker process walks only its own."""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The user's cache (a migrated empty MLflow store: ``sweeps.store.new_sqlite``) in this run's temp folder, one
    for all xdist workers: the suite leaves ~/.cache alone."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEEPS_CACHE_DIR", str(base / "user-cache"))
        yield base / "user-cache"


def real_data_dir() -> Path:
    """Where the real Fashion-MNIST / MNIST files are (``$SWEEPS_DATA_DIR`` or ../shared/data)."""
    path = Path(os.environ.get("SWEEPS_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (path / "fashion-mnist").is_dir():
        pytest.fail(f"real data not found at {path}: set SWEEPS_DATA_DIR to a folder holding fashion-mnist/ and mnist/")
    return path


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    path = real_data_dir()
    monkeypatch.setenv("SWEEPS_DATA_DIR", str(path))
    return path


# The main end-to-end tests run both ways: ``@BOTH_WAYS`` gives them the project once with trials in the test's
# own process and once in the supervised worker processes ``sweep run`` starts by default.
BOTH_WAYS = pytest.mark.parametrize("project", ["in-process", "workers"], indirect=True)


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Path:
    """An empty project root (cwd) with the shipped spaces, its own Optuna and MLflow stores; trials in the test's
    own process unless the test asks for "workers" (indirect parametrization, as ``BOTH_WAYS`` does)."""
    shutil.copytree(SPACES, tmp_path / "search_spaces")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SWEEPS_STORAGE", raising=False)
    monkeypatch.delenv("SWEEPS_SPACES_DIR", raising=False)
    monkeypatch.delenv("MLFLOW_UI_URL", raising=False)
    # Trials run in the test's own process, so a test can patch training; tests of the worker processes ask for
    # them ("workers", or --trials-per-process).
    if getattr(request, "param", "in-process") == "in-process":
        monkeypatch.setenv("SWEEPS_TRIALS_PER_PROCESS", "0")
    else:
        monkeypatch.delenv("SWEEPS_TRIALS_PER_PROCESS", raising=False)
    return tmp_path


TINY = """\
dataset: fashion_mnist
model: mlp
train: {epochs: 2, batch_size: 256}
params:
  units: {type: int, low: 16, high: 128, log: true}
  dropout: {type: float, low: 0.0, high: 0.3}
sweep: {sampler: {name: tpe}, pruner: {name: none}}
"""


@pytest.fixture
def tiny(project: Path) -> Path:
    """The project with a tiny MLP space (quick trials of a few seconds): for tests of workers, stores and faults."""
    (project / "search_spaces" / "tiny.yaml").write_text(textwrap.dedent(TINY))
    return project
