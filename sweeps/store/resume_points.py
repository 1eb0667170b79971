"""Resume points in MLflow: after every epoch a repeat's point (:mod:`experiments.resume`) is copied into its trial's
MLflow run, so the trial that takes a lost one's place — in this process's successor or on another machine — goes on
from that epoch. A finished repeat of a trial with several seeds is kept as its result. All of it is dropped when the
trial ends.

Layout in the run: ``resume/seed-<seed>/epoch-<n>/`` (the point after epoch n; its state file is copied last, so a
folder with one is whole, and the folder before it is removed only then) and ``resume/seed-<seed>/result.json``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from experiments.resume import BEST, STATE, WEIGHTS, ResumePoint
from experiments.train import RepeatResult
from sweeps.store.tracking import Tracker

RESUME = "resume"
RESULT = "result.json"


def _seed_folder(seed: int) -> str:
    return f"{RESUME}/seed-{seed}"


class PointKeeper:
    """The epoch hook of one repeat: copies each new point into run ``run_id`` and removes the one before."""

    def __init__(self, tracker: Tracker, run_id: str, seed: int):
        self.tracker, self.run_id, self.seed = tracker, run_id, seed
        self.kept: int | None = None

    def __call__(self, folder: Path, epoch: int) -> None:
        dest = f"{_seed_folder(self.seed)}/epoch-{epoch}"
        for name in (BEST, WEIGHTS, STATE):
            if (folder / name).is_file():
                self.tracker.log_artifact(self.run_id, folder / name, dest)
        if self.kept is not None and self.kept != epoch:
            self.tracker.delete_artifacts(self.run_id, f"{_seed_folder(self.seed)}/epoch-{self.kept}")
        self.kept = epoch


def fetch_point(tracker: Tracker, run_id: str, seed: int, workdir: Path) -> ResumePoint | None:
    """The latest whole point of repeat ``seed`` kept in run ``run_id``, copied into ``workdir``; None when none."""
    folder = _seed_folder(seed)
    epochs = sorted((int(name.removeprefix("epoch-")) for name in tracker.artifact_names(run_id, folder)
                     if name.startswith("epoch-")), reverse=True)
    for epoch in epochs:
        if STATE not in tracker.artifact_names(run_id, f"{folder}/epoch-{epoch}"):
            continue  # cut short while it was copied: the one before is whole
        with tempfile.TemporaryDirectory() as scratch:
            local = tracker.download(run_id, f"{folder}/epoch-{epoch}", Path(scratch))
            workdir.mkdir(parents=True, exist_ok=True)
            for file in local.iterdir():
                shutil.move(file, workdir / file.name)
        return ResumePoint.read(workdir)
    return None


def keep_result(tracker: Tracker, run_id: str, result: RepeatResult) -> None:
    """Keep a finished repeat's result, so a continued trial does not train that seed again."""
    fields = {**dataclasses.asdict(result), "checkpoint": None}  # the checkpoint is in the repeat's own run
    tracker.log_text(run_id, json.dumps(fields), f"{_seed_folder(result.seed)}/{RESULT}")


def fetch_result(tracker: Tracker, run_id: str, seed: int) -> RepeatResult | None:
    """The kept result of repeat ``seed`` of run ``run_id``; None when that repeat had not finished."""
    if RESULT not in tracker.artifact_names(run_id, _seed_folder(seed)):
        return None
    with tempfile.TemporaryDirectory() as scratch:
        local = tracker.download(run_id, f"{_seed_folder(seed)}/{RESULT}", Path(scratch))
        return RepeatResult(**json.loads(local.read_text()))


def drop_points(tracker: Tracker, run_id: str) -> None:
    """Remove every kept point and result of run ``run_id``: its trial has ended."""
    if tracker.artifact_names(run_id, RESUME):
        tracker.delete_artifacts(run_id, RESUME)
