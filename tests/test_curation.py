"""Manual trials and curation: ``sweep enqueue`` queues a configuration the next worker trains; ``sweep exclude``
keeps a completed trial out of best (the report's winner, the registry's alias, the API) and ``sweep include`` lets
it back in; each misuse is one line, exit 2, nothing changed."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

import sweeps
from sweeps.cli import main
from sweeps.errors import UsageError
from sweeps.reporting.significance import seeds_table
from sweeps.reporting.space_page import leaderboard
from sweeps.results.read import _curation, collect_study
from sweeps.results.study_results import ranked, trials_table
from sweeps.search.curation import enqueue, exclude, include, parse_assignments
from sweeps.space.space import parse_space
from sweeps.store.keys import BEST_ALIAS, EXCLUDED, MODEL_EXCLUDED, MODEL_TRIAL, QUEUED_BY_HAND
from sweeps.store.registry import selected_versions
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.tracking import tracking_uri
from sweeps.store.trials import best_trial, target_reached
from tests.test_report_pages import snapshot

SPACE = parse_space("""\
dataset: fashion_mnist
model: mlp
params:
  units: {type: int, low: 16, high: 128, log: true}
  dropout: {type: float, low: 0.0, high: 0.3}
  activation: {type: categorical, choices: [relu, tanh]}
  batch_size: {type: int, low: 32, high: 256, step: 32}
