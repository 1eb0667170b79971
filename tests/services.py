"""Real services for the scale-out tests: a PostgreSQL server and an MLflow tracking server on 127.0.0.1."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
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

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def ctl(self, *args: str) -> None:
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.datadir / "server.log"),
                   "-w", "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir}", *args]
        subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=120)

    def createdb(self, name: str) -> None:
        subprocess.run(_as_postgres([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                     "-U", "postgres", name]), check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server in a temporary data directory, started for the session and stopped after."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.fail("PostgreSQL server not installed (Debian package postgresql; .ci/run installs it)")
    base = Path(tempfile.mkdtemp(prefix="sweeps-pg-"))
    base.chmod(0o755)
    server = Postgres(Path(bins[-1]).parent, base / "data", free_port())
    server.datadir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(server.datadir, "postgres", "postgres")
    subprocess.run(_as_postgres([str(server.bindir / "initdb"), "-D", str(server.datadir), "-A", "trust",
                                 "-U", "postgres"]), check=True, capture_output=True, timeout=120)
    server.ctl("start")
    try:
        yield server
    finally:
        server.ctl("stop", "-m", "fast")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(postgres: Postgres):
    """``mlflow server`` with a PostgreSQL backend and its own artifact root, on a free loopback port."""
    postgres.createdb("mlflow")
    artifacts = Path(tempfile.mkdtemp(prefix="sweeps-artifacts-"))
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres.url("mlflow"),
         "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"mlflow server did not start: {proc.stderr.read()[-2000:]}")
            time.sleep(0.5)
    try:
        yield uri
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(artifacts, ignore_errors=True)
