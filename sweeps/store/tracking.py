"""MLflow tracking: an experiment per study, a parent run per sweep, nested child runs per trial and repeat."""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from sweeps.store.keys import FAILED, FINISHED, INTERRUPTED, KIND, PARENT, TRIAL
from sweeps.store.new_sqlite import seed_sqlite_store


def tracking_uri(root: Path) -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite store that plain ``mlflow ui`` in ``root`` shows."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root.resolve() / 'mlflow.db'}"


def ui_url(uri: str) -> str | None:
    """Where the MLflow UI of tracking store ``uri`` is served: the server itself for an http(s) store (without
    credentials), else ``$MLFLOW_UI_URL`` (the Makefile sets it to where ``make ui`` serves); None when unknown."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme in ("http", "https"):
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parts.port}" if parts.port else ""
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return os.environ.get("MLFLOW_UI_URL", "").rstrip("/") or None


def _now_ms() -> int:
    return int(time.time() * 1000)


class Tracker:
    """Writes runs of one MLflow experiment through ``MlflowClient`` (explicit run ids, no global active run)."""

    def __init__(self, uri: str, experiment: str, create: bool = True):
        self.uri = uri  # never mlflow.set_tracking_uri: it also rewrites $MLFLOW_TRACKING_URI for the process
        if create:
            seed_sqlite_store(uri)
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None and not create:
            raise LookupError(f"no MLflow experiment {experiment!r} in {uri}")
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)

    def start_run(self, name: str, parent: str | None = None, tags: dict[str, Any] | None = None,
                  params: dict[str, Any] | None = None) -> str:
        """Open a run (nested under ``parent`` when given) and return its id."""
        all_tags = {**(tags or {}), **({PARENT: parent} if parent else {})}
        run = self.client.create_run(self.experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()})
        if params:
            self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float | None], step: int = 0) -> None:
        """Log ``metrics`` (None: unknown, skipped) at ``step`` in one call (one per epoch keeps logging cheap)."""
        now = _now_ms()
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Log params (logging one again with the same value is allowed, as MLflow does)."""
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def artifact_names(self, run_id: str, folder: str) -> list[str]:
        """The names (not paths) in an artifact folder of ``run_id``; empty when it has none."""
        return [Path(info.path).name for info in self.client.list_artifacts(run_id, folder)]

    def download(self, run_id: str, folder: str, dest: Path) -> Path:
        """Copy an artifact folder of ``run_id`` into ``dest``; the local copy's path."""
        dest.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, folder, str(dest)))

    def delete_artifacts(self, run_id: str, folder: str) -> None:
        """Remove an artifact folder of ``run_id`` (the artifact store's own delete: a file store's folder, a
        tracking server's ``--serve-artifacts`` store)."""
        uri = self.client.get_run(run_id).info.artifact_uri
        get_artifact_repository(uri, tracking_uri=self.uri).delete_artifacts(folder)

    def reopen_run(self, run_id: str, tags: dict[str, Any]) -> None:
        """Set a closed run RUNNING again (a trial continued where it stopped), with ``tags``: the tags first, so no
        one reading the runs meanwhile sees a RUNNING run of the trial that failed (and closes it as an orphan)."""
        self.set_tags(run_id, tags)
        self.client.update_run(run_id, status="RUNNING")

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Close a run as FINISHED, FAILED or KILLED."""
        self.client.set_terminated(run_id, status)

    def find_run(self, tags: dict[str, Any]) -> str | None:
        """The id of a run of this experiment with all of ``tags``; None when there is none."""
        query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
        found = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1)
        return found[0].info.run_id if found else None

    def runs(self, kind: str | None = None, trial: int | None = None) -> pd.DataFrame:
        """The experiment's runs (of one kind, of one trial) as a frame (``params.*``, ``metrics.*``, ``tags.*``
        columns)."""
        query = " and ".join([*([f"tags.`{KIND}` = '{kind}'"] if kind else []),
                              *([f"tags.`{TRIAL}` = '{trial}'"] if trial is not None else [])])
        rows, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1000, page_token=token)
            for run in page:
                rows.append({"run_id": run.info.run_id, "status": run.info.status, "start_time": run.info.start_time,
                             **{f"params.{k}": v for k, v in run.data.params.items()},
                             **{f"metrics.{k}": v for k, v in run.data.metrics.items()},
                             **{f"tags.{k}": v for k, v in run.data.tags.items()}})
            token = page.token
            if not token:
                return pd.DataFrame(rows)

    def metric_history(self, run_id: str, keys: tuple[str, ...]) -> pd.DataFrame:
        """Per-epoch values of ``keys`` logged to ``run_id``, one row per epoch."""
        columns = {key: {m.step: m.value for m in self.client.get_metric_history(run_id, key)} for key in keys}
        frame = pd.DataFrame(columns).sort_index()
        return frame.rename_axis("epoch").reset_index()


@dataclass
class RunEnd:
    """How an open run will be closed: FINISHED unless the block marks it failed or ends by an exception."""

    status: str = FINISHED

    def fail(self) -> None:
        self.status = FAILED


@contextmanager
def closing_run(tracker: Tracker, run_id: str, before_close: Callable[[str], None] | None = None) -> Iterator[RunEnd]:
    """Close run ``run_id`` on every way out of the block: KILLED when interrupted (Ctrl-C, SIGTERM), FAILED on an
    error or when the block called :meth:`RunEnd.fail`, else FINISHED. ``before_close(status)`` runs first (a
    sweep run logs its trial counts there)."""
    end = RunEnd()
    try:
        yield end
    except KeyboardInterrupt:
        end.status = INTERRUPTED
        raise
    except BaseException:
        end.status = FAILED
        raise
    finally:
        try:
            if before_close is not None:
                before_close(end.status)
        finally:
            tracker.end_run(run_id, end.status)
