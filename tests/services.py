"""Real services for the scale-out tests, on 127.0.0.1 (started by :mod:`sweeps.bench.local_servers`): a
PostgreSQL server with password authentication, an MLflow tracking server on it, and an MLflow server that
requires credentials (its basic-auth app)."""

from __future__ import annotations

import base64
import json
import secrets
import textwrap
import urllib.request
from dataclasses import dataclass

import pytest

from sweeps.bench.local_servers import MlflowServer, Postgres, local_postgres
from sweeps.errors import SweepsError


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server in a temporary data directory, started for the session and stopped after."""
    try:
        with local_postgres() as server:
            yield server
    except SweepsError as exc:  # not installed, or it did not start
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def mlflow_server(postgres: Postgres):
    """``mlflow server`` with a PostgreSQL backend, open to any client on the loopback interface."""
    postgres.createdb("mlflow")
    with MlflowServer(postgres.url("mlflow")).serving() as uri:
        yield uri


@dataclass
class AuthServer:
    uri: str
    admin_password: str
    user: str
    password: str  # of ``user``, who may create experiments and log runs


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="session")
def mlflow_auth_server(postgres: Postgres, tmp_path_factory):
    """``mlflow server --app-name basic-auth`` (MLflow's own authentication) on PostgreSQL, configured as
    docs/scale-out.md says (a successful password check cached): anonymous requests are refused; an admin with a
    generated password creates the user the sweeps log as."""
    postgres.createdb("mlflow_auth")
    home = tmp_path_factory.mktemp("mlflow-auth")
    admin_password = secrets.token_urlsafe(16)
    (home / "auth.ini").write_text(textwrap.dedent(f"""\
        [mlflow]
        default_permission = READ
        database_uri = sqlite:///{home / "users.db"}
        admin_username = admin
        admin_password = {admin_password}
        authorization_function = mlflow.server.auth:authenticate_request_basic_auth
        auth_cache_ttl_seconds = 300
        """))
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(home / "auth.ini"), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    with MlflowServer(postgres.url("mlflow_auth"), "--app-name", "basic-auth", env=env).serving() as uri:
        user = AuthServer(uri, admin_password, "sweeper", secrets.token_urlsafe(16))
        request = urllib.request.Request(f"{uri}/api/2.0/mlflow/users/create", method="POST",
                                         data=json.dumps({"username": user.user, "password": user.password}).encode(),
                                         headers={"Authorization": _basic("admin", admin_password),
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30):
            pass
        yield user
