"""What every benchmark shares: the ``sweep`` command it runs as a user would, the machine it ran on, and the peak
memory of its trials."""

from __future__ import annotations

import os
import platform
import sys

import pandas as pd

from sweeps.store.keys import TRIAL, TRIAL_RUN
from sweeps.store.tracking import Tracker


def sweep_command(*args: str) -> list[str]:
    """``sweep ARGS`` in a fresh interpreter, as a user runs it (imports and start-up included in what is timed)."""
    return [sys.executable, "-m", "sweeps.cli", *args]


def machine() -> str:
    """``2 cores, x86_64, Python 3.11.7``."""
    return f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}"


def peak_rss_per_trial(tracking: str, study: str) -> list[float]:
    """Peak RSS (MiB) of the process that trained each trial of ``study``, in trial order (as logged by its run)."""
    runs = Tracker(tracking, study, create=False).runs(kind=TRIAL_RUN)
    if runs.empty or "metrics.peak_rss_mb" not in runs:
        return []
    runs = runs.assign(trial=pd.to_numeric(runs[f"tags.{TRIAL}"])).sort_values("trial")
    return [round(float(v), 1) for v in runs["metrics.peak_rss_mb"].dropna()]
