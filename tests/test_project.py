"""Any project folder: ``sweep init`` starts one outside this repository, and every command (and the Python API)
works there with its stores, caches and reports in that folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.cli import main

SWEEP = Path(sys.executable).parent / "sweep"  # the installed command, as a user runs it


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Path:
    folder = tmp_path / "my-project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for name in ("MLFLOW_TRACKING_URI", "SWEEPS_STORAGE", "SWEEPS_SPACES_DIR", "MLFLOW_UI_URL"):
        monkeypatch.delenv(name, raising=False)
    return folder


def test_init_writes_a_starting_project_and_never_overwrites(empty: Path, capsys):
    assert main(["init"]) == 0
    written = {p.relative_to(empty).as_posix() for p in empty.rglob("*") if p.is_file()}
    assert written == {"search_spaces/example.yaml", "models.py", "README.md", ".gitignore"}
    (empty / "models.py").write_text("# mine\n")
    capsys.readouterr()
    assert main(["init"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already has search_spaces/example.yaml, models.py, README.md, .gitignore" in err[0]
    assert (empty / "models.py").read_text() == "# mine\n"


def test_the_starter_space_checks_and_its_builder_builds(empty: Path, capsys):
    assert main(["init"]) == 0
    assert main(["check", "example"]) == 0
    out = capsys.readouterr().out
    assert "model models:small_cnn: builds" in out and "example.yaml: ok" in out


def test_outside_a_project_every_command_says_how_to_start_one(empty: Path, capsys):
    assert main(["list"]) == 2
    assert "`sweep init` starts one" in capsys.readouterr().err


@pytest.mark.slow
def test_a_new_project_sweeps_with_the_installed_command_and_the_python_api(empty: Path):
    import sweeps

    done = subprocess.run([str(SWEEP), "init"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([str(SWEEP), "run", "example", "--quick"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "A new study created" not in done.stdout + done.stderr  # Optuna's INFO, from a call in the template
    status = subprocess.run([str(SWEEP), "status", "example", "--quick"], capture_output=True, text=True)
    assert status.returncode == 0 and "consistent" in status.stdout
    assert {"optuna.journal", "mlflow.db", "reports", ".sweeps"} <= {p.name for p in empty.iterdir()}
    best = sweeps.run("example", trials=3, quick=True)  # one more trial, in this process
    assert best is not None and best.study == "example-quick" and 0 < best.value <= 1
    assert set(best.params) == {"width", "dropout", "learning_rate"} and best.test_accuracy is not None
    assert sweeps.report().name == "summary.html" and (empty / "reports" / "example-quick.html").is_file()


def test_the_python_api_is_callable_whatever_was_imported_before():
    import sweeps
    import sweeps.reporting.build  # a sub-package named like an API function would shadow it

    assert callable(sweeps.run) and callable(sweeps.report) and callable(sweeps.best)
