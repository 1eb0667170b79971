"""Real services for the scale-out tests, on 127.0.0.1: a PostgreSQL server with password authentication, an
MLflow tracking server on it, and an MLflow server that requires credentials (its basic-auth app)."""

from __future__ import annotations

import base64
import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(command: list[str]) -> list[str]:
    """initdb refuses to run as root: run the server tools as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Postgres:
    bindir: Path
    datadir: Path
    port: int
    password: str  # of the postgres user: the server authenticates every connection (scram-sha-256, no trust)

    def url(self, database: str) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def ctl(self, *args: str) -> None:
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.datadir / "server.log"),
                   "-w", "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir}", *args]
        subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=120)

    def createdb(self, name: str) -> None:
        subprocess.run(_as_postgres([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                     "-U", "postgres", name]), check=True, capture_output=True, timeout=60,
                       env={**os.environ, "PGPASSWORD": self.password})


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server in a temporary data directory, started for the session and stopped after."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.fail("PostgreSQL server not installed (Debian package postgresql; .ci/run installs it)")
    base = Path(tempfile.mkdtemp(prefix="sweeps-pg-"))
    base.chmod(0o755)
    server = Postgres(Path(bins[-1]).parent, base / "data", free_port(), secrets.token_urlsafe(16))
    server.datadir.mkdir()
    pwfile = base / "pwfile"
    pwfile.write_text(server.password + "\n")
    if os.geteuid() == 0:
        shutil.chown(server.datadir, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    subprocess.run(_as_postgres([str(server.bindir / "initdb"), "-D", str(server.datadir), "-A", "scram-sha-256",
                                 f"--pwfile={pwfile}", "-U", "postgres"]), check=True, capture_output=True, timeout=120)
    pwfile.unlink()
    server.ctl("start")
    try:
        yield server
    finally:
        server.ctl("stop", "-m", "fast")
        shutil.rmtree(base, ignore_errors=True)


class MlflowServer:
    """``mlflow server`` on a fixed free loopback port with its own artifact root; can be stopped and started again."""

    def __init__(self, backend: str, *extra: str, env: dict[str, str] | None = None):
        self.artifacts = Path(tempfile.mkdtemp(prefix="sweeps-artifacts-"))
        self.uri = f"http://127.0.0.1:{free_port()}"
        self.command = [sys.executable, "-m", "mlflow", "server", *extra, "--backend-store-uri", backend,
                        "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
                        "--port", self.uri.rpartition(":")[2], "--workers", "1"]
        self.env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
                    **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.proc.kill()
                    pytest.fail(f"mlflow server did not start: {self.proc.stderr.read()[-2000:] if self.proc.stderr else ''}")
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def serve(self):
        """Start; yield the URL; stop and remove the artifacts (a fixture's body)."""
        self.start()
        try:
            yield self.uri
        finally:
            self.stop()
            shutil.rmtree(self.artifacts, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(postgres: Postgres):
    """``mlflow server`` with a PostgreSQL backend, open to any client on the loopback interface."""
    postgres.createdb("mlflow")
    yield from MlflowServer(postgres.url("mlflow")).serve()


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
    """``mlflow server --app-name basic-auth`` (MLflow's own authentication) on PostgreSQL: anonymous requests are
    refused; an admin with a generated password creates the user the sweeps log as."""
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
        """))
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(home / "auth.ini"), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    for uri in MlflowServer(postgres.url("mlflow_auth"), "--app-name", "basic-auth", env=env).serve():
        user = AuthServer(uri, admin_password, "sweeper", secrets.token_urlsafe(16))
        request = urllib.request.Request(f"{uri}/api/2.0/mlflow/users/create", method="POST",
                                         data=json.dumps({"username": user.user, "password": user.password}).encode(),
                                         headers={"Authorization": _basic("admin", admin_password),
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30):
            pass
        yield user
