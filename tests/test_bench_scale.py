"""bench-scale: growth exponents and targets on hand-made rows; a real (tiny) run of the simulated study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from sweeps.bench_scale import growth, run_bench_scale, save_scale
from sweeps.report.scale_page import scale_section, verdicts


def row(trials: int, sampler: float, mlflow: float, status: float, report: float, **extra) -> dict:
    return {"trials": trials, "finished": trials, "workers": 1, "duplicate_timings": 0, "status_consistent": True,
            "sampler_s_per_trial": sampler, "mlflow_s_per_trial": mlflow, "trial_s": sampler + mlflow,
            "trials_per_min_per_worker": 100.0, "status_s": status, "report_s": report, "report_mb": 1.0,
            "summary_and_page_mb": 0.9, "peak_rss_mb": 900.0, **extra}


def test_growth_exponent_is_the_log_log_slope():
    linear = [row(100, 0.01, 0.1, 3, 10), row(1000, 0.1, 0.1, 30, 100)]
    assert growth(linear, "status_s") == pytest.approx(1.0) and growth(linear, "mlflow_s_per_trial") == 0.0
    assert growth(linear[:1], "status_s") is None
    quadratic = [row(100, 0.01, 0.1, 1, 1), row(300, 0.01, 0.1, 9, 1), row(1000, 0.01, 0.1, 100, 1)]
    assert growth(quadratic, "status_s") == pytest.approx(2.0)


def test_targets_on_hand_made_rows():
    ok = verdicts([row(100, 0.01, 0.10, 3, 10), row(1000, 0.02, 0.12, 20, 40)])
    assert all(ok.values())
    slow = verdicts([row(100, 0.01, 0.10, 3, 10), row(1000, 0.20, 0.12, 40, 90, report_mb=12.0)])
    assert list(slow.values()) == [False, False, False, True]
    lost = verdicts([row(100, 0.01, 0.1, 3, 10, finished=99)])
    assert lost["every size reached exactly, stores consistent (no lost or doubled run)"] is False


@pytest.mark.slow
def test_a_simulated_study_grows_through_its_sizes_with_real_stores(project: Path, tmp_path):
    results = run_bench_scale(project, (3, 6), (1,), Console(quiet=True))
    rows = results["workers_1"]["rows"]
    assert [r["trials"] for r in rows] == [3, 6] and [r["finished"] for r in rows] == [3, 6]
    assert all(r["status_consistent"] and r["report_ok"] and r["mlflow_s_per_trial"] > 0 for r in rows)
    path = save_scale(results, tmp_path)
    assert json.loads(path.read_text())["workers_1"]["growth"]["status_s"] is not None
    assert "<h2>Scale</h2>" in scale_section(path) and "workers 1" in scale_section(path)
