"""End to end on real data: the sweep command, its Optuna study, its MLflow runs, its report, and resuming."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest

import experiments.train
import sweeps
from sweeps.cli import main
from sweeps.store.status import problems
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.tracking import Tracker, tracking_uri

pytestmark = pytest.mark.slow

TINY_MLP = """\
dataset: fashion_mnist
model: mlp
train: {{epochs: 2, batch_size: 256}}
params:
  units: {{type: categorical, choices: [32, 64]}}
  dropout: {{type: float, low: 0.0, high: 0.3}}
sweep:
  repeats: {repeats}
  sampler: {{name: random}}
  pruner: {pruner}
"""


def study(root: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(default_storage(root)))


def runs(root: Path, experiment: str) -> pd.DataFrame:
    mlflow.set_tracking_uri(tracking_uri(root))
    return mlflow.search_runs(experiment_names=[experiment])


def write_space(root: Path, name: str, repeats: int = 1, pruner: str = "{name: none}") -> None:
    (root / "search_spaces" / f"{name}.yaml").write_text(textwrap.dedent(TINY_MLP.format(repeats=repeats, pruner=pruner)))


# The quick CNN sweep in the supervised worker processes (the default path) is checked, and continued, by
# tests/test_report.py's test_quick_cnn_sweep_tracks_every_trial_and_resumes, on the sweep its report tests read.


# Repeats as nested runs whose mean is the objective: tests/test_report.py's
# test_repeats_are_nested_runs_and_the_objective_is_their_mean, on the two-seed sweep its report tests read.


def test_pruned_trials_are_finished_and_logged_as_pruned(project: Path):
    write_space(project, "pruned", pruner="{name: threshold, options: {lower: 1.1}}")
    assert main(["run", "pruned", "--quick", "--no-report"]) == 0
    trials = study(project, "pruned-quick").get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED] * 2
    found = runs(project, "pruned-quick")
    trial_runs = found[found["tags.sweeps.kind"] == "trial"]
    assert (trial_runs["tags.sweeps.state"] == "PRUNED").all()
    assert (trial_runs["tags.sweeps.stop_reason"] == "pruned").all()
    assert (trial_runs["metrics.epochs"] == 1).all()


def test_a_failing_trial_keeps_its_traceback_and_repeated_failures_stop_the_sweep(project: Path, monkeypatch, capsys):
    def broken_builder(family, params, input_shape, num_classes, front=None, target=None):
        raise ValueError(f"cannot build {family} with {sorted(params)}")

    monkeypatch.setattr(experiments.train, "build_for_data", broken_builder)
    write_space(project, "broken")
    assert main(["run", "broken", "--quick", "--trials", "5", "--no-report"]) == 1
    assert "3 trials in a row failed with: ValueError: cannot build mlp" in capsys.readouterr().err
    trials = study(project, "broken-quick").get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 3
    found = runs(project, "broken-quick")
    trial_runs = found[found["tags.sweeps.kind"] == "trial"]
    assert (trial_runs["status"] == "FAILED").all()
    client = mlflow.MlflowClient()
    text = client.download_artifacts(trial_runs["run_id"].iloc[0], "traceback.txt")
    assert "ValueError: cannot build mlp" in Path(text).read_text()
    assert found.loc[found["tags.sweeps.kind"] == "sweep", "status"].item() == "FAILED"
    assert main(["report"]) == 0  # a study with nothing but failures still gets its page
    assert "No completed trial yet" in (project / "reports" / "broken-quick.html").read_text()


@pytest.mark.parametrize("sig, per_process", [(signal.SIGINT, 0), (signal.SIGTERM, 0), (signal.SIGTERM, 5)])
def test_an_interrupted_sweep_leaves_nothing_running_and_resumes(project: Path, sig, per_process):
    slow = TINY_MLP.format(repeats=1, pruner="{name: none}").replace("batch_size: 256", "batch_size: 8")
    (project / "search_spaces" / "slow.yaml").write_text(slow)  # an epoch of seconds: the stop lands inside it
    command = [sys.executable, "-m", "sweeps.cli", "run", "slow", "--quick", "--trials", "50", "--no-report",
               "--trials-per-process", str(per_process)]  # 5: the signal reaches the supervisor, which passes it on
    proc = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    for line in proc.stdout:  # wait until the first trial is training
        if line.startswith("Epoch 1/") or time.time() > deadline:
            break
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err  # 130 for Ctrl-C, 143 for SIGTERM
    assert "run the same command to continue" in err and "Traceback" not in err
    states = {t.state for t in study(project, "slow-quick").get_trials()}
    assert optuna.trial.TrialState.RUNNING not in states
    found = runs(project, "slow-quick")
    assert "RUNNING" not in set(found["status"])
    assert set(found.loc[found["tags.sweeps.kind"] == "sweep", "status"]) == {"KILLED"}

    stopped = [t for t in study(project, "slow-quick").get_trials() if t.user_attrs.get("fail_reason") == "interrupted"]
    assert len(stopped) == 1
    assert main(["run", "slow", "--quick", "--trials", "1", "--no-report"]) == 0  # the same study goes on
    resumed = [t for t in study(project, "slow-quick").get_trials() if t.state.name == "COMPLETE"]
    assert [(t.system_attrs.get("failed_trial"), t.params) for t in resumed] == [(stopped[0].number, stopped[0].params)]


def test_a_secondary_objective_gives_a_pareto_front(project: Path):
    space = TINY_MLP.format(repeats=1, pruner="{name: none}").replace("sweep:", "objective: {secondary: param_count}\nsweep:")
    (project / "search_spaces" / "pareto.yaml").write_text(textwrap.dedent(space))
    assert main(["run", "pareto", "--quick", "--trials", "3"]) == 0
    found = study(project, "pareto-quick")
    assert [d.name for d in found.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert all(len(t.values) == 2 and t.values[1] in (784 * 32 + 32 + 330, 784 * 64 + 64 + 650) for t in found.get_trials())
    page = (project / "reports" / "pareto-quick.html").read_text()
    assert "Pareto front: val_accuracy against param_count" in page and "param_count" in page


@pytest.mark.parametrize("tuner", ["random", "hyperband"])
def test_keras_tuner_engine_runs_the_same_space_into_the_same_stores(project: Path, tuner):
    write_space(project, "tiny")
    assert main(["run", "tiny", "--quick", "--engine", "kerastuner", "--tuner", tuner, "--trials", "3", "--no-report"]) == 0
    name = "tiny-kerastuner-quick"
    found = study(project, name)
    done = [t for t in found.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 2 and all(t.params["units"] in (32, 64) and 0 <= t.params["dropout"] <= 0.3 for t in done)
    assert problems(found, Tracker(tracking_uri(project), name, create=False)) == []
    runs_ = runs(project, name)
    assert set(runs_["tags.sweeps.engine"]) == {"kerastuner"}
    assert main(["report"]) == 0
    assert f'href="{name}.html"' in (project / "reports" / "summary.html").read_text()


def test_hyperband_promotions_continue_from_the_earlier_weights(project: Path):
    from rich.console import Console

    from sweeps.execution.launch import start_sweep
    from sweeps.search.options import SweepOptions
    from sweeps.space.space import load_space

    write_space(project, "tiny")
    space, quiet = load_space("tiny", project / "search_spaces"), Console(quiet=True)
    options = SweepOptions(trials=4, subset=1500, max_epochs=3, engine="kerastuner", tuner="hyperband")
    start_sweep(space, project, options, quiet)  # TRIALS ends it inside its brackets (6 trials in all at 3 epochs)
    assert len(study(project, "tiny-kerastuner").get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 4
    start_sweep(space, project, dataclasses.replace(options, trials=100), quiet)  # the brackets' end ends it now
    assert len(study(project, "tiny-kerastuner").get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 6
    trials = runs(project, "tiny-kerastuner")
    trials = trials[trials["tags.sweeps.kind"] == "trial"]
    promoted = trials[trials["params.initial_epoch"].notna()]
    assert len(promoted) >= 1 and len(trials) > len(promoted)  # Hyperband: 1-epoch rounds, then promotions
    tracker = Tracker(tracking_uri(project), "tiny-kerastuner", create=False)
    for _, run in promoted.iterrows():
        start = int(run["params.initial_epoch"])
        assert start >= 1 and run["metrics.epochs"] <= 3 - start
        assert tracker.metric_history(run["run_id"], ("val_accuracy",))["epoch"].iloc[0] == start + 1
    # The weights came from the earlier trials' MLflow checkpoints: each promoted Keras Tuner trial's run was read.
    by_kt_id = {t.user_attrs["kerastuner_trial"]: t for t in study(project, "tiny-kerastuner").get_trials()}
    read = {p.name for p in (project / ".sweeps" / "cache").iterdir()}
    hyperband = {kt_trial.trial_id: kt_trial for kt_trial in _kerastuner_trials(project / ".sweeps" / "kerastuner" / "tiny-kerastuner")}
    earlier = {hyperband[k].hyperparameters.values["tuner/trial_id"] for k in by_kt_id
               if "tuner/trial_id" in hyperband[k].hyperparameters.values}
    assert earlier and {by_kt_id[k].user_attrs["mlflow_run_id"] for k in earlier} <= read


def _kerastuner_trials(project_dir: Path) -> list:
    import keras_tuner as kt

    return [kt.engine.trial.Trial.load(str(path)) for path in project_dir.glob("trial_*/trial.json")]


def test_bench_measures_overhead_and_search_quality(project: Path, capsys):
    write_space(project, "tiny")
    # The three searches at once, each long enough to complete a trial (one the budget cuts is no result) beside the
    # other two and TensorFlow's start on 2 cores. (The pruning part has a test of its own, below.)
    assert main(["bench", "tiny", "--budget", "15s", "--trials", "2", "--subset", "1500", "--parts",
                 "overhead,search", "--together"]) == 0
    results = json.loads((project / "reports" / "bench.json").read_text())
    assert results["overhead"]["plain_s_per_epoch"] > 0 and results["overhead"]["ratio"] > 0
    searches = {k: v for k, v in results["search_quality"].items() if k != "about"}
    assert set(searches) == {"optuna", "random_search", "kerastuner_hyperband"}
    assert all(row["trials"] >= 1 and row["exit_status"] == 0 for row in searches.values())
    assert all(row["best_so_far"] and row["best_so_far"][0]["minutes"] > 0 for row in searches.values())
    assert results["search_quality"]["about"]["budget_s"] == 15 and results["search_quality"]["about"]["together"]
    assert "framework overhead" in capsys.readouterr().out
    assert "Benchmark" in (project / "reports" / "summary.html").read_text()


def test_bench_pruning_part_compares_the_space_with_and_without_its_pruner(project: Path):
    write_space(project, "tiny", pruner="{name: threshold, options: {lower: 0.999, n_warmup_steps: 1}}")  # prunes all
    assert main(["bench", "tiny", "--trials", "2", "--subset", "1500", "--parts", "pruning"]) == 0
    pruning = json.loads((project / "reports" / "bench.json").read_text())["pruning"]
    assert pruning["with_pruner"]["pruned"] == 2 and pruning["without_pruner"]["pruned"] == 0


def test_a_warm_started_sweep_learns_from_the_earlier_study_and_reports_only_its_own_trials(project: Path, capsys):
    small = ["--trials", "2", "--subset", "1500", "--confirm", "0"]
    write_space(project, "tiny")
    assert main(["run", "tiny", *small, "--no-report"]) == 0
    capsys.readouterr()
    # The same study on another sample of the data: refused before anything is written (its trials would be ranked
    # against the first two as if trained on the same rows).
    assert main(["run", "tiny", "--trials", "3", "--subset", "1600", "--confirm", "0", "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "study tiny trained its trials on a 1500-row sample (--subset 1500); this run asks " \
        "for a 1600-row sample (--subset 1600)" in err[0] and "run it with --subset 1500" in err[0]
    assert len(study(project, "tiny").get_trials()) == 2
    assert len(runs(project, "tiny").query("`tags.sweeps.kind` == 'sweep'")) == 1  # no sweep run of its own
    write_space(project, "tiny2")
    path = project / "search_spaces" / "tiny2.yaml"
    path.write_text(path.read_text() + "  warm_start: nope\n")
    assert main(["run", "tiny2", *small]) == 2  # one line naming the field; nothing created
    assert "tiny2.yaml: sweep.warm_start: 'nope' is not a study in this storage (studies: tiny)" in capsys.readouterr().err
    path.write_text(path.read_text().replace("nope", "tiny"))
    assert main(["run", "tiny2", *small]) == 0
    assert "warm start: 2 finished trials of study tiny copied in" in capsys.readouterr().out
    trials = study(project, "tiny2").get_trials()
    assert [t.user_attrs.get("warm_start_from") for t in trials] == ["tiny#0", "tiny#1", None, None]
    assert len(pd.read_csv(project / "reports" / "tiny2" / "trials.csv")) == 2  # its own trials only
    tracker = Tracker(tracking_uri(project), "tiny2", create=False)
    assert problems(study(project, "tiny2"), tracker) == []  # the copies need no runs here


def test_the_winner_is_confirmed_on_new_seeds_counted_as_its_repeats(project: Path, capsys):
    from sweeps.results.read import collect_study

    write_space(project, "tiny", pruner="{name: threshold, options: {lower: 0.0}}")  # a pruner, not for confirmations
    assert main(["run", "tiny", "--quick", "--trials", "2", "--confirm", "2", "--no-report"]) == 0
    trials = study(project, "tiny-quick").get_trials()
    winner = max((t for t in trials[:2] if t.value is not None), key=lambda t: t.value)
    confirmation = trials[2]
    assert len(trials) == 3 and confirmation.state == optuna.trial.TrialState.COMPLETE
    assert confirmation.user_attrs["confirms"] == winner.number and confirmation.params == winner.params
    assert confirmation.user_attrs["seeds"] == [43, 44]  # after the search's seed 42
    found = runs(project, "tiny-quick")
    repeat_runs = found[found["tags.sweeps.kind"] == "repeat"]
    assert sorted(repeat_runs["tags.sweeps.seed"].astype(int)) == [43, 44]
    assert (found.loc[found["tags.sweeps.trial"] == "2", "tags.sweeps.confirms"] == str(winner.number)).any()
    result = collect_study(open_storage(default_storage(project)), "tiny-quick", tracking_uri(project))
    best = result.best()
    assert len(result.trials) == 2 and best["number"] == winner.number  # no row of its own
    assert best["n_repeats"] == 2 and best["confirmation_seeds"] == 2  # the seed it was chosen on kept apart
    assert best["value_mean"] == pytest.approx(confirmation.value) and best["search_value"] == pytest.approx(winner.value)
    out = capsys.readouterr().out
    assert f"confirming the winner, trial {winner.number}, on 2 new seed(s)" in out
    assert f"best of tiny-quick: trial {winner.number} (found by sampler)" in out and "(n=2)" in out
    assert f"over its 2 confirmation seed(s) alone; the seed the search chose it on scored {winner.value:.4f}" in out
    assert main(["run", "tiny", "--quick", "--trials", "2", "--confirm", "2", "--no-report"]) == 0
    assert len(study(project, "tiny-quick").get_trials()) == 3  # confirmed once
    assert main(["run", "tiny", "--quick", "--trials", "3", "--confirm", "0", "--no-report"]) == 0
    trials = study(project, "tiny-quick").get_trials()  # the confirmation is not one of the 3 the search samples
    assert len(trials) == 4 and "confirms" not in trials[3].user_attrs


def digits_npz(path: Path) -> Path:
    """scikit-learn's 8×8 digits (1,797 images) as an .npz of numbers: a data set none of the other tests use."""
    import numpy as np
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    np.savez(path, x_train=x[:1400] / 16, y_train=y[:1400], x_test=x[1400:] / 16, y_test=y[1400:])
    return path


