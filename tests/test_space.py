"""Space files: the shipped ones are valid, and every kind of mistake gets one line naming file and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest

from sweeps.errors import SpaceError
from sweeps.space.space import available, load_space, parse_space

from .conftest import SPACES

BASE = """\
dataset: fashion_mnist
model: cnn
params:
  dropout: {type: float, low: 0.0, high: 0.5}
"""


def parse(text: str, name: str = "demo"):
    return parse_space(textwrap.dedent(text), Path(f"search_spaces/{name}.yaml"))


def error_of(text: str) -> str:
    with pytest.raises(SpaceError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("search_spaces/demo.yaml: ")
    return message


def test_shipped_spaces_are_valid():
    names = available(SPACES)
    assert {"fashion_cnn", "fashion_mlp", "mnist_mlp", "fashion_blog"} <= set(names)
    for name in names:
        assert load_space(name, SPACES).name == name


def test_the_annotated_example_of_the_space_file_reference_is_a_valid_space():
    reference = (SPACES.parent / "docs" / "space-files.md").read_text()
    example = reference.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert parse(example).spec.sweep.baselines[0].epochs == 2


def test_defaults_are_the_exam_bar_and_val_accuracy():
    space = parse(BASE)
    assert space.spec.objective.metric == "val_accuracy"
    assert space.spec.objective.resolved_direction == "maximize"
    assert space.spec.target["test_accuracy"].min == 0.89
    assert space.spec.target["test_loss"].max == 0.33
    assert space.spec.validation == "holdout"


def test_robustness_as_the_objective_or_the_second_objective_turns_the_moved_copy_on():
    robust = parse(BASE + "objective: {metric: val_robust_accuracy}\n")
    assert robust.spec.objective.directions == ["maximize"] and robust.resolve({})[1].robust
    assert robust.resolve({})[1].monitor == "val_robust_accuracy"
    pareto = parse(BASE + "objective: {secondary: val_robust_accuracy}\nsweep: {pruner: {name: none}}\n")
    assert pareto.spec.objective.directions == ["maximize", "maximize"] and pareto.resolve({})[1].robust
    costly = parse(BASE + "objective: {secondary: param_count}\nsweep: {pruner: {name: none}}\n")
    assert costly.spec.objective.directions == ["maximize", "minimize"] and not costly.resolve({})[1].robust
    assert not parse(BASE).resolve({})[1].robust


def test_per_layer_params_exist_only_up_to_the_sampled_depth():
    space = load_space("fashion_cnn", SPACES)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        params = space.suggest(study.ask())
        depth = params["conv_layers"]
        assert sorted(k for k in params if k.startswith("filters_")) == [f"filters_{i}" for i in range(1, depth + 1)]


def test_resolve_splits_model_and_training_settings():
    space = load_space("fashion_blog", SPACES)
    model, settings = space.resolve({"dropout": 0.3})
    assert model == {"conv_layers": 2, "filters_1": 32, "filters_2": 64, "kernel_size": 3, "pooling": "max",
                     "padding": "valid", "dense_units": 128, "dropout": 0.3}
    assert (settings.patience, settings.batch_size, settings.monitor) == (3, 128, "val_accuracy")
    assert space.grid() == {"dropout": [0.2, 0.25, 0.3, 0.5]}


def test_a_training_setting_can_be_a_param():
    space = load_space("mnist_mlp", SPACES)
    _, settings = space.resolve({"optimizer": "rmsprop", "learning_rate": 0.01, "patience": 4})
    assert (settings.optimizer, settings.learning_rate, settings.patience) == ("rmsprop", 0.01, 4)


@pytest.mark.parametrize("text, expected", [
    ("dataset: fashion_mnist\n\tmodel: cnn\n", "line 2: YAML syntax error"),
    ("", "empty file"),
    ("- a\n- b\n", "top level must be a mapping"),
    (BASE + "colour: blue\n", "unknown key 'colour' (allowed: name, description, dataset"),
    ("model: cnn\n", "dataset: required field is missing"),
    (BASE.replace("fashion_mnist", "cifar10"), "dataset: 'cifar10': expected fashion_mnist, mnist or {path: FILE}"),
    (BASE.replace("model: cnn", "model: resnet"), "model: 'resnet': expected mlp, cnn or module:function naming your builder"),
    (BASE + "validation: peek\n", "validation: Input should be 'holdout', 'stratified', 'test' or 'kfold'"),
    (BASE.replace("low: 0.0, high: 0.5", "low: 0.5, high: 0.1"), "params.dropout: low (0.5) must be <= high (0.1)"),
    (BASE.replace("low: 0.0, high: 0.5", "low: 0.0, high: 0.5, step: 0.9"), "params.dropout: step (0.9) is larger than the range"),
    (BASE.replace("type: float", "type: double"), "params.dropout: Input tag 'double'"),
    (BASE.replace("low: 0.0, high: 0.5", "low: 0.0, high: 1.5"), "params.dropout: 1.5 is not allowed: Input should be less than 1"),
    (BASE.replace("low: 0.0, high: 0.5", "low: 'a', high: 0.5"), "params.dropout.low: Input should be a valid number"),
    (BASE.replace("low: 0.0, high: 0.5", "low: 0.0, high: 0.5, log: true"), "params.dropout: log: true needs low > 0"),
    (BASE + "  pooling: {type: categorical, choices: []}\n", "params.pooling.choices: List should have at least 1 item"),
    (BASE + "  pooling: {type: categorical, choices: [max, max]}\n", "params.pooling: duplicate choice 'max'"),
    (BASE + "  pooling: {type: categorical, choices: [max, min]}\n", "params.pooling: 'min' is not allowed"),
    (BASE + "  optimizer: {type: categorical, choices: [adam, lbfgs]}\n", "params.optimizer: 'lbfgs' is not allowed"),
    (BASE + "  units: {type: int, low: 8, high: 64}\n", "params.units: 'units' is not a setting of a cnn model"),
    (BASE + "train: {batch_size: 0}\n", "train.batch_size: Input should be greater than or equal to 1"),
    (BASE + "train: {epochs: -1}\n", "train.epochs: Input should be greater than or equal to 1"),
    (BASE + "train: {optimizer: adagrad}\n", "train.optimizer: Input should be 'adam'"),
    (BASE + "fixed: {dropout: 0.1}\n", "params.dropout: also given a fixed value"),
    (BASE + "fixed: {epochs: 3}\n", "fixed.epochs: training settings go under train:"),
    (BASE + "  kernel_size: {type: int, low: 3, high: 9}\n  conv_layers: {type: int, low: 1, high: 3}\n",
     "params: conv_layers up to 3 (1 per block) with kernel_size up to 9 (padding valid, pooling max) shrinks the 28x28 input below 1x1"),
    (BASE + "  dense_units: {type: int, low: 8, high: 64, per_layer: true}\n", "params.dense_units.per_layer: only filters can be per layer"),
    (BASE + "sweep: {sampler: {name: annealing}}\n", "sweep.sampler.name: Input should be 'tpe', 'random', 'grid', 'cmaes', 'qmc' or 'gp'"),
    (BASE + "sweep: {pruner: {name: patient}}\n", "sweep.pruner.name: Input should be 'none', 'median'"),
    (BASE + "sweep: {sampler: {name: grid}}\n", "params.dropout: the grid sampler needs finite values"),
    (BASE + "sweep: {repeats: 0}\n", "sweep.repeats: Input should be greater than or equal to 1"),
    (BASE + "target: {test_f1: {min: 0.5}}\n", "target.test_f1.[key]: Input should be 'test_accuracy', 'test_loss' or 'test_mae'"),
    (BASE + "name: other\n", "name: 'other' must match the file name 'demo'"),
    (BASE + "objective: {secondary: param_count}\n", "sweep.pruner.name: a study with a secondary objective cannot prune"),
    (BASE + "objective: {secondary: flops}\n", "objective.secondary: Input should be 'param_count', 'epoch_time_s' or 'val_robust_accuracy'"),
    (BASE + "fixed: {batch_norm: maybe}\n", "fixed.batch_norm: 'maybe' is not allowed: Input should be a valid boolean"),
    (BASE + "fixed: {head: attention}\n", "fixed.head: 'attention' is not allowed: Input should be 'flatten' or 'global_avg'"),
    (BASE + "  augment_rotate: {type: float, low: 0, high: 270}\n", "params.augment_rotate: 270.0 is not allowed: Input should be less than or equal to 180"),
    (BASE + "train: {lr_schedule: step}\n", "train.lr_schedule: Input should be 'constant', 'cosine' or 'plateau'"),
    (BASE + "fixed: {convs_per_block: 3, kernel_size: 5, conv_layers: 2}\n",
     "params: conv_layers up to 2 (3 per block) with kernel_size up to 5 (padding valid, pooling max) shrinks"),
    (BASE + "sweep: {baselines: [{params: {dropout: 0.7}}]}\n",
     "sweep.baselines.0.params.dropout: 0.7 is outside the range 0.0 to 0.5"),
    (BASE + "sweep: {baselines: [{params: {dense_units: 64}}]}\n",
     "sweep.baselines.0.params.dense_units: not a param of this space (params: dropout)"),
    (BASE + "  pooling: {type: categorical, choices: [max, avg]}\nsweep: {baselines: [{params: {pooling: none}}]}\n",
     "sweep.baselines.0.params.pooling: 'none' is not one of the choices ['max', 'avg']"),
    (BASE + "sweep: {baselines: [{epochs: 0}]}\n", "sweep.baselines.0.epochs: Input should be greater than or equal to 1"),
    (BASE + "train: {epochs: 18}\nsweep: {baselines: [{epochs: 30}]}\n",
     "sweep.baselines.0.epochs: 30 is more than the 18 of train.epochs (a baseline's epochs is a cheaper first look"),
    (BASE + "sweep: {baselines: [{param: {dropout: 0.1}}]}\n", "sweep.baselines.0: unknown key 'param' (allowed: params, epochs, fixed)"),
    (BASE + "sweep: {baselines: [{fixed: {batch_norm: maybe}}]}\n",
     "sweep.baselines.0.fixed.batch_norm: 'maybe' is not allowed: Input should be a valid boolean"),
    (BASE + "sweep: {baselines: [{fixed: {dropout: 0.1}}]}\n",
     "sweep.baselines.0.fixed.dropout: a param of this space: give its value under params:"),
    (BASE + "sweep: {baselines: [{fixed: {batch_size: 32}}]}\n",
     "sweep.baselines.0.fixed.batch_size: a training setting: a baseline may change model settings only"),
    (BASE + "sweep: {baselines: [{fixed: {units: 32}}]}\n", "sweep.baselines.0.fixed.units: 'units' is not a setting of a cnn model"),
])
def test_each_mistake_gets_one_clear_line(text, expected):
    assert expected in error_of(text)


def test_baselines_name_per_layer_params_by_layer():
    space = load_space("fashion_cnn", SPACES)
    first, second = space.spec.sweep.baselines
    assert first.epochs == 2 and second.epochs is None
    assert first.fixed == {"batch_norm": False} and second.fixed == {}
    assert second.params["filters_1"] == 32 and second.params["convs_per_block"] == 2
    with pytest.raises(SpaceError, match=r"sweep.baselines.0.params.filters_1: 16 is not one of the choices"):
        parse((SPACES / "fashion_cnn.yaml").read_text().replace("filters_1: 32, filters_2: 64, conv_dropout: 0.0",
                                                                "filters_1: 16, filters_2: 64, conv_dropout: 0.0"),
              "fashion_cnn")


def test_space_names_cannot_leave_the_spaces_folder(tmp_path):
    spaces = tmp_path / "search_spaces"
    spaces.mkdir()
    (spaces / "ok.yaml").write_text(BASE)
    outside = tmp_path / "secret.yaml"
    outside.write_text(BASE)
    (spaces / "link.yaml").symlink_to(outside)
    assert load_space("ok", spaces).name == "ok"
    for bad in ("../secret", str(outside), ".hidden", "a/b"):
        with pytest.raises(SpaceError, match="without a path"):
            load_space(bad, spaces)
    with pytest.raises(SpaceError, match=r"no such space \(available: link, ok"):
        load_space("nope", spaces)
    with pytest.raises(SpaceError, match="points outside"):
        load_space("link", spaces)


def test_a_baseline_trains_with_its_own_epochs_and_fixed_values(tmp_path):
    """What the sweep trains for a baseline trial and what a reproduction of it trains come from one function."""
    from rich.console import Console

    from sweeps.search.study import open_study, trial_config

    space = load_space("fashion_cnn", SPACES)
    study = open_study(space, optuna.storages.InMemoryStorage(), quick=False, console=Console(quiet=True))
    first, second = (study.ask() for _ in range(2))
    model, settings = trial_config(space, {**space.spec.sweep.baselines[0].params}, first.user_attrs)
    assert model["batch_norm"] is False and settings.epochs == 2
    model, settings = trial_config(space, {**space.spec.sweep.baselines[1].params}, second.user_attrs)
    assert model["batch_norm"] is True and settings.epochs == space.spec.train.epochs == 18
    assert (first.user_attrs["baseline"], second.user_attrs["baseline"]) == (1, 2)  # the report marks them


def test_habits_from_neighbouring_tools_get_a_pointer_to_our_keys(tmp_path, monkeypatch):
    message = error_of("method: bayes\n" + BASE)
    assert "unknown key 'method'; did you mean sweep: {sampler: {name: …}}" in message and "bayes → tpe" in message
    assert "did you mean params:" in error_of("parameters: {lr: {min: 0.1, max: 1}}\n" + BASE)
    # a path to the file, as tab completion gives it, is the same space; from elsewhere there is no project
    spaces = tmp_path / "search_spaces"
    spaces.mkdir()
    (spaces / "demo.yaml").write_text(BASE)
    monkeypatch.chdir(tmp_path)
    assert load_space("search_spaces/demo.yaml", Path("search_spaces")).name == "demo"
    with pytest.raises(SpaceError, match=r"no elsewhere/ folder in .*: run from the project folder"):
        load_space("demo", Path("elsewhere"))


def test_storage_is_taken_after_the_sub_command_and_from_optunas_variable(monkeypatch):
    from sweeps.cli import _parser

    monkeypatch.delenv("SWEEPS_STORAGE", raising=False)
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://db/optuna")
    assert _parser().parse_args(["status", "demo"]).storage == "postgresql://db/optuna"
    assert _parser().parse_args(["status", "demo", "--storage", "a.journal"]).storage == "a.journal"
    assert _parser().parse_args(["--storage", "b.journal", "report"]).storage == "b.journal"
