"""Throw-away servers on 127.0.0.1 for the scale-out set-up: a PostgreSQL server with password authentication in a
temporary data directory, and ``mlflow server`` on a database. ``make bench-scale SERVERS=1`` and the tests start
them, use them and stop them; nothing here is meant for a real deployment."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sweeps.errors import ServerFailed, UsageError


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
                   "-w", "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                               f"-k {self.datadir}", *args]
        subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=120)

    def createdb(self, name: str) -> None:
        subprocess.run(_as_postgres([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                                     "-U", "postgres", name]), check=True, capture_output=True, timeout=60,
                       env={**os.environ, "PGPASSWORD": self.password})


@contextmanager
def local_postgres() -> Iterator[Postgres]:
    """A PostgreSQL server in a temporary data directory on a free port; stopped and removed on exit."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        raise UsageError("PostgreSQL server not installed (Debian package postgresql; scripts/test-services installs it)")
    base = Path(tempfile.mkdtemp(prefix="sweeps-pg-"))
    base.chmod(0o755)
    server = Postgres(Path(bins[-1]).parent, base / "data", free_port(), secrets.token_urlsafe(16))
    server.datadir.mkdir()
    pwfile = base / "pwfile"
    pwfile.write_text(server.password + "\n")
    if os.geteuid() == 0:
        shutil.chown(server.datadir, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    try:
        subprocess.run(_as_postgres([str(server.bindir / "initdb"), "-D", str(server.datadir), "-A", "scram-sha-256",
                                     f"--pwfile={pwfile}", "-U", "postgres"]), check=True, capture_output=True,
                       timeout=120)
        pwfile.unlink()
        server.ctl("start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise ServerFailed(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace').strip()[-500:]}") from None
    try:
        yield server
    finally:
        server.ctl("stop", "-m", "fast")
        shutil.rmtree(base, ignore_errors=True)


class MlflowServer:
    """``mlflow server`` on a fixed free loopback port with its own artifact root; can be stopped and started again."""

    def __init__(self, backend: str, *extra: str, env: dict[str, str] | None = None, workers: int = 1):
        self.artifacts = Path(tempfile.mkdtemp(prefix="sweeps-artifacts-"))
        self.uri = f"http://127.0.0.1:{free_port()}"
        self.command = [sys.executable, "-m", "mlflow", "server", *extra, "--backend-store-uri", backend,
                        "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
                        "--port", self.uri.rpartition(":")[2], "--workers", str(workers)]
        self.env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
                    **(env or {})}
        self.log = self.artifacts.with_name(self.artifacts.name + ".log")  # a file: an unread pipe would block it
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.proc.kill()
                    error = self.log.read_text(errors="replace").strip().splitlines()[-1:]
                    raise ServerFailed(f"mlflow server did not start: {' '.join(error) or 'no output'} "
                                       f"(log: {self.log})") from None
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Started for the block (its URL), then stopped and its artifacts removed."""
        self.start()
        try:
            yield self.uri
        finally:
            self.stop()
            shutil.rmtree(self.artifacts, ignore_errors=True)
            self.log.unlink(missing_ok=True)
