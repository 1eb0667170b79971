"""The command a message or the report tells the user to run next, as it runs where they stand: ``make …`` in this
repository (its Makefile), ``sweep …`` in a project of their own (``sweep init`` writes no Makefile)."""

from __future__ import annotations

from pathlib import Path

MAKE_TARGET = {"run": "sweep"}  # sub-commands whose make target has another name
MAKE_SPACE = {"bench": "BENCH_SPACE"}  # targets whose space variable has another name
MAKE_SIGN = "$(BIN)/sweep run"  # a line only this repository's Makefile holds


def in_this_repository(root: Path) -> bool:
    """Whether ``root`` is this repository (whose Makefile wraps the ``sweep`` command), not a project of the user's."""
    makefile = root / "Makefile"
    return makefile.is_file() and MAKE_SIGN in makefile.read_text(errors="replace")


def next_command(verb: str, space: str | None = None, *, quick: bool = False, engine: str = "optuna",
                 root: Path | None = None, **values: object) -> str:
    """``sweep VERB SPACE --name value … [--quick] [--engine E]``, or the same as ``make`` with its variables in this
    repository: the study of a quick or a Keras Tuner sweep is reached with its flags, never by its study name."""
    if in_this_repository(Path.cwd() if root is None else root):
        words = ["make", MAKE_TARGET.get(verb, verb), *([f"{MAKE_SPACE.get(verb, 'SPACE')}={space}"] if space else []),
                 *(f"{name.upper()}={value}" for name, value in values.items()),
                 *([f"ENGINE={engine}"] if engine != "optuna" else []), *(["QUICK=1"] if quick else [])]
    else:
        words = ["sweep", verb, *([space] if space else []),
                 *(f"--{name.replace('_', '-')} {value}" for name, value in values.items()),
                 *(["--quick"] if quick else []), *([f"--engine {engine}"] if engine != "optuna" else [])]
    return " ".join(words)
