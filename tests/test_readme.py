"""The README runs as written: every `make` line of it is a target whose `sweep` command parses and names a
shipped space, every `sweep` line parses, every YAML block in it is a valid space file, and it keeps its promise
to a newcomer: at most 200 lines, the set-up, `sweep init` and the report in its first 40."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from sweeps.cli import _parser
from sweeps.space.space import load_space, parse_space

from .conftest import REPO, SPACES

README = (REPO / "README.md").read_text()
MAKE_LINE = re.compile(r"^    (make [^\n]+)", re.M)
SWEEP_LINE = re.compile(r"^    (sweep [^\n]+)", re.M)
MAKE_LINES = sorted({line.split("#")[0].strip() for line in MAKE_LINE.findall(README)})
# Words that point to something a reader of the repository cannot open.
UNREACHABLE = ("issue log", "the issue's", "the blog", "seed note", "see the issue")


def make_targets() -> set[str]:
    """Every target the Makefile defines."""
    return set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.M))


def check_make_line(line: str) -> None:
    """`make -n` accepts the line, and each `sweep` command it would run parses and names a shipped space."""
    words = shlex.split(line)[1:]
    assignments = [w for w in words if "=" in w]
    dry = subprocess.run(["make", "-n", *words], cwd=REPO, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    assert dry.returncode == 0, dry.stderr
    commands = [c for c in dry.stdout.splitlines() if c.startswith(".venv/bin/sweep ")]
    assert commands or words[0] not in ("sweep", "report", "predict", "reproduce", "refit", "check", "status")
    for command in commands:
        args = _parser().parse_args(shlex.split(command)[1:])
        if getattr(args, "space", None):
            assert load_space(args.space, SPACES).name == args.space
    assert all(a.split("=")[0].isupper() for a in assignments)


def sweep_commands(text: str) -> list[str]:
    """Each indented `sweep …` command of a page (a line's `&& cd …` and comment left out)."""
    return sorted({line.split("#")[0].split("&&")[0].strip() for line in SWEEP_LINE.findall(text)})


def check_sweep_line(line: str) -> None:
    """The `sweep` command parses as written."""
    words = shlex.split(line)[1:]
    args = _parser().parse_args(words)
    assert args.command != "worker"


def check_inline_names(text: str) -> None:
    """Every `make X` and `sweep X` named inline is a make target and a visible sub-command."""
    targets = make_targets()
    for target in re.findall(r"`make ([a-z][a-z-]*)", text):
        assert target in targets, f"make {target}: no such target in the Makefile"
    action = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(action.choices) - {"worker"}
    for command in re.findall(r"`sweep ([a-z][a-z-]*)", text):
        assert command in commands, f"sweep {command}: no such sub-command"


def test_the_readme_has_make_lines_and_yaml_blocks():
    assert len(MAKE_LINES) >= 12 and "make test" in MAKE_LINES
    assert README.count("```yaml") >= 1


@pytest.mark.parametrize("line", MAKE_LINES)
def test_each_make_line_is_a_target_whose_sweep_command_parses(line):
    check_make_line(line)


@pytest.mark.parametrize("line", sweep_commands(README))
def test_each_sweep_line_parses(line):
    check_sweep_line(line)


def test_every_make_and_sweep_command_named_inline_exists():
    check_inline_names(README)


def test_every_yaml_block_is_a_valid_space_file():
    for block in re.findall(r"```yaml\n(.*?)```", README, re.S):
        assert parse_space(block, SPACES / "readme_example.yaml").spec.model in ("mlp", "cnn", "models:small_cnn")


def test_a_newcomer_reads_it_in_five_minutes():
    lines = README.splitlines()
    assert len(lines) <= 200
    first = "\n".join(lines[:40])
    for promise in ("make sweep SPACE=fashion_cnn", "make test", "sweep init", "reports/summary.html"):
        assert promise in first, f"{promise!r} is not in the README's first 40 lines"


def test_every_link_opens_and_no_word_points_elsewhere():
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README):
        if not target.startswith(("http://", "https://")):
            assert (REPO / target).exists(), f"README links to {target}, which does not exist"
    for word in UNREACHABLE:
        assert word not in README.lower(), f"the README says {word!r}, which a reader cannot open"
