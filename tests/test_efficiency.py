"""The efficiency part of ``make bench``: R★ and the anytime table from hand-made curves, and (slow) one tiny
run of the part end to end."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import optuna
import pandas as pd
import pytest

from sweeps.bench.curves import anytime, bar_of, engine_summary, held_at, in_runs, median_r_star, r_star
from sweeps.bench.efficiency import EfficiencyOptions
from sweeps.bench.table_data import covertype_like
from sweeps.store.storage import default_storage, open_storage


def steps(*points: tuple[float, float | None]) -> list[dict]:
    """Best-so-far steps at (baseline runs, test accuracy of the model held)."""
    return [{"runs": runs, "minutes": runs, "val": 0.5 + i / 100, "test": test, "trial": i, "seeds": 1}
            for i, (runs, test) in enumerate(points)]


def test_the_bar_is_the_baseline_mean_less_its_95_percent_half_width():
    bar = bar_of([0.80, 0.82, 0.81])  # sd 0.01, t(0.975, 2) = 4.303: half-width 4.303 × 0.01 / √3 = 0.0248
    assert bar == {"bar": 0.7852, "mean": 0.81, "ci95": 0.0248, "sd": 0.01, "n": 3}
    with pytest.raises(ValueError, match="at least 2 seeds"):
        bar_of([0.8])


def test_minutes_become_baseline_runs():
    assert in_runs([{"seconds": 60.0, "test": 0.8}], unit_s=40.0) == [{"seconds": 60.0, "test": 0.8, "runs": 1.5}]


def test_r_star_is_when_the_model_held_first_reaches_the_bar():
    curve = steps((0.4, 0.70), (1.5, 0.80), (3.0, 0.79))  # crosses the bar at 1.5 runs; later a better val, worse test
    assert r_star(curve, bar=0.78) == 1.5
    assert r_star(curve, bar=0.80) == 1.5  # reaching the bar exactly counts
    assert r_star(curve, bar=0.81) is None  # never: stated as None, not as the budget
    assert r_star(steps((0.2, None), (0.9, 0.79)), bar=0.78) == 0.9  # a step without a test score never counts
    assert held_at(curve, 2.9)["test"] == 0.80 and held_at(curve, 3.0)["test"] == 0.79 and held_at(curve, 0.3) is None


def test_the_median_counts_a_seed_that_never_reached_as_later_than_any_that_did():
    assert median_r_star([1.5, None, 0.75]) == 1.5
    assert median_r_star([1.5, None, None]) is None
    assert median_r_star([2.0, 1.0, 3.0]) == 2.0


def test_the_anytime_table_averages_the_models_held_over_the_seeds_that_hold_one():
    curves = [steps((0.2, 0.70), (0.9, 0.80)), steps((0.6, 0.76)), steps((3.5, 0.90))]
    table = {point["runs"]: point for point in anytime(curves)}
    assert table[0.25] == {"runs": 0.25, "mean": 0.70, "sd": 0.0, "min": 0.70, "max": 0.70, "n": 1, "of": 3}
    assert table[0.5]["mean"] == 0.70 and table[0.5]["n"] == 1
    assert table[1.0]["mean"] == pytest.approx(0.78) and table[1.0]["n"] == 2 and table[1.0]["min"] == 0.76
    assert table[4.0]["mean"] == pytest.approx(0.82) and table[4.0]["n"] == 3 and table[4.0]["max"] == 0.90


def test_an_engine_summary_keeps_each_seed_and_the_reached_range():
    runs = [{"steps": steps((0.5, 0.79))}, {"steps": steps((1.0, 0.7), (2.5, 0.81))}, {"steps": steps((1.0, 0.6))}]
    for run, epochs in zip(runs, ([12], [5, 40], [9]), strict=True):
        for step, spent in zip(run["steps"], epochs, strict=True):
            step["epochs"] = spent
    summary = engine_summary(runs, bar=0.78)
    assert summary["r_star_seeds"] == [0.5, 2.5, None] and summary["r_star"] == 2.5 and summary["reached"] == 2
    assert summary["r_star_epochs"] == [12, 40, None]
    assert (summary["r_star_min"], summary["r_star_max"]) == (0.5, 2.5)


def test_the_completed_picks_of_every_seed_give_the_odds_of_reaching_the_bar_and_their_cost():
    from sweeps.bench.curves import completed_at_the_bar
    from sweeps.bench.efficiency import completed_picks

    at = pd.Timestamp("2026-12-07 21:00:00")
    trials = pd.DataFrame({"number": [2, 1, 0, 3], "state": ["COMPLETE", "PRUNED", "COMPLETE", "COMPLETE"],
                           "value": [0.8, 0.5, 0.7, 0.75], "test_accuracy_mean": [0.81, 0.5, 0.69, None],
                           "datetime_start": [at, at, at, at],
                           "datetime_complete": [at + pd.Timedelta(seconds=s) for s in (18, 3, 9, 4.5)]})
    picks = completed_picks(trials, unit_s=9.0)  # in trial order (as read, the best first); a pruned one is no pick
    assert picks == [{"trial": 0, "runs": 1.0, "test": 0.69}, {"trial": 2, "runs": 2.0, "test": 0.81},
                     {"trial": 3, "runs": 0.5, "test": None}]
    odds = completed_at_the_bar([{"picks": picks}, {"picks": [{"trial": 0, "runs": 0.8, "test": 0.8}]}], bar=0.8)
    assert odds == {"reached": 2, "of": 4, "median_runs": 0.9}  # the bar itself counts; no test score never does
    assert completed_at_the_bar([{"steps": []}], bar=0.8) == {"reached": 0, "of": 0, "median_runs": None}


def test_the_epochs_beside_a_step_are_those_of_every_trial_ended_by_then_pruned_ones_included():
    from sweeps.bench.efficiency import epochs_by

    at = pd.Timestamp("2026-12-06 19:00:00.123456")
    trials = pd.DataFrame({"number": [0, 1, 2, 3], "state": ["PRUNED", "COMPLETE", "COMPLETE", "RUNNING"],
                           "datetime_complete": [at - pd.Timedelta(seconds=5), at, at + pd.Timedelta(seconds=1), pd.NaT]})
    repeats = pd.DataFrame({"trial": [0, 1, 2, 3], "epochs": [3, 30, 12, 4]})
    assert epochs_by(trials, repeats, at) == 33  # the step's own trial counts, to the microsecond
    assert epochs_by(trials, repeats, at + pd.Timedelta(seconds=1)) == 45 and epochs_by(trials, repeats.iloc[:0], at) == 0


def test_quick_is_one_search_seed_on_a_small_sample_and_the_baseline_keeps_two():
    quick = EfficiencyOptions(seeds=3, quick=True)
    assert (quick.search_seeds, quick.baseline_seeds, quick.subset(None), quick.subset(500)) == (1, 2, 2000, 500)
    full = EfficiencyOptions(seeds=3)
    assert (full.search_seeds, full.baseline_seeds, full.subset(None)) == (3, 3, None)


def test_the_bench_table_is_the_same_every_time():
    first, again = covertype_like(), covertype_like()
    pd.testing.assert_frame_equal(first, again)
    assert first.shape == (10_000, 20) and first["cover"].nunique() == 5 and first["soil"].nunique() == 8


TABLE_SPACE = """\
dataset: {path: rows.csv, target: cover}
val_size: 0.25
model: mlp
train: {epochs: 2, batch_size: 64}
params:
  units: {type: int, low: 8, high: 64, log: true}
  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