CUT = """\
dataset: {path: digits.npz}
model: mlp
train: {epochs: 1000, batch_size: 8, patience: 100}
params:
  units: {type: int, low: 16, high: 32}
sweep: {n_trials: 3, timeout: TIMEOUT, sampler: {name: random}, pruner: {name: none}}
"""


# In this process; in the supervised workers `sweep run` starts (whose TensorFlow import is part of the budget).
@pytest.mark.parametrize(("per_process", "timeout", "minutes"), [(0, 12, "0.2"), (1, 25, "0.4167")])
def test_a_trial_the_budget_cuts_is_pruned_not_counted_and_never_the_winner(project: Path, capfd, per_process: int,
                                                                             timeout: int, minutes: str):
    digits_npz(project / "digits.npz")
    (project / "search_spaces" / "cut.yaml").write_text(CUT.replace("TIMEOUT", str(timeout)))
    assert main(["run", "cut", "--no-report", "--trials-per-process", str(per_process)]) == 0
    trials = study(project, "cut").get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED]
    assert trials[0].user_attrs["stop_reasons"] == ["time_budget"] and len(trials[0].intermediate_values) == 1
    assert sweeps.best("cut") is None
    out = capfd.readouterr().out
    assert "cut by the time budget at epoch" in out
    assert f"study cut: 0 finished trials of 3 — ended: the time budget of {minutes} min (sweep.timeout) was spent" in out


