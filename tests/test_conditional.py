"""Conditional params (``when:``) and constraints (``constraints:``): what is sampled, what is refused, what trains,
and what may win."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest

from experiments.outcome import RepeatResult
from sweeps.errors import SpaceError
from sweeps.objective.constrained import record_outcomes, reject_infeasible
from sweeps.space.constraints import parse_constraint
from sweeps.space.space import Space, parse_space
from sweeps.store.keys import REJECTED
from sweeps.store.trials import StudyTrials, best_trial, is_feasible

# weight_decay is declared before the param it depends on: it must still be sampled after it.
CONDITIONAL = """\
dataset: fashion_mnist
model: mlp
train: {epochs: 1, batch_size: 256}
params:
  weight_decay: {type: float, low: 1.0e-5, high: 1.0e-2, log: true, when: {optimizer: [adamw, sgd]}}
  optimizer: {type: categorical, choices: [adam, adamw, sgd]}
  hidden_layers: {type: int, low: 1, high: 2}
  dropout: {type: float, low: 0.0, high: 0.3, when: {optimizer: sgd, hidden_layers: 2}}
  units: {type: int, low: 16, high: 64, log: true, per_layer: true}
"""
CONSTRAINED = CONDITIONAL + 'constraints: ["units_2 <= units_1", "param_count <= 30000"]\n'


def parse(text: str) -> Space:
    return parse_space(textwrap.dedent(text), Path("search_spaces/demo.yaml"))


def draws(space: Space, n: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return out


def test_a_conditional_param_is_sampled_exactly_when_its_condition_holds():
    sampled = draws(parse(CONDITIONAL), 60)
    for params in sampled:
        assert ("weight_decay" in params) == (params["optimizer"] in ("adamw", "sgd"))
        assert ("dropout" in params) == (params["optimizer"] == "sgd" and params["hidden_layers"] == 2)
    assert {p["optimizer"] for p in sampled} == {"adam", "adamw", "sgd"}
    assert any("dropout" in p for p in sampled)  # the all-of condition does hold sometimes


def test_a_param_not_sampled_is_not_given_to_the_builder():
    space = parse(CONDITIONAL)
    model, settings = space.resolve({"optimizer": "adam", "hidden_layers": 1, "units_1": 32})
    assert "dropout" not in model and settings.weight_decay == 0.0  # the builder's and the training defaults
    model, settings = space.resolve({"optimizer": "sgd", "weight_decay": 0.001, "hidden_layers": 2, "dropout": 0.2})
    assert model["dropout"] == 0.2 and settings.weight_decay == 0.001


def test_a_space_without_when_samples_as_before():
    """The order params were asked in before conditions existed: file order, per-layer params last."""
    space = parse(CONDITIONAL.replace(", when: {optimizer: [adamw, sgd]}", "").replace(
        ", when: {optimizer: sgd, hidden_layers: 2}", ""))
    old = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3))
    new = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3))
    for _ in range(12):
        a, b = old.ask(), new.ask()
        asked = {}
        for name, param in sorted(space.spec.params.items(), key=lambda item: item[1].per_layer):
            if param.per_layer:
                for i in range(1, asked["hidden_layers"] + 1):
                    asked[f"{name}_{i}"] = a.suggest_int(f"{name}_{i}", param.low, param.high, log=param.log)
            elif param.type == "categorical":
                asked[name] = a.suggest_categorical(name, param.choices)
            else:
                suggest = a.suggest_float if param.type == "float" else a.suggest_int
                asked[name] = suggest(name, param.low, param.high, log=param.log)
        assert space.suggest(b) == asked
        old.tell(a, 1.0), new.tell(b, 1.0)


@pytest.mark.parametrize("change, expected", [
    (("{optimizer: [adamw, sgd]}", "{optimiser: sgd}"), "params.weight_decay.when.optimiser: not a param of this space"),
    (("{optimizer: [adamw, sgd]}", "{optimizer: [adamw, nadam]}"), "params.weight_decay.when.optimizer: 'nadam' is not one of its values"),
    (("{optimizer: [adamw, sgd]}", "{hidden_layers: 3}"), "params.weight_decay.when.hidden_layers: 3 is not one of its values"),
    (("{optimizer: [adamw, sgd]}", "{dropout: 0.1}"), "params.weight_decay.when.dropout: a condition names a categorical or int param"),
    (("{optimizer: [adamw, sgd]}", "{units: 16}"), "params.weight_decay.when.units: a condition names a categorical or int param that is not per layer"),
    (("per_layer: true}", "per_layer: true, when: {optimizer: sgd}}"), "params.units.when: a per-layer param cannot be conditional"),
    (("choices: [adam, adamw, sgd]}", "choices: [adam, adamw, sgd], when: {hidden_layers: 2}}"), None),
    (("{optimizer: [adamw, sgd]}", "{optimizer: []}"), "params.weight_decay.when.optimizer: give a value or a list of values"),
])
def test_a_wrong_when_is_one_line_naming_the_field(change, expected):
    text = CONDITIONAL.replace(*change)
    if expected is None:  # optimizer on hidden_layers, and dropout on both: fine; closing the loop is a cycle
        parse(text)
        text = text.replace("hidden_layers: {type: int, low: 1, high: 2}",
                            "hidden_layers: {type: int, low: 1, high: 2, when: {optimizer: sgd}}")
        expected = "params.optimizer.when: a cycle (optimizer → hidden_layers → optimizer)"
    with pytest.raises(SpaceError) as info:
        parse(text)
    assert str(info.value).startswith(f"search_spaces/demo.yaml: {expected}") and "\n" not in str(info.value)


def test_when_is_refused_with_the_grid_sampler_and_with_a_baseline_it_rules_out():
    grid = CONDITIONAL.replace("log: true, when", "step: 0.001, when").replace(
        "units: {type: int, low: 16, high: 64, log: true, per_layer: true}", "units: {type: int, low: 16, high: 64}")
    grid = grid.replace("1.0e-5", "0.001") + "sweep: {sampler: {name: grid}}\n"
    with pytest.raises(SpaceError, match=r"params.weight_decay.when: the grid sampler needs every param"):
        parse(grid)
    with pytest.raises(SpaceError, match=r"sweep.baselines.0.params.weight_decay: sampled only when optimizer"):
        parse(CONDITIONAL + "sweep: {baselines: [{params: {optimizer: adam, weight_decay: 0.001}}]}\n")
    parse(CONDITIONAL + "sweep: {baselines: [{params: {optimizer: sgd, weight_decay: 0.001}}]}\n")


def test_keras_tuner_declares_conditional_params_in_their_scopes():
    import keras_tuner as kt

    from sweeps.objective.kerastuner import HPSuggester

    # a chain too: learning_rate under lr_schedule, itself under optimizer
    space = parse(CONDITIONAL + "  lr_schedule: {type: categorical, choices: [constant, cosine], when: {optimizer: sgd}}\n"
                  "  learning_rate: {type: float, low: 0.001, high: 0.1, log: true, when: {lr_schedule: cosine}}\n")
    hp = kt.HyperParameters()
    assert space.suggest(HPSuggester(hp)) == {"optimizer": "adam", "hidden_layers": 1, "units_1": 16}  # the defaults
    declared = {h.name for h in hp.space}
    assert {"weight_decay", "dropout", "lr_schedule", "learning_rate"} <= declared  # the oracle knows them all
    assert not any(hp.is_active(name) for name in ("weight_decay", "dropout", "lr_schedule", "learning_rate"))
    hp.values.update({"optimizer": "sgd", "hidden_layers": 2, "lr_schedule": "cosine",  # as the oracle fills them in
                      "weight_decay": 0.001, "dropout": 0.1, "learning_rate": 0.01})
    chosen = space.suggest(HPSuggester(hp))
    assert {"weight_decay", "dropout", "lr_schedule", "learning_rate"} <= set(chosen)
    hp.values.update({"optimizer": "sgd", "hidden_layers": 1})  # dropout's second key fails: left out by the space
    assert "dropout" not in space.suggest(HPSuggester(hp))
    hp.values["optimizer"] = "adam"
    assert {"weight_decay", "dropout", "lr_schedule", "learning_rate"}.isdisjoint(space.suggest(HPSuggester(hp)))


# --- constraints ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, left, right", [
    ("units_2 <= units_1", "units_2", "units_1"), ("param_count<=2e5", "param_count", 200000.0),
    (" 0.5 > dropout ", 0.5, "dropout"),
])
def test_a_constraint_is_read_as_two_sides_and_an_operator(text, left, right):
    parsed = parse_constraint(text)
    assert (parsed.left, parsed.right) == (left, right)


def test_a_constraints_value_is_how_far_it_is_broken():
    assert parse_constraint("a <= b").value({"a": 5, "b": 3}) == 2
    assert parse_constraint("a >= b").value({"a": 5, "b": 3}) == -2
    assert parse_constraint("a < b").value({"a": 3, "b": 3}) > 0  # strict: equal sides break it
    assert parse_constraint("a <= b").value({"a": 3, "b": 3}) == 0
    assert parse_constraint("a <= b").value({"a": 3}) is None  # b not sampled: it does not apply


@pytest.mark.parametrize("constraint, expected", [
    ("__import__('os').system('x') <= 1", "constraints.0: \"__import__('os').system('x') <= 1\": expected NAME OP NAME"),
    ("units_2 == units_1", "constraints.0: 'units_2 == units_1': expected NAME OP NAME"),
    ("1 <= 2", "constraints.0: '1 <= 2': compares two numbers"),
    ("units_3 <= units_1", "constraints.0: 'units_3' is neither a numeric param of this space nor an outcome"),
    ("optimizer <= 1", "constraints.0: 'optimizer' is neither a numeric param"),
    ("val_mae <= 1", "constraints.0: 'val_mae' is neither"),  # not a metric of a classification
    ("units_1 > 64", "constraints.0: 'units_1 > 64' holds nowhere in the params' ranges"),
])
def test_a_wrong_constraint_is_one_line_naming_it(constraint, expected):
    with pytest.raises(SpaceError) as info:
        parse(CONDITIONAL + f"constraints: [\"{constraint}\"]\n" if '"' not in constraint else
              CONDITIONAL + f"constraints: ['{constraint.replace(chr(39), chr(39) * 2)}']\n")
    assert str(info.value).startswith(f"search_spaces/demo.yaml: {expected}") and "\n" not in str(info.value)


def test_constraints_are_refused_with_the_sampler_that_ignores_them():
    with pytest.raises(SpaceError, match=r"demo.yaml: constraints: the cmaes sampler ignores them"):
        parse(CONSTRAINED + "sweep: {sampler: {name: cmaes}}\n")
    with pytest.raises(SpaceError, match=r"demo.yaml: sweep.baselines.0.params: breaks constraints.0 \(units_2 <= units_1\)"):
        parse(CONSTRAINED + "sweep: {baselines: [{params: {hidden_layers: 2, units_1: 16, units_2: 32}}]}\n")
    parse(CONSTRAINED + "sweep: {baselines: [{params: {hidden_layers: 2, units_1: 32, units_2: 16}}]}\n")


def _optimize(space: Space, trials: int, trained: list[dict], sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """A study whose objective checks the constraints on params as the sweep's does, then 'trains' (records)."""
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        params = space.suggest(trial)
        reject_infeasible(space, trial, params)
        trained.append(params)
        return float(params["units_1"])

    while StudyTrials(study).finished < trials:
        study.optimize(objective, n_trials=1)
    return study


