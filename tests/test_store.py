"""The stores on their own: the model registry under racing workers, damaged store files."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from sweeps.errors import MissingCheckpoint, SpaceError, StoreError
from sweeps.objective.checkpoints import load_checkpoint
from sweeps.store.registry import keep_first_version
from sweeps.store.storage import check_tracking, open_storage
from sweeps.store.tracking import Tracker


def test_two_workers_registering_the_same_best_trial_keep_one_version(tmp_path, monkeypatch):
    """Both saw no version of trial 3 and both registered one: each then keeps the lowest, deleting its own."""
    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts under ./mlruns
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("demo")
    run = client.create_run(client.create_experiment("demo")).info.run_id
    first, second = (client.create_model_version("demo", f"runs:/{run}/best_model", run_id=run, tags={"trial": "3"})
                     for _ in range(2))
    assert keep_first_version(client, "demo", 3, int(second.version)) == int(first.version)
    assert keep_first_version(client, "demo", 3, int(first.version)) == int(first.version)
    versions = client.search_model_versions("name='demo'")
    assert [v.version for v in versions] == [first.version]


def _journal_with_trials(path, n: int = 3) -> None:
    study = optuna.create_study(study_name="demo", storage=open_storage(str(path)))
    for i in range(n):
        study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), float(i))


def test_a_journal_cut_mid_record_is_mended_and_loses_no_finished_trial(tmp_path, capsys):
    path = tmp_path / "optuna.journal"
    _journal_with_trials(path)
    whole = path.read_bytes()
    with open(path, "ab") as f:  # power lost while the next record was being written
        f.write(b'{"op_code": 4, "worker_id": "host:1", "trial_id": 3, "sta')
    study = optuna.load_study(study_name="demo", storage=open_storage(str(path)))
    assert "its last record was cut short" in capsys.readouterr().err
    assert [t.value for t in study.trials] == [0.0, 1.0, 2.0]
    assert path.read_bytes() == whole and len(list(tmp_path.glob("optuna.journal.cut-*"))) == 1
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 3.0)  # and the same store goes on
    assert len(optuna.load_study(study_name="demo", storage=open_storage(str(path))).trials) == 4


def test_a_journal_damaged_in_the_middle_is_one_clear_error(tmp_path):
    path = tmp_path / "optuna.journal"
    _journal_with_trials(path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:2], b"\x00\x00 not json\n", *lines[2:]]))
    with pytest.raises(StoreError, match=r"the journal file is damaged .*remove the damaged lines by hand"):
        open_storage(str(path))


def test_a_damaged_or_locked_mlflow_store_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not an SQLite database, it was overwritten " * 100)
    with pytest.raises(StoreError, match=r"mlflow.db: the MLflow store is damaged \(file is not a database\)"):
        check_tracking(f"sqlite:///{db}")
    db.unlink()
    MlflowClient(tracking_uri=f"sqlite:///{db}").create_experiment("demo")
    check_tracking(f"sqlite:///{db}")  # a sound store passes
    monkeypatch.setattr("sweeps.store.storage.SQLITE_WAIT_S", 0.2)
    holder = sqlite3.connect(db)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match=r"the MLflow store cannot be read \(database is locked\)"):
            check_tracking(f"sqlite:///{db}")
    finally:
        holder.rollback()
        holder.close()


def test_a_vanished_artifact_folder_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "demo")
    run = tracker.start_run("trial-0")
    (tmp_path / "best.keras").write_bytes(b"weights")
    tracker.log_artifact(run, tmp_path / "best.keras", "checkpoint")
    artifacts = Path(tracker.client.get_run(run).info.artifact_uri.removeprefix("file://"))
    shutil.rmtree(artifacts)
    with pytest.raises(MissingCheckpoint, match=rf"MLflow run {run}: its checkpoint cannot be read .*moved or deleted"):
        load_checkpoint(tracker, run, tmp_path / "cache")


def test_studies_live_beside_mlflow_db_and_an_older_project_keeps_its_journal(tmp_path):
    from sweeps.store.storage import default_storage

    assert default_storage(tmp_path) == str(tmp_path.resolve() / "optuna.journal")
    (tmp_path / ".sweeps").mkdir()
    (tmp_path / ".sweeps" / "optuna.journal").write_text("")  # a project from before: its studies stay found
    assert default_storage(tmp_path) == str(tmp_path.resolve() / ".sweeps" / "optuna.journal")
    (tmp_path / "optuna.journal").write_text("")  # once the user moved (or made) the new one, it wins
    assert default_storage(tmp_path) == str(tmp_path.resolve() / "optuna.journal")


def test_a_trial_finishing_while_another_process_looks_for_orphans_keeps_its_run(tmp_path):
    from sweeps.search.retries import close_orphan_runs
    from sweeps.store.tracking import Tracker

    study = optuna.create_study()
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "race")
    trial = study.ask()
    run_id = tracker.start_run("trial-0", tags={"sweeps.kind": "trial", "sweeps.trial": trial.number})
    read_runs = tracker.runs

    def runs_then_the_owner_finishes(*args, **kwargs):
        snapshot = read_runs(*args, **kwargs)  # the run is RUNNING in what this process read ...
        tracker.set_tags(run_id, {"sweeps.state": "PRUNED"})  # ... and then its owner finishes the trial
        tracker.end_run(run_id, "FINISHED")
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return snapshot

    tracker.runs = runs_then_the_owner_finishes
    assert close_orphan_runs(study, tracker) == 0
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["sweeps.state"] == "PRUNED"


def test_workers_starting_trials_at_once_agree_which_is_surplus():
    from sweeps.search.study import is_surplus

    study = optuna.create_study()
    done = study.ask()
    study.tell(done, 0.5)
    first, second, third = study.ask(), study.ask(), study.ask()  # three workers asked at the same moment
    assert not is_surplus(study, first.number, target=3) and not is_surplus(study, second.number, target=3)
    assert is_surplus(study, third.number, target=3)  # 1 finished + 2 running before it make 3


def test_a_trial_whose_worker_was_never_recorded_is_failed_after_the_grace(monkeypatch):
    from sweeps.search.retries import fail_dead_trials

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    lost = study.ask()  # created, then its process lost the store before it recorded itself
    assert fail_dead_trials(storage, study) == []  # within the grace period: maybe still starting
    monkeypatch.setenv("SWEEPS_GRACE_S", "0")
    assert fail_dead_trials(storage, study) == [lost.number]
    states = [t.state for t in study.get_trials()]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]  # failed, and queued again


def test_status_names_each_complete_trial_missing_its_repeats_test_metrics_or_checkpoint(tmp_path):
    from sweeps.store.status import problems

    study = optuna.create_study()
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "status")
    checkpoint = tmp_path / "best.keras"
    checkpoint.write_bytes(b"weights")
    for number, (metrics, saved) in enumerate([(True, True), (False, True), (True, False), (True, True)]):
        trial = study.ask()
        run_id = tracker.start_run(f"trial-{number}", tags={"sweeps.kind": "trial", "sweeps.trial": number})
        if number != 3:  # trial 3's run holds no repeat
            tracker.set_tags(run_id, {"sweeps.seed": 0})
        if metrics:
            tracker.log_metrics(run_id, {"test_accuracy": 0.9, "test_loss": 0.3})
        if saved:
            tracker.log_artifact(run_id, checkpoint, "checkpoint")
        tracker.end_run(run_id, "FINISHED")
        study.tell(trial, 0.9)
    found = problems(study, tracker)
    runs = tracker.runs().set_index("tags.sweeps.trial")["run_id"]
    assert sorted(found) == sorted([f"trial 1 run {runs['1']} has no test metrics",
                                    f"trial 2 run {runs['2']} has no checkpoint",
                                    "trial 3 is COMPLETE but no MLflow run holds its repeats"])


def test_a_stopped_trial_its_worker_could_not_queue_is_queued_once_by_the_next_start():
    from sweeps.search.retries import INTERRUPTED_TRIAL, queue_left_interrupted

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    stopped = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    stopped.set_user_attr("fail_reason", INTERRUPTED_TRIAL)  # its worker was killed before it queued it
    study.tell(stopped, state=optuna.trial.TrialState.FAIL)
    assert queue_left_interrupted(storage, study) == [stopped.number]
    assert queue_left_interrupted(storage, study) == []  # not twice
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].params == stopped.params


def test_a_winner_is_queued_for_confirmation_once_owed_beyond_trials_and_again_only_after_a_failed_one():
    from sweeps.search.confirm import queue_confirmation
    from sweeps.search.study import is_surplus
    from sweeps.space.space import load_space
    from sweeps.store.trials import count_finished, target_reached

    from .conftest import SPACES

    space = load_space("fashion_mlp", SPACES)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for value in (0.8, 0.9, 0.7):
        study.add_trial(optuna.trial.create_trial(params={"x": value}, distributions=dist, value=value))
    assert queue_confirmation(study, space, 2).number == 1
    assert queue_confirmation(study, space, 2).number == 1  # still waiting: not queued twice
    assert not target_reached(study, 3) and not is_surplus(study, 3, 3)  # owed, though the search has its 3
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"] == {"x": 0.9}
    assert waiting[0].user_attrs == {"confirms": 1, "seeds": [43, 44]}
    trial = study.ask()
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert queue_confirmation(study, space, 2).number == 1  # the failed one does not count: queued again
    trial = study.ask()
    study.tell(trial, 0.99)  # a confirmation scoring higher is still not a winner of the search
    assert queue_confirmation(study, space, 2) is None and queue_confirmation(study, space, 0) is None
    assert count_finished(study) == 3 and target_reached(study, 3) and not target_reached(study, 4)


def test_a_retry_of_a_lost_trial_is_owed_even_when_fresh_trials_fill_the_target(monkeypatch):
    from sweeps.processes import worker_id
    from sweeps.search.retries import fail_dead_trials
    from sweeps.search.study import is_surplus
    from sweeps.store.keys import WORKER
    from sweeps.store.trials import target_reached

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    study.tell(study.ask(), 0.5)
    lost = study.ask()  # its worker dies before it records itself ...
    fresh = study.ask()  # ... while a living worker begins a fresh trial
    fresh.set_user_attr(WORKER, worker_id())
    monkeypatch.setenv("SWEEPS_GRACE_S", "0")
    assert fail_dead_trials(storage, study) == [lost.number]
    study.tell(fresh, 0.6)  # 2 finished: the target of 2, yet the lost trial's retry waits
    assert not target_reached(study, target=2)
    retry = study.ask()  # Optuna hands out a waiting trial first
    assert not is_surplus(study, retry.number, target=2)
    study.tell(retry, 0.7)
    assert target_reached(study, target=2)
    study.enqueue_trial({})  # a waiting trial that retries nothing (a baseline) is no debt: TRIALS may end first
    assert target_reached(study, target=2)


WARM_SPACE = """\
dataset: fashion_mnist
model: mlp
objective: {metric: %s}
params:
  units: {type: categorical, choices: [32, 64]}
  dropout: {type: float, low: 0.0, high: %s}
