"""A lost trial goes on from its last epoch: the resume point a repeat keeps after every epoch, in its MLflow run,
and the trial queued in its place continuing there (kill -9 of the command, SIGTERM), without a cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import optuna
import pytest
from optuna.trial import TrialState

from experiments.data.loading import load_dataset
from experiments.points import ResumePoint
from experiments.settings import TrainSettings
from experiments.train import TrainingInterrupted, train_repeat
from sweeps.cli import main
from sweeps.store.keys import CONTINUES, RESUMED_AT
from sweeps.store.status import problems
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.tracking import Tracker, tracking_uri
from tests.test_scale import wait_for


class LostAfter(keras.callbacks.Callback):
    """Stands for a process lost after ``epochs`` epochs (their resume point kept)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 == self.epochs:
            raise RuntimeError("lost")


def test_a_repeat_resumed_from_its_point_trains_only_the_epochs_left(data_dir, tmp_path):
    data = load_dataset("fashion_mnist", "holdout", subset=2000)
    settings = TrainSettings(epochs=4, batch_size=100, lr_schedule="cosine", patience=10, verbose=0)
    trained: list[int] = []
    with pytest.raises(TrainingInterrupted):
        train_repeat("mlp", {"units": 32}, settings, data, seed=1, workdir=tmp_path, callbacks=(LostAfter(2),),
                     on_epoch=lambda step, _: trained.append(step))
    point = ResumePoint.read(tmp_path)
    assert point is not None and point.epoch == 1  # the 2nd epoch was lost before its point was kept
    assert json.loads((tmp_path / "state.json").read_text())["counters"]["EarlyStopping"]["wait"] == 0

    kept: list[int] = []
    result = train_repeat("mlp", {"units": 32}, settings, data, seed=1, workdir=tmp_path, resume=point,
                          on_epoch=lambda step, _: trained.append(step), on_checkpoint=lambda _, epoch: kept.append(epoch))
    assert trained == [1, 2, 2, 3, 4] and kept == [2, 3, 4]  # the lost epoch again, then on: 5 epochs, not 4 + 2
    assert result.epochs == 4 and result.first_epoch == 1 and result.stop_reason == "max_epochs"
    assert result.history["learning_rate"][-1] < 1e-6  # the cosine schedule went on from its step: fully decayed
    assert result.test_accuracy is not None and result.best_epoch is not None


TRIAL_SPACE = """\
dataset: fashion_mnist
model: mlp
train: {epochs: 6, batch_size: 64, lr_schedule: cosine}
params:
  units: {type: categorical, choices: [48, 64]}
sweep: {n_trials: 1, sampler: {name: random}, pruner: {name: median}}
"""


def _epochs_logged(root: Path, run_id: str) -> list[int]:
    return [m.step for m in Tracker(tracking_uri(root), "resume").client.get_metric_history(run_id, "loss")]


def _stop_after_epochs(root: Path, how: signal.Signals, epochs: int) -> None:
    """Start the sweep (its trial in a worker process, as ``make sweep`` trains) and, once ``epochs`` epochs are
    done, SIGTERM the command or SIGKILL its whole process group (as a closed terminal or a job scheduler does)."""
    proc = subprocess.Popen([sys.executable, "-m", "sweeps.cli", "run", "resume", "--no-report", "--keras-log"],
                            cwd=root, env={**os.environ, "SWEEPS_TRIALS_PER_PROCESS": "1"}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(proc, f"Epoch {epochs + 1}/")
    time.sleep(1.0)  # inside the epoch after
    if how == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(how)
    proc.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_trial_stopped_mid_training_goes_on_from_its_last_epoch(tiny: Path, how: signal.Signals):
    (tiny / "search_spaces" / "resume.yaml").write_text(TRIAL_SPACE)
    _stop_after_epochs(tiny, how, epochs=2)
    time.sleep(6)  # a killed command's worker sees its parent gone and stops (queueing its trial) within 5 s

    assert main(["run", "resume", "--no-report"]) == 0
    study = optuna.load_study(study_name="resume", storage=open_storage(default_storage(tiny)))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]  # exactly TRIALS finished
    first, second = trials
    assert second.params == first.params and second.system_attrs.get("failed_trial") == 0, (first.user_attrs, first.system_attrs, second.user_attrs)
    assert sorted(second.intermediate_values) == list(range(6))  # the pruner saw the first epochs' reports too
    tracker = Tracker(tracking_uri(tiny), "resume", create=False)
    assert problems(study, tracker) == []
    runs = tracker.runs(kind="trial")
    assert len(runs) == 1  # one continued record
    run = runs.iloc[0]
    assert run["status"] == "FINISHED" and run[f"tags.{CONTINUES}"] == "0" and run["tags.sweeps.trial"] == "1"
    resumed_at = int(run[f"tags.{RESUMED_AT}"])
    assert resumed_at >= 2
    steps = _epochs_logged(tiny, run["run_id"])
    assert sorted(set(steps)) == [1, 2, 3, 4, 5, 6]
    assert len(steps) <= 6 + 1  # at most the epoch in flight trained (and logged) twice; a restart: 6 + 3
    assert not tracker.artifact_names(run["run_id"], "resume")  # the points are dropped once the trial ended


def test_each_attempt_keeps_its_own_points_and_a_retry_goes_on_from_the_furthest_of_its_lineage(tmp_path: Path):
    from experiments.points import STATE, WEIGHTS
    from sweeps.store.resume_points import PointKeeper, fetch_point

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "points")
    run_id = tracker.start_run("trial-0", None, {}, {})

    def point(epoch: int) -> Path:
        folder = tmp_path / f"point-{epoch}"
        folder.mkdir(exist_ok=True)
        (folder / WEIGHTS).write_bytes(b"weights")
        (folder / STATE).write_text(json.dumps({"epoch": epoch, "history": {}, "counters": {}, "done": False}))
        return folder

    first, retry = PointKeeper(tracker, run_id, 0, 42), PointKeeper(tracker, run_id, 1, 42)
    first(point(1), 1)
    first(point(2), 2)
    assert fetch_point(tracker, run_id, [0], 42, tmp_path / "w1").epoch == 2  # the retry (attempt 1) goes on from 2
    retry(point(3), 3)
    first(point(4), 4)  # the first attempt, still running somewhere, moves on: it removes its own epoch 2 only
    first(point(5), 5)
    assert fetch_point(tracker, run_id, [1], 42, tmp_path / "w2").epoch == 3  # the retry's own point is intact
    assert fetch_point(tracker, run_id, [0, 1], 42, tmp_path / "w3").epoch == 5  # the furthest of a lineage
    assert fetch_point(tracker, run_id, [2], 42, tmp_path / "w4") is None
