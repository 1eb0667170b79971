"""The docs run as written, as the README does: each page's YAML blocks are valid space files, its `make` and
`sweep` lines parse and name what exists; the generated references cover every key, sub-command and make variable;
and `mkdocs build --strict` passes (a broken link or anchor fails), into a temporary folder."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.space.space import parse_space

from .conftest import REPO, SPACES
from .test_readme import (
    MAKE_LINE,
    UNREACHABLE,
    check_inline_names,
    check_make_line,
    check_sweep_line,
    sweep_commands,
)

DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
TEXT = {page.name: page.read_text() for page in PAGES}
# Makefile variables that are its own machinery, not a user's setting.
MAKE_INTERNALS = {"SHELL", "BIN", "SWEEP_ARGS", "MAKEFILE_LIST", "SWEEPS_DATA_DIR", "SWEEPS_STORAGE", "MLFLOW_UI_URL"}


def _hook():
    spec = importlib.util.spec_from_file_location("docs_reference_hook", DOCS / "hooks" / "reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lines(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    return sorted({(name, line.split("#")[0].strip()) for name, text in TEXT.items() for line in pattern.findall(text)})


def test_the_docs_have_their_pages():
    for name in ("index.md", "tutorial.md", "own-model-and-data.md", "space-files.md", "cli.md", "how-a-sweep-runs.md",
                 "results-and-report.md", "scale-out.md", "faults.md", "benchmarks.md", "architecture.md", "api.md"):
        assert name in TEXT, f"docs/{name} is missing"


@pytest.mark.parametrize("page", sorted(TEXT))
def test_every_yaml_block_is_a_valid_space_file(page):
    for block in re.findall(r"```yaml\n(.*?)```", TEXT[page], re.S):
        assert parse_space(block, SPACES / "docs_example.yaml").spec.model


@pytest.mark.parametrize(("page", "line"), _lines(MAKE_LINE))
def test_each_make_line_is_a_target_whose_sweep_command_parses(page, line):
    check_make_line(line)


@pytest.mark.parametrize(("page", "line"), sorted((name, line) for name, text in TEXT.items()
                                                  for line in sweep_commands(text)))
def test_each_sweep_line_parses(page, line):
    check_sweep_line(line)


@pytest.mark.parametrize("page", sorted(TEXT))
def test_every_make_and_sweep_command_named_inline_exists(page):
    check_inline_names(TEXT[page])


@pytest.mark.parametrize("page", sorted(TEXT))
def test_no_word_points_to_what_a_reader_cannot_open(page):
    for word in UNREACHABLE:
        assert word not in TEXT[page].lower(), f"docs/{page} says {word!r}"


def test_the_space_file_reference_names_every_key_of_the_schema():
    hook = _hook()
    reference = hook.space_file_reference()
    for model, keys in hook.space_file_keys().items():
        assert f"### {model}" in reference
        for key in keys:
            assert f"| `{key}` |" in reference, f"{model}.{key} is missing from the space-file reference"
    knobs = hook.knobs_reference()
    from experiments.settings import FAMILIES

    for family, names in FAMILIES.items():
        for name in names:
            assert f"| `{family}` | `{name}` |" in knobs


def test_the_cli_reference_names_every_visible_sub_command_and_option(monkeypatch):
    monkeypatch.setenv("SWEEPS_STORAGE", "postgresql://user:a-secret@db/optuna")
    hook = _hook()
    reference = hook.cli_reference()
    assert "a-secret" not in reference  # a default read from the environment is never written into the site
    commands = hook.sub_commands()
    assert "worker" not in commands and {"run", "status", "report", "init", "check"} <= set(commands)
    for name, parser in commands.items():
        assert f"## `sweep {name}`" in reference
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in reference, f"sweep {name} {option} is missing from the CLI reference"


def test_every_make_target_and_variable_is_documented():
    hook = _hook()
    assert set(hook.make_targets()) >= {"sweep", "test", "report", "status"}
    makefile = (REPO / "Makefile").read_text()
    variables = set(re.findall(r"\$\(([A-Z][A-Z_]*)\)", makefile)) | set(re.findall(r"^([A-Z][A-Z_]*) \?=", makefile, re.M))
    cli = TEXT["cli.md"]
    missing = sorted(v for v in variables - MAKE_INTERNALS if f"`{v}" not in cli)
    assert not missing, f"make variables not in docs/cli.md: {missing}"


def test_mkdocs_builds_the_site_strictly_into_a_temporary_folder(tmp_path):
    before = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=REPO, capture_output=True, text=True).stdout
    site = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                           cwd=REPO, capture_output=True, text=True, timeout=300,
                           env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path),
                                "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stdout + build.stderr
    assert (site / "index.html").is_file() and (site / "space-files" / "index.html").is_file()
    cli = (site / "cli" / "index.html").read_text()
    assert "sweep run" in cli and "<!-- generated" not in cli
    assert "sweeps.api.run" in (site / "api" / "index.html").read_text()
    assert not list(site.rglob("*.py")), "the hook was copied into the site"
    after = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=REPO, capture_output=True, text=True).stdout
    assert {line for line in after.splitlines() if "site" in line} <= {line for line in before.splitlines()}