def test_a_config_that_breaks_a_constraint_on_params_is_never_trained_and_not_counted():
    space = parse(CONDITIONAL.replace("low: 1, high: 2", "low: 2, high: 2") + 'constraints: ["units_2 <= units_1"]\n')
    trained: list[dict] = []
    study = _optimize(space, 10, trained, optuna.samplers.RandomSampler(seed=1))
    assert len(trained) == 10 and all(p["units_2"] <= p["units_1"] for p in trained)
    rejected = [t for t in study.trials if REJECTED in t.user_attrs]
    assert rejected, "a random sampler over 16..64 breaks units_2 <= units_1 about half the time"
    for trial in rejected:
        assert trial.state == optuna.trial.TrialState.PRUNED and trial.params["units_2"] > trial.params["units_1"]
        assert trial.constraints["units_2 <= units_1"] == trial.params["units_2"] - trial.params["units_1"]
        assert not is_feasible(trial) and "units_2 <= units_1 broken by" in trial.user_attrs[REJECTED]
    assert len(study.trials) == 10 + len(rejected)


def test_tpe_learns_the_feasible_region_from_rejected_trials():
    """The same constraint, the same seeds: TPE, told of each infeasible trial, samples fewer of them than random."""
    space = parse(CONDITIONAL.replace("low: 1, high: 2", "low: 2, high: 2").replace("high: 64", "high: 512")
                  + 'constraints: ["units_2 <= units_1"]\n')
    counts = {}
    for name, sampler in {"random": optuna.samplers.RandomSampler(seed=5),
                          "tpe": optuna.samplers.TPESampler(seed=5, n_startup_trials=5, multivariate=True, group=True)}.items():
        study = _optimize(space, 30, [], sampler)
        counts[name] = sum(REJECTED in t.user_attrs for t in study.trials[10:])
    assert counts["tpe"] < counts["random"], counts


