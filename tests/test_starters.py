"""Each starter of ``sweep init --data KIND`` runs as its README says, in an empty folder: ``sweep run example
--quick`` by the installed command on its default path (supervised worker processes), then ``sweep status example
--quick``; and its model learns: better than chance, or than predicting the mean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

from sweeps.cli import main
from sweeps.store.storage import default_storage, open_storage

SWEEP = Path(sys.executable).parent / "sweep"  # the installed command, as a user runs it


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "SWEEPS_STORAGE", "SWEEPS_SPACES_DIR", "MLFLOW_UI_URL", "SWEEPS_TRIALS_PER_PROCESS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize(("kind", "data"), [("table", "data.csv"), ("regression", "data.csv"), ("arrays", "arrays.npz")])
def test_each_starter_writes_its_data_and_checks(empty: Path, capsys, kind: str, data: str):
    assert main(["init", "--data", kind]) == 0
    assert (empty / data).is_file() and (empty / "search_spaces" / "example.yaml").is_file()
    assert main(["check", "example"]) == 0
    assert "model models:small_mlp: builds" in capsys.readouterr().out
    assert main(["init", "--data", kind]) == 2  # nothing overwritten, the data included


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SWEEPS_TRIALS_PER_PROCESS"}
    return subprocess.run([str(SWEEP), *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["table", "regression", "arrays"])
def test_each_starter_runs_as_its_readme_says_and_learns(empty: Path, capsys, kind: str):
    assert main(["init", "--data", kind]) == 0 and main(["check", "example"]) == 0
    done = _run("run", "example", "--quick")  # the installed command, its trials in worker processes
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert main(["status", "example", "--quick"]) == 0 and "consistent" in capsys.readouterr().out
    study = optuna.load_study(study_name="example-quick", storage=open_storage(default_storage(empty)))
    best = study.best_trial
    if kind == "regression":
        train = pd.read_csv(empty / "data.csv")["progression"]
        floor = (train - train.mean()).abs().mean()  # the MAE of always predicting the mean
        assert best.user_attrs["test_mae_mean"] < floor, (best.user_attrs["test_mae_mean"], floor)
    else:
        chance = {"table": 0.63, "arrays": 0.1}[kind]  # the larger class's share; one digit in ten
        assert best.user_attrs["test_accuracy_mean"] > chance + 0.1, best.user_attrs
