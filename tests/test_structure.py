"""Rules the code keeps that no linter checks: functions fit a screen, and a private attribute of another library
is used only where a test pins the behaviour it relies on (Keras, Optuna, MLflow and Keras Tuner may change them in
any release)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 60
# Private attributes reached through another object or super(), and the test that pins each.
PINNED = {"_save_model": "tests/test_train.py::test_checkpoints_are_written_beside_and_renamed_so_a_failed_save_keeps_the_last_best"}


def _trees() -> Iterator[tuple[Path, ast.AST]]:
    for package in ("sweeps", "experiments"):
        for path in sorted((REPO / package).rglob("*.py")):
            yield path.relative_to(REPO), ast.parse(path.read_text(encoding="utf-8"))


def test_no_function_is_longer_than_a_screen():
    long = [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, tree in _trees() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert long == []


def test_private_attributes_of_other_objects_are_pinned_by_a_test():
    reached = {(str(path), node.attr) for path, tree in _trees() for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
               and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))}
    assert {attr for _, attr in reached} <= set(PINNED), sorted(reached)
    for test in PINNED.values():
        file, _, name = test.partition("::")
        assert f"def {name}(" in (REPO / file).read_text(), test