sweep:
  sampler: {name: tpe, options: {n_startup_trials: 2}}
  baselines:
    - params: {units: 64, dropout: 0.1}
  warm_start: %s
"""


def _earlier_study(storage, metric: str = "val_accuracy", quick: bool = False) -> optuna.Study:
    """An earlier study of the space (dropout up to 0.5): two finished trials, a pruned one, one outside the new range,
    a confirmation, a baseline of its own epoch budget."""
    study = optuna.create_study(study_name="earlier", storage=storage, direction="maximize")
    study.set_user_attr("space_yaml", WARM_SPACE % (metric, 0.5, "null"))
    study.set_user_attr("space", "earlier")
    study.set_user_attr("quick", quick)
    dists = {"units": optuna.distributions.CategoricalDistribution([32, 64]),
             "dropout": optuna.distributions.FloatDistribution(0.0, 0.5)}
    for units, dropout, value, attrs in ((32, 0.1, 0.85, {}), (64, 0.2, 0.88, {}), (64, 0.45, 0.9, {}),
                                         (64, 0.2, 0.89, {"confirms": 1}), (32, 0.0, 0.8, {"epoch_budget": 2})):
        study.add_trial(optuna.trial.create_trial(params={"units": units, "dropout": dropout}, distributions=dists,
                                                  value=value, user_attrs=attrs))
    study.add_trial(optuna.trial.create_trial(params={"units": 32, "dropout": 0.25}, distributions=dists,
                                              state=optuna.trial.TrialState.PRUNED, intermediate_values={0: 0.5}))
    return study


def test_a_warm_start_copies_the_earlier_studys_finished_trials_in_range_once_not_as_the_sweeps_own(tmp_path: Path):
    from rich.console import Console

    from sweeps.search.study import open_study
    from sweeps.space.space import parse_space
    from sweeps.store.trials import best_trial, count_finished, target_reached

    storage = open_storage(str(tmp_path / "optuna.journal"))
    _earlier_study(storage)
    space = parse_space(WARM_SPACE % ("val_accuracy", 0.3, "earlier"), tmp_path / "warm.yaml")
    study = open_study(space, storage, False, Console(quiet=True))
    copies = [t for t in study.get_trials() if "warm_start_from" in t.user_attrs]
    # dropout 0.45 is outside this space's range; a confirmation and a baseline of its own budget are not copied
    assert sorted(t.user_attrs["warm_start_from"] for t in copies) == ["earlier#0", "earlier#1", "earlier#5"]
    assert [t.state.name for t in copies] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert copies[0].distributions["dropout"] == optuna.distributions.FloatDistribution(0.0, 0.3)  # this space's
    assert study.user_attrs["warm_started"] == {"study": "earlier", "trials": 3}
    assert study.get_trials()[0].state == optuna.trial.TrialState.WAITING  # the baseline still runs first
    assert count_finished(study) == 0 and best_trial(study) is None and not target_reached(study, 1)
    optuna.delete_study(study_name="earlier", storage=storage)  # a resumed sweep needs it no more
    study = open_study(space, storage, False, Console(quiet=True))  # a second process, a resumed sweep
    assert len(study.get_trials()) == 4  # copied once
    trial = study.ask()  # the baseline, then the sampler's first pick is already TPE's model (2 start-up trials)
    study.tell(trial, 0.8)
    assert best_trial(study).number == trial.number and count_finished(study) == 1
    quick = open_study(space, storage, True, Console(quiet=True))  # a smoke run starts cold (its source is gone too)
    assert quick.study_name == "warm-quick" and len(quick.get_trials()) == 1


def test_a_study_takes_trials_of_the_sample_it_began_with_only(tmp_path: Path):
    from rich.console import Console

    from sweeps.errors import UsageError
    from sweeps.search.study import open_study
    from sweeps.space.space import parse_space
    from sweeps.store.keys import TRAIN_SUBSET

    storage = open_storage(str(tmp_path / "optuna.journal"))
    space = parse_space(WARM_SPACE % ("val_accuracy", 0.3, "null"), tmp_path / "warm.yaml")
    quiet = Console(quiet=True)
    assert open_study(space, storage, False, quiet).user_attrs[TRAIN_SUBSET] is None  # every training row
    assert open_study(space, storage, False, quiet, subset=None).study_name == "warm"
    with pytest.raises(UsageError, match=r"on every training row \(no --subset\); this run asks for a 500-row "
                                         r"sample \(--subset 500\).*run it without --subset"):
        open_study(space, storage, False, quiet, subset=500)
    assert open_study(space, storage, True, quiet, subset=6000).study_name == "warm-quick"  # a study of its own
    study = optuna.load_study(study_name="warm", storage=storage)
    study.set_user_attr(TRAIN_SUBSET, 2000)
    with pytest.raises(UsageError, match=r"on a 2000-row sample \(--subset 2000\); this run asks for every "
                                         r"training row \(no --subset\).*run it with --subset 2000"):
        open_study(space, storage, False, quiet)
    assert open_study(space, storage, False, quiet, subset=2000).user_attrs[TRAIN_SUBSET] == 2000
    old = optuna.create_study(study_name="old", storage=storage)  # a study from before the sample was recorded
    older = parse_space((WARM_SPACE % ("val_accuracy", 0.3, "null")), tmp_path / "old.yaml")
    assert old.user_attrs == {} and open_study(older, storage, False, quiet, subset=300).user_attrs[TRAIN_SUBSET] == 300


def test_a_study_takes_trials_of_the_data_it_began_with_only(tmp_path: Path):
    from rich.console import Console

    from sweeps.errors import UsageError
    from sweeps.search.study import open_study
    from sweeps.space.space import parse_space
    from sweeps.store.keys import TRAINED_ON

    storage = open_storage(str(tmp_path / "optuna.journal"))
    space = parse_space(WARM_SPACE % ("val_accuracy", 0.3, "null"), tmp_path / "warm.yaml")
    quiet, first, edited = Console(quiet=True), "a" * 32, "b" * 32
    assert open_study(space, storage, False, quiet, data_md5=first).user_attrs[TRAINED_ON] == first
    assert open_study(space, storage, False, quiet, data_md5=first).study_name == "warm"  # the same data goes on
    with pytest.raises(UsageError, match=r"study warm trained its trials on fashion_mnist as it was then \(md5 "
                                         r"aaaaaaaa\); it has changed since \(md5 bbbbbbbb\).*copy the space file"):
        open_study(space, storage, False, quiet, data_md5=edited)
    assert optuna.load_study(study_name="warm", storage=storage).user_attrs[TRAINED_ON] == first  # nothing recorded
    assert open_study(space, storage, True, quiet, data_md5=edited).user_attrs[TRAINED_ON] == edited  # its own study
    old = optuna.create_study(study_name="old", storage=storage)  # a study from before the data was recorded
    older = parse_space((WARM_SPACE % ("val_accuracy", 0.3, "null")), tmp_path / "old.yaml")
    assert old.user_attrs == {} and open_study(older, storage, False, quiet, data_md5=edited).user_attrs[TRAINED_ON] == edited


@pytest.mark.parametrize("same", [True, False])
def test_a_warm_start_under_the_same_successive_halving_prunes_from_the_first_trial(tmp_path: Path, same):
    from rich.console import Console

    from sweeps.search.study import open_study
    from sweeps.space.space import parse_space

    halving = "  pruner: {name: successive_halving, options: {min_resource: 1, reduction_factor: 2}}\n"
    storage = open_storage(str(tmp_path / "optuna.journal"))
    source = optuna.create_study(study_name="earlier", storage=storage, direction="maximize",
                                 pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2))
    source.set_user_attr("space_yaml", (WARM_SPACE % ("val_accuracy", 0.5, "null")) + halving)
    source.set_user_attr("space", "earlier")
    for value in (0.8, 0.85, 0.9):
        trial = source.ask({"units": optuna.distributions.CategoricalDistribution([32, 64]),
                            "dropout": optuna.distributions.FloatDistribution(0.0, 0.5)})
        trial.report(value, 1)
        assert not trial.should_prune()  # what records its rung
        source.tell(trial, value)
    # Other rungs (from epoch 2) make the copies' values at epoch 1 no rung values of this sweep.
    now = WARM_SPACE % ("val_accuracy", 0.5, "earlier") + (halving if same else halving.replace("min_resource: 1", "min_resource: 2"))
    study = open_study(parse_space(now, tmp_path / "warm.yaml"), storage, False, Console(quiet=True))
    rungs = [t.system_attrs.get("completed_rung_0") for t in study.get_trials() if "warm_start_from" in t.user_attrs]
    assert rungs == ([0.8, 0.85, 0.9] if same else [None] * 3)
    first = study.ask()
    first.report(0.7, 1)  # worst of four: with the copies' rungs to compete with, not in the top half
    assert first.should_prune() == same


@pytest.mark.parametrize(("name", "metric", "quick", "why"), [
    ("nope", "val_accuracy", False, "'nope' is not a study in this storage (studies: earlier)"),
    ("warm", "val_accuracy", False, "'warm' is the study itself"),
    ("earlier", "val_accuracy", True, "'earlier' is a quick smoke run"),
    ("earlier", "val_loss", False, "'earlier' has objective"),
])
def test_a_warm_start_from_no_study_or_another_task_is_one_error_before_anything_is_written(tmp_path: Path, name,
                                                                                            metric, quick, why):
    from rich.console import Console

    from sweeps.search.study import open_study
    from sweeps.space.space import parse_space

    storage = open_storage(str(tmp_path / "optuna.journal"))
    _earlier_study(storage, metric, quick)
    with pytest.raises(SpaceError, match=re.escape(f"warm.yaml: sweep.warm_start: {why}")):
        open_study(parse_space(WARM_SPACE % ("val_accuracy", 0.3, name), tmp_path / "warm.yaml"), storage, False,
                   Console(quiet=True))
    assert [s.study_name for s in storage.get_all_studies()] == ["earlier"]


def _dead_worker() -> str:
    """The identity of a process of this machine that has ended."""
    import subprocess
    import sys

    from sweeps.processes import worker_id

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = worker_id(proc.pid)  # while it runs: its start time is part of it
    proc.kill()
    proc.wait()
    return dead


def test_a_retry_carries_its_params_and_lineage_not_the_dead_attempts_identity():
    from sweeps.search.retries import fail_dead_trials
    from sweeps.store.keys import FAIL_REASON, MLFLOW_RUN_ID, STOP_REASONS, WORKER
    from sweeps.store.trials import retry_history

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    for key, value in {WORKER: _dead_worker(), MLFLOW_RUN_ID: "run-1", STOP_REASONS: ["max_epochs"]}.items():
        trial.set_user_attr(key, value)
    trial.report(0.5, step=0)
    assert fail_dead_trials(storage, study) == [trial.number]
    retry = study.get_trials(states=(optuna.trial.TrialState.WAITING,))[0]
    assert retry.params == trial.params and retry.intermediate_values == {0: 0.5}
    assert retry.user_attrs == {MLFLOW_RUN_ID: "run-1"} and retry_history(retry) == [trial.number]
    assert FAIL_REASON not in retry.user_attrs

    popped = study.ask()  # a live worker takes the retry; before it records itself, another worker recovers
    assert popped.number == retry.number
    assert fail_dead_trials(storage, study) == []
    assert study.get_trials()[retry.number].state == optuna.trial.TrialState.RUNNING


def test_a_pid_given_to_a_later_process_is_not_the_dead_worker():
    import os

    from sweeps.processes import is_alive, worker_id

    me = worker_id()
    assert is_alive(me) is True and me.count(":") == 2
    assert is_alive(f"{me.rsplit(':', 1)[0]}:12.34") is False  # this pid, started at another time: another process
    assert is_alive(_dead_worker()) is False and is_alive(f"elsewhere:{os.getpid()}:1.0") is None


def test_stops_are_retried_always_crashes_up_to_the_cap_and_only_queued_ones_are_said_queued():
    from sweeps.search.retries import INTERRUPTED_TRIAL, MAX_CRASH_RETRIES, fail_dead_trials, queue_interrupted
    from sweeps.store.keys import FAIL_REASON, WORKER

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    study.enqueue_trial({})
    for _ in range(MAX_CRASH_RETRIES + 2):  # the user stops it again and again: it is owed every time
        trial = study.ask()
        trial.set_user_attr(FAIL_REASON, INTERRUPTED_TRIAL)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        assert queue_interrupted(storage, study, [trial.number]) == [trial.number]
    queued = []
    for _ in range(MAX_CRASH_RETRIES + 1):  # then its worker dies each time: retried up to the cap
        trial = study.ask()
        trial.set_user_attr(WORKER, _dead_worker())
        queued.append(fail_dead_trials(storage, study))
    assert queued == [[n] for n in range(MAX_CRASH_RETRIES + 2, 2 * MAX_CRASH_RETRIES + 2)] + [[]]
    assert study.get_trials()[-1].state == optuna.trial.TrialState.FAIL  # failed, not queued: said nowhere as queued
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_a_supervisors_worker_joins_its_commands_study_and_never_starts_one(tiny: Path):
    from rich.console import Console

    from sweeps.search.options import SweepOptions
    from sweeps.search.study import open_sweep
    from sweeps.space.space import load_space

    space = load_space("tiny", tiny / "search_spaces")
    with pytest.raises(StoreError, match="study tiny-quick is not in this worker's storage: on a cluster every node"):
        open_sweep(space, tiny, SweepOptions(quick=True), Console(quiet=True), create=False)
    assert optuna.get_all_study_names(open_storage(str(tiny / "optuna.journal"))) == []  # nothing created
    open_sweep(space, tiny, SweepOptions(quick=True), Console(quiet=True))  # the command creates it ...
    joined = open_sweep(space, tiny, SweepOptions(quick=True), Console(quiet=True), worker_index=1, create=False)
    assert joined.study.study_name == "tiny-quick"  # ... and its workers join it
