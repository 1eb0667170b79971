"""The live progress line: what it says, and that a terminal gets it instead of Keras's epoch lines."""

from __future__ import annotations

import io
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from rich.console import Console
from rich.text import Text

from sweeps.console.live import LiveLine, SweepProgress, clock


def test_the_line_shows_trials_budget_eta_best_and_the_running_epoch():
    progress = SweepProgress("val_accuracy", target=4, deadline=time.monotonic() + 1500, budget_s=1800)
    study = optuna.create_study(direction="maximize")
    for value in (0.91, 0.93):
        study.add_trial(optuna.trial.create_trial(params={"d": 0.1}, distributions={"d": FloatDistribution(0, 1)},
                                                  value=value))
    trial = study.trials[-1]
    progress.trial_done(study, trial)
    progress.epoch(2, 42, 3, 18, {"val_accuracy": 0.9012, "loss": 0.3})
    line = progress.line().plain
    assert line.startswith("trials 2/4 · 5:00 of 30:00 · ETA ~")
    assert "best 0.9300 (#1)" in line and line.endswith("trial 2 seed 42: epoch 3/18 val_accuracy 0.9012")
    assert clock(3725) == "1:02:05" and clock(65) == "1:05"


def test_no_live_line_off_a_terminal():
    progress = SweepProgress("val_accuracy", target=2)
    assert LiveLine(Console(file=io.StringIO()), progress).live is None
    assert LiveLine(Console(file=io.StringIO(), force_terminal=True), progress).live is not None


@pytest.mark.slow
def test_a_terminal_gets_the_live_line_instead_of_kerass_epoch_lines(tiny: Path):
    from sweeps.execution.launch import start_sweep
    from sweeps.search.options import SweepOptions
    from sweeps.space.space import load_space

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    start_sweep(load_space("tiny", tiny / "search_spaces"), tiny, SweepOptions(trials=2, quick=True), console)
    text = Text.from_ansi(out.getvalue()).plain
    assert "of 30:00 · best 0." in text  # drawn while training (the quick run keeps the space's 30-minute budget)
    assert "trial   1 COMPLETE" in text  # the per-trial lines scroll above it
    assert "Epoch 1/2" not in text  # Keras's own lines are off on a terminal
