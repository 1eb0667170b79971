"""The report's benchmark section, from hand-made bench.json files (what ``make bench`` writes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sweeps.reporting.bench_page import bench_section


def sweep_row(trials: int, pruned: int, epochs: int, best_val: float | None, std: float = 0.0, seeds: int = 1,
              reach: float | None = None) -> dict:
    return {"trials": trials, "pruned": pruned, "epochs": epochs, "wall_s": 120.0, "seeds": seeds,
            "best_val": best_val, "best_val_std": std, "its_test_accuracy": best_val and best_val - 0.01,
            "its_test_accuracy_std": std, "first_meeting_bar_s": reach}


def bench(with_pruner: dict, without: dict, framework: list[float]) -> dict:
    about = {"space": "fashion_mlp", "subset": None, "when": "2026-11-25 20:00", "machine": "2 cores"}
    return {
        "overhead": {"space": "fashion_blog", "config": {"dropout": 0.3}, "epochs": 5, "seed": 42,
                     "plain_epoch_s": [9.0, 4.0, 4.2, 3.8, 4.0], "framework_epoch_s": framework,
                     "ratio": 0.0},  # each test sets it
        "pruning": {"about": {**about, "pruning_trials": 10, "pruner": "median"},
                    "with_pruner": with_pruner, "without_pruner": without},
        "search_quality": {"about": {**about, "budget_s": 480, "tpe_startup_trials": 10},
                           "optuna_tpe_pruned": sweep_row(9, 4, 60, 0.89, reach=300.0),
                           "random_search": sweep_row(7, 0, 90, 0.88, std=0.002, seeds=3),
                           "kerastuner_hyperband": sweep_row(20, 0, 45, None)},
    }


def write(tmp_path: Path, results: dict) -> Path:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(results))
    return path


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_targets_met(tmp_path: Path):
    results = bench(sweep_row(10, 6, 60, 0.8870), sweep_row(10, 0, 150, 0.8880), [9.5, 4.1, 4.1, 4.0, 4.3])
    results["overhead"]["ratio"] = 1.025
    page = text(bench_section(write(tmp_path, results)))
    assert "plain Keras: 4 s [3.8–4.2], n = 4 epochs" in page and "framework: 4.1 s [4–4.3], n = 4 epochs" in page
    assert "1.025× (target ≤ 1.05×: PASS" in page
    assert "Epochs saved: 60%" in page and "-0.10 points with the pruner" in page
    assert page.count("PASS") == 4 and page.count("FAIL") == 1  # the bar after 5 min, not 45 s
    assert "0.8800 ± 0.0020 sd (n = 3)" in page and "0.8900 (n = 1)" in page  # seed count, and spread when n > 1
    assert "Optuna TPE + pruning 9 4 60 2.0 0.8900 (n = 1) 0.8800 (n = 1) 5.0 min" in page
    assert "ahead of Keras Tuner Hyperband on test accuracy (0.8800 vs nothing): PASS" in page
    assert "first trial meeting the bar finished 5.0 min after the command started (target ≤ 45 s): FAIL" in page
    assert "wall clock of the search 2.0 min for a 8.0 min budget (target ≤ budget + 60 s): PASS" in page
    assert "Keras Tuner Hyperband 20 0 45 2.0 never" in page
    assert "dropout=0.3" in page and "it ran 9 in this budget (the space's baselines included), so its model never chose a trial" in page


def test_targets_missed(tmp_path: Path):
    # Pruning saved too few epochs and lost accuracy; the framework was slow.
    results = bench(sweep_row(10, 1, 140, 0.8800), sweep_row(10, 0, 150, 0.8880), [9.5, 6.0, 6.1, 6.0, 6.2])
    results["overhead"]["ratio"] = 1.5
    page = text(bench_section(write(tmp_path, results)))
    assert "Epochs saved: 7%" in page and "-0.80 points" in page
    assert "Epochs saved: 7% (target ≥ 40%); best validation accuracy -0.80 points with the pruner (target within ±0.3): FAIL" in page
    assert "(target ≤ 1.05×: FAIL" in page
    results["search_quality"]["optuna_tpe_pruned"]["trials"] = 11  # past the random start: no note
    assert "n_startup_trials" not in bench_section(write(tmp_path, results))


def test_a_bench_of_some_parts_keeps_the_other_parts(tmp_path: Path):
    from sweeps.bench.quality import save_bench

    first = bench(sweep_row(10, 6, 60, 0.8870), sweep_row(10, 0, 150, 0.8880), [9.5, 4.1, 4.1, 4.0, 4.3])
    save_bench(first, tmp_path)
    later = {"memory": {"about": {"space": "fashion_mlp", "subset": 6000, "when": "2026-11-26 05:00"},
                        "peak_rss_mb": [900.0] * 20}}
    saved = json.loads(save_bench(later, tmp_path).read_text())
    assert set(saved) == {"overhead", "pruning", "search_quality", "memory"} and saved["pruning"] == first["pruning"]
    page = text(bench_section(tmp_path / "bench.json"))
    assert "Run 2026-11-26 05:00 on fashion_mlp, a 6000-image training sample" in page
    assert "Run 2026-11-25 20:00 on fashion_mlp, the full training split, 2 cores" in page


def test_no_bench_no_section_and_a_broken_file_says_so(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a project of the user's: the command it names is `sweep bench`
    assert bench_section(tmp_path / "bench.json") == ""
    assert "bench.json is incomplete or from an older version" in bench_section(write(tmp_path, {"space": "x"}))
    (tmp_path / "bench.json").write_text("{not json")  # a half-written or hand-edited file says so too
    assert "run <code>sweep bench fashion_mlp</code> again" in bench_section(tmp_path / "bench.json")


def test_memory_growth_from_trial_10(tmp_path: Path):
    results = bench(sweep_row(10, 6, 60, 0.8870), sweep_row(10, 0, 150, 0.8880), [9.5, 4.1, 4.1, 4.0, 4.3])
    flat = [900.0 + (i % 10) * 5 for i in range(100)]  # recycled every 10 trials: the same saw-tooth
    about = {"space": "fashion_mlp", "subset": 6000, "when": "2026-11-26 04:00"}
    results["memory"] = {"about": about, "peak_rss_mb": flat}
    assert "trial 10 945 MiB, trial 100 945 MiB, highest 945 MiB: +0.0% (target &lt; 10%: PASS" in text(
        bench_section(write(tmp_path, results)))
    results["memory"] = {"about": about, "peak_rss_mb": [900.0 + 10 * i for i in range(100)]}  # 10 MiB a trial, never given back
    assert "trial 10 990 MiB, trial 100 1890 MiB, highest 1890 MiB: +90.9% (target &lt; 10%: FAIL" in text(
        bench_section(write(tmp_path, results)))


def test_best_so_far_against_the_clock_says_who_led_at_each_checkpoint(tmp_path: Path):
    results = bench(sweep_row(10, 6, 60, 0.8870), sweep_row(10, 0, 150, 0.8880), [9.5, 4.1, 4.1, 4.0, 4.3])
    rows = results["search_quality"]
    rows["about"].update(budget_s=1800, together=True)
    rows["optuna_tpe_pruned"]["best_so_far"] = [{"minutes": 1.0, "val": 0.90, "test": 0.89, "seeds": 1, "trial": 0},
                                                {"minutes": 25.0, "val": 0.93, "test": 0.925, "seeds": 1, "trial": 5}]
    rows["kerastuner_hyperband"]["best_so_far"] = [{"minutes": 8.0, "val": 0.91, "test": 0.90, "seeds": 1, "trial": 2}]
    page = text(bench_section(write(tmp_path, results)))
    assert "all at the same time, sharing the cores" in page
    assert "at 10 min: ours 0.9000 (trial 0, test 0.8900, n = 1) vs Keras Tuner 0.9100 (trial 2, test 0.9000, n = 1): FAIL" in page
    assert "at 30 min: ours 0.9300 (trial 5, test 0.9250, n = 1) vs Keras Tuner 0.9100" in page
    assert "at 60 min" not in page  # past the 30-minute budget
    assert 'alt="best so far against minutes"' in bench_section(write(tmp_path, results))


def test_a_search_that_completed_no_trial_in_its_budget_is_in_the_race_without_a_line(tmp_path: Path):
    results = bench(sweep_row(10, 6, 60, 0.8870), sweep_row(10, 0, 150, 0.8880), [9.5, 4.1, 4.1, 4.0, 4.3])
    rows = results["search_quality"]
    rows["about"].update(budget_s=5, together=True)  # every trial cut by the budget: no result, no step
    rows["optuna_tpe_pruned"]["best_so_far"] = []
    rows["kerastuner_hyperband"]["best_so_far"] = [{"minutes": 0.05, "val": 0.7, "test": 0.69, "seeds": 1, "trial": 0}]
    assert 'alt="best so far against minutes"' in bench_section(write(tmp_path, results))


def test_best_so_far_steps_only_when_a_trial_beats_the_best_before_it():
    import pandas as pd

    from sweeps.bench.quality import best_so_far

    t0 = pd.Timestamp("2026-12-02 10:00")
    trials = pd.DataFrame({"number": [0, 1, 2, 3], "state": ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"],
                           "value": [0.90, 0.89, 0.95, 0.92], "test_accuracy_mean": [0.88, 0.87, None, 0.91],
                           "n_repeats": [1, 1, 1, 3], "found_by": ["baseline 1", "sampler", "sampler", "sampler"],
                           "datetime_complete": [t0 + pd.Timedelta(minutes=m) for m in (1, 2, 3, 4)]})
    steps = best_so_far(trials, t0, maximise=True)
    assert [(s["trial"], s["minutes"], s["val"], s["seeds"]) for s in steps] == [(0, 1.0, 0.90, 1), (3, 4.0, 0.92, 3)]
    assert steps[0]["found_by"] == "baseline 1"


def test_best_by_origin_keeps_the_baselines_and_the_sampler_apart():
    import pandas as pd

    from sweeps.bench.quality import best_by_origin

    trials = pd.DataFrame({"number": [0, 1, 2, 3, 4], "state": ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE", "COMPLETE"],
                           "value": [0.90, 0.93, 0.95, 0.92, 0.91], "test_accuracy_mean": [0.88, 0.92, None, 0.91, 0.90],
                           "n_repeats": [1, 3, 1, 1, 1],
                           "found_by": ["baseline 1", "baseline 2", "sampler", "sampler", "sampler"]})
    best = best_by_origin(trials, maximise=True)
    assert best == {"baselines": {"trial": 1, "val": 0.93, "test": 0.92, "seeds": 3},
                    "sampler": {"trial": 3, "val": 0.92, "test": 0.91, "seeds": 1}}  # a pruned trial's value never counts
    assert set(best_by_origin(trials[trials["found_by"] == "sampler"], maximise=True)) == {"sampler"}


def test_the_page_says_whether_the_sampler_beat_the_baselines(tmp_path: Path):
    results = bench(sweep_row(10, 6, 60, 0.8870), sweep_row(10, 0, 150, 0.8880), [9.5, 4.1, 4.1, 4.0, 4.3])
    rows = results["search_quality"]
    rows["optuna_tpe_pruned"]["best_by_origin"] = {"baselines": {"trial": 1, "val": 0.93, "test": 0.92, "seeds": 3},
                                                   "sampler": {"trial": 7, "val": 0.935, "test": 0.925, "seeds": 1}}
    rows["random_search"]["best_by_origin"] = {"sampler": {"trial": 2, "val": 0.94, "test": 0.93, "seeds": 1}}
    page = text(bench_section(write(tmp_path, results)))
    assert ("Optuna TPE + pruning: the sampler's best 0.9350 (trial 7, test 0.9250, n = 1) vs the baselines' best "
            "0.9300 (trial 1, test 0.9200, n = 3), above them on validation: PASS") in page
    assert "random search (no pruning, no baselines): the sampler's best" not in page  # nothing to beat
    rows["optuna_tpe_pruned"]["best_by_origin"]["sampler"]["val"] = 0.92
    assert "above them on validation: FAIL" in text(bench_section(write(tmp_path, results)))


def test_the_search_variants_change_only_their_sweep_section(tmp_path: Path):
    from sweeps.bench.quality import VARIANTS, variant_file
    from sweeps.space.space import load_space
    from tests.conftest import SPACES

    shipped = load_space("fashion_cnn", SPACES)
    no_prior = variant_file(shipped, tmp_path / "optuna_no_baselines", VARIANTS["optuna_no_baselines"])
    assert shipped.spec.sweep.baselines and not no_prior.spec.sweep.baselines
    assert no_prior.spec.sweep.sampler == shipped.spec.sweep.sampler and no_prior.spec.params == shipped.spec.params
    assert no_prior.path.parent == tmp_path / "optuna_no_baselines" / "variant"
    random = variant_file(shipped, tmp_path / "random_search", VARIANTS["random_search"])
    assert (random.spec.sweep.sampler.name, random.spec.sweep.pruner.name) == ("random", "none")
    assert not random.spec.sweep.baselines


def efficiency_part(optuna: list[list[tuple[float, float]]], others: float, quick: bool = False) -> dict:
    """bench.json's efficiency part from hand-made curves: Optuna's seeds' (runs, test) steps, and the other two
    engines holding ``others`` from 0.1 runs on."""
    from sweeps.bench.curves import engine_summary

    def runs(curves: list[list[tuple[float, float]]]) -> list[dict]:
        return [{"steps": [{"runs": r, "minutes": r, "val": t, "test": t, "trial": i, "seeds": 1, "epochs": int(r * 10)}
                           for i, (r, t) in enumerate(curve)]} for curve in curves]

    bar = 0.78
    return {"about": {"space": "table_mlp", "subset": None, "when": "2026-12-06 19:00", "machine": "2 cores",
                      "quick": quick, "points": [0.25, 0.5, 1.0, 2.0, 4.0], "budget_runs": 5.0, "search_seeds": 3},
            "baseline": {"index": 1, "params": {"units_1": 64}, "seeds": [42, 43, 44], "epochs": [20, 21, 19],
                         "test_accuracy": [0.80, 0.81, 0.82], "run_s": 20.0, "run_s_each": [19.0, 20.0, 21.0],
                         "bar": {"bar": bar, "mean": 0.81, "ci95": 0.0248, "sd": 0.01, "n": 3}},
            "engines": {"optuna": engine_summary(runs(optuna), bar),
                        "kerastuner_hyperband": engine_summary(runs([[(0.1, others)]] * 3), bar),
                        "random_search": engine_summary(runs([[(0.1, others)]] * 3), bar)}}


def test_the_efficiency_part_gives_r_star_against_its_goal_the_anytime_table_and_the_figure(tmp_path: Path):
    optuna = [[(0.2, 0.77), (1.5, 0.80)], [(0.2, 0.775), (1.2, 0.79)], [(0.2, 0.771), (3.0, 0.785)]]
    page = bench_section(write(tmp_path, {"efficiency": efficiency_part(optuna, others=0.70)}))
    words = text(page)
    assert "R★ of Optuna: 1.50 (seeds: 1.50, 1.20, 3.00) (goal ≤ 1.5: PASS" in words
    assert "0.8100 − 0.0248 (95 % CI half-width, n = 3) = 0.7800" in words and "one run 20.0 s" in words
    assert "epochs trained by then 15, 12, 30, against [20, 21, 19] in the baseline's runs" in words
    # at 1 run every seed holds its first model (0.77, 0.775, 0.771); at 4 runs each its last
    assert "0.7720 [0.7700–0.7750] (n = 3)" in words and "0.7917 [0.7850–0.8000] (n = 3)" in words
    assert "Optuna ahead of both at every point: PASS" in words
    assert 'alt="held test accuracy against baseline runs"' in page
    assert "not numbers to quote" not in words


def test_an_engine_that_never_reaches_the_bar_and_a_quick_run_say_so(tmp_path: Path):
    never = [[(0.2, 0.70)], [(0.3, 0.71)], [(4.5, 0.90)]]  # the median seed never reaches 0.78
    words = text(bench_section(write(tmp_path, {"efficiency": efficiency_part(never, others=0.72, quick=True)})))
    assert "R★ of Optuna: not reached (seeds: not reached, not reached, 4.50) (goal ≤ 1.5: FAIL" in words
    assert "Optuna ahead of both at every point: FAIL" in words  # 0.70 then 0.705 against 0.72
    assert "not numbers to quote" in words


def test_random_search_says_how_often_a_pick_reaches_the_bar_and_what_one_costs(tmp_path: Path):
    from sweeps.bench.curves import engine_summary

    part = efficiency_part([[(0.2, 0.77)]] * 3, others=0.70)
    older = text(bench_section(write(tmp_path, {"efficiency": part})))
    assert "Random search trains every pick in full" not in older  # a bench.json from before picks were kept
    picks = [[(0.9, 0.79), (0.8, 0.70)], [(0.7, 0.78), (1.0, None)], [(0.85, 0.60)]]  # (runs, test) of each pick
    runs = [{"steps": [], "picks": [{"trial": i, "runs": r, "test": t} for i, (r, t) in enumerate(seed)]} for seed in picks]
    part["engines"]["random_search"] = engine_summary(runs, 0.78)
    words = text(bench_section(write(tmp_path, {"efficiency": part})))
    assert "2 of its 5 picks reached the bar, and one cost a median of 0.85 baseline runs" in words  # 0.78 counts
