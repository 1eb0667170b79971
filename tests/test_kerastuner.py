"""The Keras Tuner engine declares the space through Keras Tuner's public hypermodel hook, building no model, and
trains exactly the params its oracle chose: beside trials queued in its study, and after a resume."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import keras_tuner as kt
import mlflow
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from sweeps.cli import main
from sweeps.objective.kerastuner import HPSuggester, SpaceHyperModel
from sweeps.search.options import SweepOptions
from sweeps.search.study import open_sweep
from sweeps.space.space import load_space
from sweeps.store.keys import KERASTUNER_TRIAL
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.tracking import tracking_uri

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
RUN = ["run", "tiny", "--quick", "--engine", "kerastuner", "--tuner", "random", "--trials", "2", "--no-report"]
STUDY = "tiny-kerastuner-quick"


def test_the_oracle_gets_every_param_of_the_space_and_nothing_is_built(tmp_path):
    space = load_space("fashion_cnn", SPACES)
    tuner = kt.RandomSearch(hypermodel=SpaceHyperModel(space), objective="val_accuracy", max_trials=1,
                            directory=str(tmp_path), project_name="declared")
    declared = {hp.name for hp in tuner.oracle.get_space().space}
    expected = set(space.suggest(HPSuggester(kt.HyperParameters())))
    assert declared == expected and {"learning_rate", "dropout", "filters_1"} <= declared
    assert SpaceHyperModel(space).build(kt.HyperParameters()) is None


def _study(root: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=open_storage(default_storage(root)))


def _oracle_choices(root: Path) -> dict[str, dict[str, Any]]:
    """The params Keras Tuner's oracle chose for each of its trials, from its project folder."""
    trials = [kt.engine.trial.Trial.load(str(path))
              for path in (root / ".sweeps" / "kerastuner" / STUDY).glob("trial_*/trial.json")]
    return {t.trial_id: t.hyperparameters.values for t in trials}


def _trained_what_the_oracle_chose(root: Path) -> list[FrozenTrial]:
    """The study's completed trials, each checked to have trained (Optuna params and MLflow run params) what the
    oracle chose for the Keras Tuner trial it ran."""
    chosen = _oracle_choices(root)
    mlflow.set_tracking_uri(tracking_uri(root))
    runs = mlflow.search_runs(experiment_names=[STUDY])
    done = [t for t in _study(root).get_trials() if t.state == TrialState.COMPLETE]
    for trial in done:
        assert trial.params == chosen[trial.user_attrs[KERASTUNER_TRIAL]], f"trial {trial.number}"
        run = runs[runs["tags.sweeps.trial"] == str(trial.number)]
        assert run["params.units"].item() == str(trial.params["units"])
    return done


@pytest.mark.slow
def test_each_trial_trains_its_oracles_params_beside_a_queued_trial(tiny: Path):
    sweep = open_sweep(load_space("tiny", tiny / "search_spaces"), tiny, SweepOptions(quick=True, engine="kerastuner"),
                       Console(quiet=True))
    sweep.study.enqueue_trial({"units": 17, "dropout": 0.25})  # as recovery queues an interrupted trial again
    assert main(RUN) == 0
    done = _trained_what_the_oracle_chose(tiny)
    assert len(done) == 2 and {"units": 17, "dropout": 0.25} not in [t.params for t in done]
    assert _study(tiny).get_trials()[0].state == TrialState.WAITING  # not the oracle's: left alone


@pytest.mark.slow
def test_a_sweep_interrupted_mid_trial_resumes_with_its_oracles_params_and_no_optuna_retry(tiny: Path):
    proc = subprocess.Popen([sys.executable, "-m", "sweeps.cli", *RUN], cwd=tiny, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.time() + 120
    for line in proc.stdout:  # wait until the first trial is training
        if line.startswith("Epoch 1/") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert [t.state for t in _study(tiny).get_trials()] == [TrialState.FAIL]

    assert main(RUN) == 0  # the same command: Keras Tuner runs its interrupted trial again, then its next one
    done = _trained_what_the_oracle_chose(tiny)
    assert sorted(t.user_attrs[KERASTUNER_TRIAL] for t in done) == sorted(_oracle_choices(tiny)) == ["0", "1"]
    assert [t.state for t in _study(tiny).get_trials()] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