def test_a_trial_breaking_a_constraint_on_outcomes_is_recorded_and_never_wins():
    space = parse(CONSTRAINED)
    study = optuna.create_study(direction="maximize")
    for param_count, value in ((50_000, 0.9), (20_000, 0.8), (25_000, 0.7)):
        trial = study.ask()
        params = space.suggest(trial)
        params.update(units_1=32, units_2=16)
        reject_infeasible(space, trial, params)  # as the objective does, before training
        record_outcomes(space, trial, params, [RepeatResult(seed=0, param_count=param_count)], 1.5)
        study.tell(trial, value)
    first, second, _ = study.trials
    assert first.constraints == {"units_2 <= units_1": -16.0, "param_count <= 30000": 20_000.0}
    assert second.constraints["param_count <= 30000"] == -10_000.0
    assert best_trial(study).number == second.number  # the first scored higher but broke param_count <= 30000


@pytest.mark.slow
def test_a_sweep_trains_only_feasible_configs_with_their_conditional_params(project, capfd):
    from sweeps.cli import main
    from sweeps.store.storage import default_storage, open_storage

    (project / "search_spaces" / "cc.yaml").write_text(textwrap.dedent("""\
        dataset: fashion_mnist
        model: mlp
        train: {epochs: 1, batch_size: 512}
        params:
          optimizer: {type: categorical, choices: [adam, sgd]}
          weight_decay: {type: float, low: 1.0e-5, high: 1.0e-2, log: true, when: {optimizer: sgd}}
          hidden_layers: {type: int, low: 2, high: 2}
          units: {type: int, low: 8, high: 64, log: true, per_layer: true}
        constraints: ["units_2 <= units_1", "param_count <= 40000"]
        sweep: {sampler: {name: random}, pruner: {name: none}, seed: 3}
        """))
    assert main(["run", "cc", "--quick", "--trials", "4", "--no-report"]) == 0
    study = optuna.load_study(study_name="cc-quick", storage=open_storage(default_storage(project)))
    trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    rejected = [t for t in study.trials if REJECTED in t.user_attrs]
    assert len(trained) == 4 and rejected, "seed 3 draws units_2 > units_1 before its fourth feasible config"
    lines = capfd.readouterr().out.splitlines()
    for trial in rejected:  # its line says why it was not trained, not "stopped at epoch 0"
        assert any(f"trial {trial.number:>3} PRUNED   rejected, not trained: units_2 <= units_1" in line for line in lines)
    for trial in trained:
        assert trial.params["units_2"] <= trial.params["units_1"]
        assert ("weight_decay" in trial.params) == (trial.params["optimizer"] == "sgd")
        param_count = trial.constraints["param_count <= 40000"] + 40000
        assert param_count == 784 * trial.params["units_1"] + trial.params["units_1"] + (
            trial.params["units_1"] + 1) * trial.params["units_2"] + (trial.params["units_2"] + 1) * 10
        assert is_feasible(trial) == (param_count <= 40000)
    assert all(t.state == optuna.trial.TrialState.PRUNED and "mlflow_run_id" not in t.user_attrs for t in rejected)
    best = best_trial(study)
    assert best is None or is_feasible(best)
    assert main(["status", "cc", "--quick"]) == 0  # no run is expected of a rejected trial
