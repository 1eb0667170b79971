"""The README runs as written: every `make` line of it is a target whose `sweep` command parses and names a
shipped space, and every YAML block in it is a valid space file."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from sweeps.cli import _parser
from sweeps.space.space import load_space, parse_space

from .conftest import REPO, SPACES

README = (REPO / "README.md").read_text()
MAKE_LINES = sorted({line.split("#")[0].strip() for line in re.findall(r"^    (make [^\n]+)", README, re.M)})


def test_the_readme_has_make_lines_and_yaml_blocks():
    assert len(MAKE_LINES) >= 12 and "make test" in MAKE_LINES
    assert README.count("```yaml") >= 1


@pytest.mark.parametrize("line", MAKE_LINES)
def test_each_make_line_is_a_target_whose_sweep_command_parses(line):
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


def test_every_yaml_block_is_a_valid_space_file():
    for block in re.findall(r"```yaml\n(.*?)```", README, re.S):
        assert parse_space(block, SPACES / "readme_example.yaml").spec.model in ("mlp", "cnn", "models:small_cnn")