sweep:
  sampler: {name: tpe, options: {n_startup_trials: 2}}
  pruner: {name: none}
  baselines:
    - params: {units: 16, learning_rate: 3.0e-3}
"""


@pytest.mark.slow
def test_the_efficiency_part_measures_a_search_in_baseline_runs(project: Path):
    from sweeps.cli import main

    covertype_like().head(500).to_csv(project / "rows.csv", index=False)
    (project / "search_spaces" / "rows.yaml").write_text(textwrap.dedent(TABLE_SPACE))
    assert main(["bench", "rows", "--parts", "efficiency", "--seeds", "1", "--searches", "optuna", "--subset", "0"]) == 0
    part = json.loads((project / "reports" / "bench.json").read_text())["efficiency"]
    base, engine = part["baseline"], part["engines"]["optuna"]
    assert base["seeds"] == [42, 43] and base["run_s"] > 0 and len(base["test_accuracy"]) == 2
    assert base["bar"]["bar"] == bar_of(base["test_accuracy"])["bar"]
    (run,) = engine["runs"]
    assert run["exit_status"] in (0, 143, -15) and run["trials"] >= 1 and run["steps"] and run["startup_s"] > 0
    # searched the whole span, stopped by the bench (not ended early by its own budget), and nothing past it kept
    assert run["wall_s"] >= run["startup_s"] + 5 * base["run_s"] and run["steps"][-1]["runs"] <= 5
    assert all(step["runs"] == round(step["seconds"] / base["run_s"], 3) for step in run["steps"])
    assert all(abs(step["seconds"] - step["minutes"] * 60) <= 0.31 for step in run["steps"])  # the same clock
    assert engine["r_star"] == r_star(run["steps"], base["bar"]["bar"])  # one seed: its own
    # every completed trial is a pick trained in full here (no pruner), recounted from the search's own study
    searched = optuna.load_study(study_name="rows", storage=open_storage(default_storage(Path(part["about"]["folder"]) / "optuna-1")))
    done = [t for t in searched.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert [pick["trial"] for pick in run["picks"]] == sorted(t.number for t in done) and len(done) >= 1
    assert engine["picks"]["of"] == len(done) and engine["picks"]["reached"] == sum(
        t.user_attrs["test_accuracy_mean"] >= base["bar"]["bar"] for t in done)
    assert [point["runs"] for point in engine["anytime"]] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert "Efficiency in baseline runs" in (project / "reports" / "summary.html").read_text()
