"""A sweep that asks for GPUs where TensorFlow sees none: one warning line, and the trials train on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.cli import main

pytestmark = pytest.mark.slow
WARNING = "GPU(s) per trial asked for, but TensorFlow sees none"


@pytest.mark.parametrize("per_process", ["0", "1"])  # trials in this process; a fresh worker process per trial
def test_gpus_asked_for_on_a_cpu_only_machine_warn_once_and_train(tiny: Path, capfd, monkeypatch, per_process: str):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # no GPU for TensorFlow, whatever this machine has
    # With a worker process per trial, a warning per process would show twice.
    assert main(["run", "tiny", "--trials", "2", "--subset", "1500", "--confirm", "0", "--gpus-per-trial", "1",
                 "--trials-per-process", per_process, "--no-report"]) == 0
    out = capfd.readouterr()
    said = out.out + out.err
    assert said.count(WARNING) == 1, said
    assert "tensorflow-cpu is installed: `make install GPU=1`" in said  # this venv's build, named with the fix
    assert "2 finished trials" in said
