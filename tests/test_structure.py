"""Rules the code keeps that no linter checks: functions fit a screen, modules and packages stay small, no two modules
import each other (directly or round a loop), and a private attribute of another library is used only where a test
pins the behaviour it relies on (Keras, Optuna, MLflow and Keras Tuner may change them in any release)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 60
MAX_MODULE_LINES = 400
MAX_PACKAGE_LINES = 1500  # the modules of one folder, together
# Private attributes reached through another object or super(), and the test that pins each.
PINNED = {
    "_save_model": "tests/test_train.py::test_checkpoints_are_written_beside_and_renamed_so_a_failed_save_keeps_the_last_best",
    "_learning_rate": "tests/test_train.py::test_a_short_budget_ends_training_early_with_its_cosine_schedule_decayed",
    "_storage": "tests/test_kerastuner.py::test_each_trial_trains_its_oracles_params_beside_a_queued_trial",
    "_study_id": "tests/test_kerastuner.py::test_each_trial_trains_its_oracles_params_beside_a_queued_trial",
    "_forkserver": "tests/test_hardening.py::test_cli_missing_data_exit_2_before_anything_is_written_and_the_template_ends_with_the_command",
    "_forkserver_pid": "tests/test_hardening.py::test_cli_missing_data_exit_2_before_anything_is_written_and_the_template_ends_with_the_command",
}


def _trees() -> Iterator[tuple[Path, ast.AST]]:
    for package in ("sweeps", "experiments"):
        for path in sorted((REPO / package).rglob("*.py")):
            yield path.relative_to(REPO), ast.parse(path.read_text(encoding="utf-8"))


def test_no_function_is_longer_than_a_screen():
    long = [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, tree in _trees() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert long == []


def test_modules_and_packages_stay_small():
    sizes = {path: len(path.read_text(encoding="utf-8").splitlines())
             for package in ("sweeps", "experiments") for path in (REPO / package).rglob("*.py")}
    folders: dict[Path, int] = {}
    for path, lines in sizes.items():
        folders[path.parent] = folders.get(path.parent, 0) + lines
    assert {str(p.relative_to(REPO)): n for p, n in sizes.items() if n > MAX_MODULE_LINES} == {}
    assert {str(p.relative_to(REPO)): n for p, n in folders.items() if n > MAX_PACKAGE_LINES} == {}


def test_no_module_imports_itself_round_a_loop():
    """Deferred imports included: a loop of imports is a loop of knowledge, wherever the import statement sits."""
    import grimp

    graph = grimp.build_graph("sweeps", "experiments")
    loops = sorted({tuple(sorted({a, b})) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
                    if graph.chain_exists(importer=b, imported=a)})
    assert loops == []


def _private_reached(node: ast.AST) -> str | None:
    """The private attribute ``node`` reads of another object: ``x._a``, or ``getattr(x, "_a")`` and its kin."""
    if isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
        name = node.attr
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "hasattr")
          and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
        name = node.args[1].value
    else:
        return None
    return name if name.startswith("_") and not name.startswith("__") else None


def test_private_attributes_of_other_objects_are_pinned_by_a_test():
    reached = {(str(path), name) for path, tree in _trees() for node in ast.walk(tree)
               if (name := _private_reached(node)) is not None}
    assert {attr for _, attr in reached} <= set(PINNED), sorted(reached)
    for test in PINNED.values():
        file, _, name = test.partition("::")
        assert f"def {name}(" in (REPO / file).read_text(), test
