"""A user's own model: ``model: module:function`` names a builder in the project folder; it is built once before
anything trains, and a broken one is one line (exit status 2) with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.cli import main
from sweeps.objective.model_check import model_size
from sweeps.space.space import load_space
from tests.conftest import BOTH_WAYS

SPACE = """\
dataset: fashion_mnist
model: {model}
train: {{epochs: 2, batch_size: 256}}
params:
  width: {{type: int, low: 8, high: 32}}
  dropout: {{type: float, low: 0.0, high: 0.3}}
sweep: {{sampler: {{name: tpe}}, pruner: {{name: none}}}}
"""

BUILDERS = """\
import keras


def small(params, input_shape, num_classes):
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(params["width"], 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(params["dropout"]),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])


def recording(params, input_shape, num_classes):
    import gc, os
    with open("builds.txt", "a") as f:  # which process built it, and whether it had frozen its imports first
        f.write(f"{os.getpid()} {gc.get_freeze_count()}\\n")
    return small(params, input_shape, num_classes)


def raises(params, input_shape, num_classes):
    raise ValueError("this builder is not finished")


def not_a_model(params, input_shape, num_classes):
    return {"layers": 2}


def three_outputs(params, input_shape, num_classes):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])


def fixed_input(params, input_shape, num_classes):
    return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(num_classes)])


not_callable = 3
"""


def _project(root: Path, model: str, module: str) -> None:
    (root / f"{module}.py").write_text(BUILDERS)
    (root / "search_spaces" / "own.yaml").write_text(SPACE.format(model=model))


def test_check_builds_the_users_model_once(project: Path, capsys):
    _project(project, "own_models_ok:small", "own_models_ok")
    assert main(["check", "own"]) == 0
    out = capsys.readouterr().out
    assert "model own_models_ok:small: builds" in out and "own.yaml: ok" in out


@pytest.mark.parametrize("per_process", ["0", "1"])  # built in this process; built in the workers' template
@pytest.mark.parametrize("builder, said", [
    ("nosuch_module:small", "model nosuch_module:small: cannot import nosuch_module (ModuleNotFoundError"),
    ("{m}:missing", "{m} has no function missing"),
    ("{m}:not_callable", "{m}.not_callable is not a function"),
    ("{m}:raises", "the builder raised ValueError: this builder is not finished (params {{'width': "),
    ("{m}:not_a_model", "the builder returned dict, not a keras.Model"),
    ("{m}:three_outputs", "the model has 3 outputs for 10 classes"),
    ("{m}:fixed_input", "the model does not take inputs of shape (28, 28, 1)"),
])
def test_a_broken_builder_is_one_line_before_anything_is_written(project: Path, capsys, builder, said, per_process):
    module = f"own_models_{builder.rpartition(':')[2]}"
    _project(project, builder.format(m=module), module)
    assert main(["run", "own", "--quick", "--trials-per-process", per_process]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and said.format(m=module) in err[0], err
    assert not (project / "optuna.journal").exists() and not (project / "mlflow.db").exists()


@pytest.mark.slow
def test_a_sweep_in_forked_workers_builds_the_model_and_the_report_in_their_template_not_in_its_own_process(project: Path, monkeypatch):
    _project(project, "own_models_forked:recording", "own_models_forked")
    monkeypatch.syspath_prepend(str(project))
    size = model_size(load_space("own", project / "search_spaces"), (28, 28, 1), 10)  # the seeded draw's model, built here
    says = "import sys; from sweeps.cli import main; code = main(sys.argv[1:]); print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", says, "run", "own", "--trials", "1", "--subset", "500",
                           "--trials-per-process", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"model own_models_forked:recording: builds, {size:,} parameters" in done.stdout
    # The command never imported TensorFlow: its template did, and built the model, then the report (which scores
    # the best checkpoint on the test set) in processes forked from it.
    assert done.stdout.rstrip().endswith("False")
    assert "Confusion matrix" in (project / "reports" / "own.html").read_text()
    # The check and the trial each built it in a forked process that had frozen its imports first (each repeat's
    # clear_session() then collects only what the trial made).
    built = [line.split() for line in (project / "builds.txt").read_text().splitlines()]
    others = [(pid, frozen) for pid, frozen in built if int(pid) != os.getpid()]
    assert len({pid for pid, _ in others}) == 2 and all(int(frozen) > 0 for _, frozen in others), built


@pytest.mark.slow
def test_a_worker_started_with_exec_freezes_its_imports_before_it_builds(project: Path, monkeypatch):
    """Where workers cannot be forked (a GPU is visible) each is a fresh ``sweep worker``: it imports TensorFlow itself,
    uncollected, and has frozen it all before its trial builds the model."""
    from sweeps.execution.forked import forking_is_safe
    from sweeps.execution.local import local_gpus

    _project(project, "own_models_exec:recording", "own_models_exec")
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # TensorFlow's CPU build ignores it; the launcher does not fork
    assert not forking_is_safe(local_gpus())
    assert main(["run", "own", "--trials", "1", "--subset", "500", "--trials-per-process", "1", "--no-report"]) == 0
    built = [line.split() for line in (project / "builds.txt").read_text().splitlines()]
    workers = [(pid, int(frozen)) for pid, frozen in built if int(pid) != os.getpid()]  # the check built it here
    assert len(workers) == 1 and workers[0][1] > 400_000, built


def test_a_builder_name_that_is_not_module_function_is_a_space_error(project: Path, capsys):
    (project / "search_spaces" / "own.yaml").write_text(SPACE.format(model="'my model'"))
    assert main(["check", "own"]) == 2
    assert "model: 'my model': expected mlp, cnn or module:function" in capsys.readouterr().err


def test_per_layer_params_need_a_built_in_model(project: Path, capsys):
    _project(project, "own_models_layers:small", "own_models_layers")
    text = (project / "search_spaces" / "own.yaml").read_text()
    (project / "search_spaces" / "own.yaml").write_text(text.replace("high: 32}", "high: 32, per_layer: true}"))
    assert main(["check", "own"]) == 2
    assert "params.width.per_layer: only a built-in model counts its layers" in capsys.readouterr().err


@pytest.mark.slow
@BOTH_WAYS
def test_a_quick_sweep_of_the_users_model_ends_consistent_with_its_report(project: Path, capfd):
    _project(project, "own_models_sweep:small", "own_models_sweep")
    assert main(["run", "own", "--quick"]) == 0
    assert main(["status", "own", "--quick"]) == 0
    out = capfd.readouterr().out
    assert "2 finished trials" in out and "consistent" in out
    page = (project / "reports" / "own-quick.html").read_text()
    assert "own_models_sweep:small" in page


@pytest.mark.slow
def test_the_keras_tuner_engine_searches_the_users_model_too(project: Path, capsys):
    _project(project, "own_models_kt:small", "own_models_kt")
    assert main(["run", "own", "--quick", "--engine", "kerastuner", "--no-report"]) == 0
    assert main(["status", "own", "--quick", "--engine", "kerastuner"]) == 0
    out = capsys.readouterr().out
    assert "COMPLETE" in out and "consistent" in out and "width=" in out
