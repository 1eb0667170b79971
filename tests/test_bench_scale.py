"""bench-scale: growth exponents and targets on hand-made rows; a real (tiny) run of the simulated study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from sweeps.bench.scale import growth, run_bench_scale, save_scale
from sweeps.reporting.scale_page import scale_section, verdicts


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
    assert list(results) == ["1 worker, journal file + SQLite MLflow"]
    rows = results["1 worker, journal file + SQLite MLflow"]["rows"]
    assert [r["trials"] for r in rows] == [3, 6] and [r["finished"] for r in rows] == [3, 6]
    assert all(r["status_consistent"] and r["report_ok"] and r["mlflow_s_per_trial"] > 0 for r in rows)
    path = save_scale(results, tmp_path)
    assert json.loads(path.read_text())["setups"]["1 worker, journal file + SQLite MLflow"]["growth"]["status_s"] is not None
    assert "<h2>Scale</h2>" in scale_section(path) and "1 worker, journal file + SQLite MLflow" in scale_section(path)


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study_and_an_mlflow_server(project: Path, postgres, mlflow_server, monkeypatch):
    # The session's servers, given as a user gives theirs (--storage, MLFLOW_TRACKING_URI); the Ray test below has
    # the bench start its own (--servers).
    postgres.createdb("bench_scale")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    results = run_bench_scale(project, (4,), (2,), Console(quiet=True), storage=postgres.url("bench_scale"))
    part = results["2 workers, PostgreSQL + MLflow server"]
    assert part["about"]["workers"] == 2 and part["rows"][0]["finished"] == 4
    assert part["rows"][0]["status_consistent"] and not part["rows"][0]["duplicate_timings"]


@pytest.mark.slow
def test_through_ray_two_worker_tasks_on_a_local_multi_node_cluster_reach_the_size_exactly(project: Path):
    results = run_bench_scale(project, (4,), (2,), Console(quiet=True), servers=True, cluster=True)
    part = results["2 workers, PostgreSQL + MLflow server on Ray (1 node and a head)"]
    assert part["rows"][0]["finished"] == 4 and part["rows"][0]["status_consistent"]
    assert not part["rows"][0]["duplicate_timings"]


def test_a_second_run_keeps_the_set_ups_it_did_not_measure(tmp_path):
    about = {"date": "2026-11-26 11:00", "machine": "2 cores", "workers": 1, "stores": "x", "sizes": [100]}
    one = {"about": about, "rows": [row(100, 0.01, 0.1, 3, 10)], "growth": {}}
    save_scale({"1 worker, journal file + SQLite MLflow": one}, tmp_path)
    path = save_scale({"4 workers, PostgreSQL + MLflow server": {**one, "about": {**about, "workers": 4}}}, tmp_path)
    setups = json.loads(path.read_text())["setups"]
    assert list(setups) == ["1 worker, journal file + SQLite MLflow", "4 workers, PostgreSQL + MLflow server"]
    (tmp_path / "bench_scale.json").write_text('{"about": {}, "workers_1": {}}')  # an older version's file
    assert scale_section(tmp_path / "bench_scale.json") == ""
    assert list(json.loads(save_scale({"a": one}, tmp_path).read_text())["setups"]) == ["a"]


def test_a_failing_simulated_sweep_is_one_error_line_naming_its_cause(project: Path, monkeypatch, capsys):
    from sweeps.cli import main

    # A data folder with one file of four: an error at once (no data at all would try the Keras download first).
    (project / "broken-data" / "fashion-mnist").mkdir(parents=True)
    (project / "broken-data" / "fashion-mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    monkeypatch.setenv("SWEEPS_DATA_DIR", str(project / "broken-data"))
    assert main(["bench-scale", "--sizes", "3", "--workers", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the simulated sweep to 3 trials failed: error: ")
    assert err[0].endswith("(a fashion_mnist folder needs all four IDX gzip files)")
    assert not (project / "reports" / "bench_scale.json").exists()  # nothing half-written
