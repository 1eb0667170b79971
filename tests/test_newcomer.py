"""What a newcomer meets first: the command's help and version, a report asked for outside a project, a space file
named .yml, a sampler option `check` must catch as `run` does, and tables that stay whole in a log."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.cli import LOG_WIDTH, main, make_console

SPACE = """\
dataset: fashion_mnist
model: mlp
params:
  units: {type: int, low: 16, high: 64}
sweep: {sampler: {name: tpe, options: {OPTIONS}}}
"""


def test_help_lists_no_hidden_command_and_version_is_the_packages(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "SUPPRESS" not in out and " worker " not in out and "run (or continue) the sweep" in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("sweep 0.")


def test_a_report_outside_a_project_is_one_line_and_creates_nothing(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWEEPS_STORAGE", raising=False)
    assert main(["report"]) == 2
    assert "no search_spaces/ folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["status", "demo"], ["reproduce", "demo", "--trial", "0"], ["dashboard"],
                                     ["bench", "demo"], ["bench-scale", "--sizes", "10"]])
def test_outside_a_project_a_command_of_a_study_is_one_line_and_creates_nothing(tmp_path: Path, monkeypatch, capsys,
                                                                                command: list[str]):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWEEPS_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(command) == 2
    assert "`sweep init` starts one" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_study_not_run_yet_names_the_command_that_runs_it_with_its_flags(tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "search_spaces").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWEEPS_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["status", "demo", "--quick", "--engine", "kerastuner"]) == 2
    err = capsys.readouterr().err
    assert "no sweep of 'demo-kerastuner-quick' yet" in err and "run `sweep run demo --quick --engine kerastuner` first" in err


def test_a_yml_space_is_found_and_two_files_of_one_name_are_refused(tmp_path: Path, monkeypatch, capsys):
    spaces = tmp_path / "search_spaces"
    spaces.mkdir()
    (spaces / "short.yml").write_text(SPACE.replace("OPTIONS", "n_startup_trials: 5"))
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 0 and capsys.readouterr().out.startswith("short ")
    (spaces / "short.yaml").write_text(SPACE.replace("OPTIONS", "n_startup_trials: 5"))
    assert main(["check", "short"]) == 2
    assert "both short.yaml and short.yml" in capsys.readouterr().err


def test_check_refuses_a_sampler_option_that_run_would_refuse(tmp_path: Path, monkeypatch, capsys):
    spaces = tmp_path / "search_spaces"
    spaces.mkdir()
    (spaces / "typo.yaml").write_text(SPACE.replace("OPTIONS", "n_startup_trial: 5"))
    monkeypatch.chdir(tmp_path)
    assert main(["check", "typo"]) == 2
    assert "sweep.sampler.options" in capsys.readouterr().err


def test_off_a_terminal_the_console_is_wide_enough_for_every_column(capsys):
    assert make_console().width == LOG_WIDTH  # pytest's captured stdout is not a terminal, as a log or a pipe


def test_the_dashboard_serves_the_projects_studies_with_the_storage_url_off_its_command_line(tmp_path: Path):
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    (tmp_path / "search_spaces").mkdir()
    storage = str(tmp_path / "secret-name.journal")  # where a database URL would carry a password
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "sweeps.cli", "dashboard", "--port", str(port)], cwd=tmp_path,
                            env={**os.environ, "SWEEPS_STORAGE": storage}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("the dashboard did not answer")
        assert "secret-name" not in Path(f"/proc/{proc.pid}/cmdline").read_text()
    finally:
        proc.terminate()
        try:
            out = proc.communicate(timeout=10)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"the dashboard did not stop on SIGTERM: {proc.communicate()[0][-2000:]!r}") from None
    assert "optuna-dashboard over" in out and "secret-name" not in out.split("optuna-dashboard over")[0]