def test_a_trial_another_process_took_over_goes_on_as_its_retry_and_the_worker_goes_on(project: Path, monkeypatch,
                                                                                         capsys):
    from experiments.models import build_for_data
    from sweeps.search.retries import _fail, queue_retry

    def taken_over_while_building(*args, **kwargs):  # another worker takes this one for dead, once
        found = study(project, "tiny-quick")
        running = found.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        if not found.get_trials(states=(optuna.trial.TrialState.FAIL,)):
            storage = open_storage(default_storage(project))
            assert _fail(storage, found, running[0], "worker died")
            assert queue_retry(found, storage.get_trial(running[0]._trial_id))
        return build_for_data(*args, **kwargs)

    write_space(project, "tiny")
    monkeypatch.setattr(experiments.train, "build_for_data", taken_over_while_building)
    assert main(["run", "tiny", "--quick", "--no-report"]) == 0
    assert "ended by another process meanwhile" in capsys.readouterr().out
    trials = study(project, "tiny-quick").get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].params == trials[0].params
    assert main(["status", "tiny", "--quick"]) == 0 and "consistent" in capsys.readouterr().out
    client = mlflow.MlflowClient()
    for run_id in runs(project, "tiny-quick")["run_id"]:  # the taken-over attempt logged no epoch beside its retry
        steps = [m.step for m in client.get_metric_history(run_id, "loss")]
        assert len(steps) == len(set(steps)), (run_id, steps)


FAILS_IN_WORKERS = """\
import os

import keras


def build(params, input_shape, num_classes):  # builds for the command's check, fails in every trial
    if "SWEEPS_WORKER" in os.environ:
        raise ValueError("no model in a worker")
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(num_classes, activation="softmax")])
"""


def test_three_failures_in_a_row_stop_a_sweep_whose_workers_run_one_trial_each(project: Path, capfd):
    (project / "failing.py").write_text(FAILS_IN_WORKERS)
    write_space(project, "failing")
    space = project / "search_spaces" / "failing.yaml"
    space.write_text(space.read_text().replace("model: mlp", "model: failing:build").replace("units", "width"))
    assert main(["run", "failing", "--quick", "--trials", "20", "--trials-per-process", "1", "--no-report"]) == 1
    assert "3 trials in a row failed with: ValueError: no model in a worker" in capfd.readouterr().err
    assert [t.state.name for t in study(project, "failing-quick").get_trials()] == ["FAIL"] * 3
