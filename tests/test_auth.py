"""The multi-machine set-up with credentials: PostgreSQL with password authentication (the ``postgres`` fixture
never trusts), an MLflow server that requires them; nobody in without them, and no secret shown anywhere."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from sweeps.cli import main

pytestmark = pytest.mark.slow



def test_anonymous_clients_are_refused_and_a_sweep_with_credentials_shows_no_secret(
        tiny: Path, postgres, mlflow_auth_server, monkeypatch, capsys):
    server = mlflow_auth_server
    with pytest.raises(urllib.error.HTTPError) as refused:  # no credentials: no data
        urllib.request.urlopen(f"{server.uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30)
    assert refused.value.code == 401
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with pytest.raises(MlflowException, match="401"):
        MlflowClient(server.uri).search_experiments(max_results=1)
    postgres.createdb("optuna_auth")
    storage = postgres.url("optuna_auth")
    assert main(["--storage", storage, "run", "tiny", "--quick", "--trials", "1", "--no-report"]) == 2  # one line
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", server.user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-" + server.password)
    assert main(["--storage", storage, "status", "tiny", "--quick"]) == 2

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.password)
    assert main(["--storage", storage, "run", "tiny", "--quick", "--trials", "2"]) == 0  # and its report
    assert main(["--storage", storage, "status", "tiny", "--quick"]) == 0
    assert main(["--storage", storage.replace(postgres.password, "wrong"), "status", "tiny", "--quick"]) == 1
    said = capsys.readouterr()
    assert said.err.count("the MLflow server refused this client (without MLFLOW_TRACKING_USERNAME") == 1
    assert said.err.count("the MLflow server refused this client (with MLFLOW_TRACKING_USERNAME") == 1
    assert "password authentication failed" in said.err and "Traceback" not in said.err

    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("tiny-quick")
    runs = client.search_runs([experiment.experiment_id])
    assert sum(r.data.tags.get("sweeps.kind") == "trial" and r.info.status == "FINISHED" for r in runs) == 2
    logged = " ".join(f"{k}={v}" for r in runs for k, v in {**r.data.params, **r.data.tags}.items())
    pages = " ".join(p.read_text(errors="replace") for p in (tiny / "reports").rglob("*") if p.is_file())
    for secret in (postgres.password, server.password, server.admin_password):
        for where, text in (("MLflow params and tags", logged), ("the report", pages), ("stdout", said.out),
                            ("stderr", said.err)):
            assert secret not in text, f"a password in {where}"
    assert f"postgres:***@127.0.0.1:{postgres.port}/optuna_auth" in logged  # the storage, masked