""", Path("curated.yaml"))


def _study(values: list[float]) -> optuna.Study:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    for value in values:
        study.add_trial(optuna.trial.create_trial(params={"dropout": value / 4}, value=value,
                                                  distributions={"dropout": FloatDistribution(0, 0.3)}))
    return study


def test_set_values_are_read_as_their_params_types():
    params = parse_assignments(SPACE, ["units=64", "dropout=0", "activation=tanh", "batch_size=96"])
    assert params == {"units": 64, "dropout": 0.0, "activation": "tanh", "batch_size": 96}
    assert [type(v) for v in params.values()] == [int, float, str, int]


@pytest.mark.parametrize(("given", "says"), [
    (["width=64"], "--set width=64: not a param of this space (params: units, dropout, activation, batch_size)"),
    (["units=1000"], "--set units=1000: 1000 is outside the range 16 to 128"),
    (["units=64.5"], "--set units=64.5: 64.5 is not a whole number"),
    (["batch_size=100"], "--set batch_size=100: 100 is off the grid 32, 64, … 256 (step 32)"),
    (["activation=gelu"], "--set activation=gelu: 'gelu' is not one of the choices ['relu', 'tanh']"),
    (["units"], "--set 'units': expected NAME=VALUE"),
    (["units=64", "units=32"], "--set units: given twice"),
    ([], "--set: name at least one param"),
])
def test_a_value_the_space_could_not_sample_is_refused_naming_the_set(given, says):
    with pytest.raises(UsageError) as caught:
        parse_assignments(SPACE, given)
    assert str(caught.value).startswith(says)


def test_a_queued_configuration_is_trained_as_given_the_rest_sampled_and_is_owed():
    study = _study([0.91, 0.93])
    enqueue(study, parse_assignments(SPACE, ["units=17", "activation=tanh"]))
    assert not target_reached(study, 2)  # TRIALS reached, yet the queued trial must run
    trial = study.ask()
    params = SPACE.suggest(trial)
    assert (params["units"], params["activation"]) == (17, "tanh")
    assert 0 <= params["dropout"] <= 0.3  # not set: sampled
    assert trial.user_attrs[QUEUED_BY_HAND] is True


def test_an_excluded_trial_never_wins_and_include_undoes_it():
    study = _study([0.91, 0.95, 0.93])
    assert best_trial(study).number == 1
    exclude(study, 1, "  labels leaked into validation ")
    assert study.user_attrs[EXCLUDED] == {"1": "labels leaked into validation"}
    assert best_trial(study).number == 2
    assert include(study, 1) == "labels leaked into validation"
    assert best_trial(study).number == 1 and study.user_attrs[EXCLUDED] == {}


@pytest.mark.parametrize(("number", "reason", "says"), [
    (7, "x", "--trial 7: study"),
    (3, "x", "--trial 3: trial 3 is RUNNING; only a COMPLETE trial"),
    (0, " ", "--reason: say why trial 0 is excluded"),
    (0, None, "--reason: say why trial 0 is excluded"),
])
def test_a_wrong_exclusion_changes_nothing(number, reason, says):
    study = _study([0.91, 0.95, 0.93])
    study.ask()  # trial 3, running
    with pytest.raises(UsageError) as caught:
        exclude(study, number, reason)
    assert str(caught.value).startswith(says)
    assert EXCLUDED not in study.user_attrs
    with pytest.raises(UsageError, match="trial 0 is not excluded"):
        include(study, 0)


def test_the_trials_frame_ranks_no_excluded_or_infeasible_trial():
    raw = pd.DataFrame({"number": [0, 1, 2, 3], "state": ["COMPLETE"] * 4, "value": [0.91, 0.95, 0.93, 0.97],
                        "duration": pd.to_timedelta([1, 1, 1, 1], unit="s"),
                        "excluded": [None, "leaked", None, None], "infeasible": [False, False, False, True]})
    trials = trials_table(raw, pd.DataFrame(columns=["trial"]), "val_accuracy", maximise=True)
    assert list(trials["number"]) == [2, 0, 3, 1]  # those that rank first, best first; then the others
    assert list(ranked(trials)) == [True, True, False, False]


def test_an_infeasible_trial_is_marked_in_the_report_and_never_the_winner():
    study = _study([0.91, 0.95])
    study.add_trial(optuna.trial.create_trial(params={"dropout": 0.1}, distributions={"dropout": FloatDistribution(0, 0.3)},
                                              value=0.99, system_attrs={"constraints": [0.0, 0.5]}))
    raw = _curation(pd.DataFrame({"number": [0, 1, 2]}), study.trials, {"0": "a bug"})
    assert list(raw["excluded"].fillna("")) == ["a bug", "", ""] and list(raw["infeasible"]) == [False, False, True]
    result = snapshot()  # fashion_mlp: trial 2 the best, then 0
    result.trials = result.trials.assign(infeasible=result.trials["number"] == 2)
    assert int(result.best()["number"]) == 0 and seeds_table(result)["trial"].iloc[0] == 0
    board = leaderboard(result)
    assert '<s title="cannot win">2</s>' in list(board["trial"])
    assert "infeasible (broke the space's constraints)" in list(board["kept out of best"])


@pytest.mark.slow
@pytest.mark.parametrize("project", ["workers"], indirect=True)
def test_enqueue_exclude_include_through_a_quick_sweep_of_worker_processes(tiny: Path, capsys):
    assert main(["run", "tiny", "--quick", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["enqueue", "tiny", "--quick", "--set", "units=17", "--set", "dropout=0.05"]) == 0
    assert main(["enqueue", "tiny", "--quick", "--set", "units=1000"]) == 2
    assert main(["enqueue", "tiny", "--engine", "kerastuner", "--set", "units=17"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["error", "error"]
    assert err[0].startswith("error: --set units=1000: 1000 is outside the range 16 to 128")
    assert main(["run", "tiny", "--quick", "--no-report"]) == 0  # TRIALS (2) reached: the queued trial still runs
    storage = open_storage(default_storage(tiny))
    study = optuna.load_study(study_name="tiny-quick", storage=storage)
    queued = study.trials[2]
    assert (queued.state, queued.params) == (TrialState.COMPLETE, {"units": 17, "dropout": 0.05})
    assert len(study.trials) == 3
    result = collect_study(storage, "tiny-quick", tracking_uri(tiny))
    assert result is not None and result.trials.set_index("number")["found_by"][2] == "queued by hand"
    _exclude_and_include(tiny, study, capsys)


def _alias_trial(client: mlflow.MlflowClient) -> str | None:
    try:
        return client.get_model_version_by_alias("tiny-quick", BEST_ALIAS).tags[MODEL_TRIAL]
    except mlflow.exceptions.MlflowException:
        return None


def _exclude_and_include(project: Path, study: optuna.Study, capsys) -> None:
    """The winner excluded: the report's winner, the API's best and the registry's alias move off it; included
    again, they come back. Misuse: one line, exit 2, nothing changed."""
    client = mlflow.MlflowClient(tracking_uri(project))
    winner = best_trial(study).number
    assert _alias_trial(client) == str(winner)  # the sweep registered its best and pointed the alias at it
    capsys.readouterr()
    assert main(["exclude", "tiny", "--quick", "--trial", "9", "--reason", "x"]) == 2
    assert main(["exclude", "tiny", "--quick", "--trial", str(winner)]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 2 and EXCLUDED not in study.user_attrs
    assert main(["exclude", "tiny", "--quick", "--trial", str(winner), "--reason", "[red]leaked[/] labels"]) == 0
    assert "excluded from best: [red]leaked[/] labels" in capsys.readouterr().out
    runner_up = best_trial(study).number
    assert runner_up != winner and sweeps.best("tiny", root=project, quick=True).number == runner_up
    assert main(["status", "tiny", "--quick"]) == 0
    shown = capsys.readouterr().out
    assert f"excluded by hand: trial {winner}: [red]leaked[/] labels" in shown and f"best: trial {runner_up} (" in shown
    result = collect_study(open_storage(default_storage(project)), "tiny-quick", tracking_uri(project))
    assert result is not None and int(result.best()["number"]) == runner_up
    board = leaderboard(result)
    assert f'<s title="cannot win">{winner}</s>' in list(board["trial"])
    assert "<s>excluded</s>: [red]leaked[/] labels" in list(board["kept out of best"])
    assert _alias_trial(client) in (str(runner_up), None)  # on the runner-up's version, or none: never the excluded
    tagged = {v.tags[MODEL_TRIAL]: v.tags.get(MODEL_EXCLUDED) for v in selected_versions(client, "tiny-quick")}
    assert tagged[str(winner)] == "[red]leaked[/] labels"
    sweeps.include("tiny", winner, root=project, quick=True)
    assert best_trial(study).number == winner and _alias_trial(client) == str(winner)
    assert MODEL_EXCLUDED not in client.get_model_version_by_alias("tiny-quick", BEST_ALIAS).tags
