"""Resume points in MLflow: after every epoch a repeat's point (:mod:`experiments.resume`) is copied into its trial's
MLflow run, so the trial that takes a lost one's place — in this process's successor or on another machine — goes on
from that epoch. A finished repeat of a trial with several seeds is kept as its result. All of it is dropped when the
trial ends.

Layout in the run: ``resume/attempt-<trial>/seed-<seed>/epoch-<n>/`` (the point after epoch n; its state file is
copied last, so a folder with one is whole, and the folder before it is removed only then) and
``resume/attempt-<trial>/seed-<seed>/result.json``. Each attempt (a trial number: a retry is a new one) writes its
own folder and reads its lineage's, so an earlier attempt still running somewhere can never remove the point a
retry goes on from.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from experiments.outcome import RepeatResult
from experiments.points import BEST, STATE, WEIGHTS, ResumePoint
from sweeps.store.tracking import Tracker

RESUME = "resume"
RESULT = "result.json"


def _seed_folder(attempt: int, seed: int) -> str:
    return f"{RESUME}/attempt-{attempt}/seed-{seed}"


class PointKeeper:
    """The epoch hook of one repeat of attempt ``attempt``: copies each new point into run ``run_id`` (the attempt's
    own folder) and removes the one before."""

    def __init__(self, tracker: Tracker, run_id: str, attempt: int, seed: int):
        self.tracker, self.run_id, self.folder = tracker, run_id, _seed_folder(attempt, seed)
        self.kept: int | None = None

    def __call__(self, folder: Path, epoch: int) -> None:
        dest = f"{self.folder}/epoch-{epoch}"
        for name in (BEST, WEIGHTS, STATE):
            if (folder / name).is_file():
                self.tracker.log_artifact(self.run_id, folder / name, dest)
        if self.kept is not None and self.kept != epoch:
            self.tracker.delete_artifacts(self.run_id, f"{self.folder}/epoch-{self.kept}")
        self.kept = epoch


def _whole_points(tracker: Tracker, run_id: str, folder: str) -> list[int]:
    """The epochs of the whole points in ``folder`` (a point cut short while it was copied has no state file)."""
    epochs = [int(name.removeprefix("epoch-")) for name in tracker.artifact_names(run_id, folder)
              if name.startswith("epoch-")]
    return [e for e in epochs if STATE in tracker.artifact_names(run_id, f"{folder}/epoch-{e}")]


def fetch_point(tracker: Tracker, run_id: str, attempts: list[int], seed: int, workdir: Path) -> ResumePoint | None:
    """The furthest whole point of repeat ``seed`` that the earlier ``attempts`` kept in run ``run_id``, copied into
    ``workdir``; None when none."""
    found = [(epoch, attempt) for attempt in attempts
             for epoch in _whole_points(tracker, run_id, _seed_folder(attempt, seed))]
    if not found:
        return None
    epoch, attempt = max(found)
    with tempfile.TemporaryDirectory() as scratch:
        local = tracker.download(run_id, f"{_seed_folder(attempt, seed)}/epoch-{epoch}", Path(scratch))
        workdir.mkdir(parents=True, exist_ok=True)
        for file in local.iterdir():
            shutil.move(file, workdir / file.name)
    return ResumePoint.read(workdir)


def keep_result(tracker: Tracker, run_id: str, attempt: int, result: RepeatResult) -> None:
    """Keep a finished repeat's result, so a continued trial does not train that seed again."""
    fields = {**dataclasses.asdict(result), "checkpoint": None}  # the checkpoint is in the repeat's own run
    tracker.log_text(run_id, json.dumps(fields), f"{_seed_folder(attempt, result.seed)}/{RESULT}")


def fetch_result(tracker: Tracker, run_id: str, attempts: list[int], seed: int) -> RepeatResult | None:
    """The result of repeat ``seed`` that one of the earlier ``attempts`` kept in run ``run_id``; None when none
    finished it."""
    for attempt in reversed(attempts):
        if RESULT in tracker.artifact_names(run_id, _seed_folder(attempt, seed)):
            with tempfile.TemporaryDirectory() as scratch:
                local = tracker.download(run_id, f"{_seed_folder(attempt, seed)}/{RESULT}", Path(scratch))
                return RepeatResult(**json.loads(local.read_text()))
    return None


def drop_points(tracker: Tracker, run_id: str) -> None:
    """Remove every kept point and result of run ``run_id``: its trial has ended."""
    if tracker.artifact_names(run_id, RESUME):
        tracker.delete_artifacts(run_id, RESUME)
