"""The report's pages as functions of a hand-made snapshot: no store, no training, milliseconds."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd
import pytest

from sweeps.reporting.build import overview
from sweeps.reporting.significance import seeds_section, seeds_table
from sweeps.reporting.space_page import best_config, leaderboard, space_page
from sweeps.results.study_results import REPEAT_COLUMNS, StudyResults, trials_table
from sweeps.space.space import load_space, parse_space
from sweeps.store.keys import ENGINE, QUICK_STUDY, SPACE

from .conftest import SPACES

T0 = pd.Timestamp("2026-11-26 05:00:00")


def _repeats(rows: list[tuple[int, int, float, float, float, str]]) -> pd.DataFrame:
    """(trial, seed, val_accuracy, test_accuracy, test_loss, stop_reason) per repeat run."""
    frame = pd.DataFrame([{
        "trial": t, "seed": s, "stop_reason": why, "run_id": f"{t:016x}{s:016x}", "val_accuracy": val, "val_loss": 0.3,
        "test_accuracy": acc, "test_loss": loss, "epochs": 2 if why == "pruned" else 5, "best_epoch": 2,
        "param_count": 1000 + t, "wall_time_s": 10.0, "max_epochs": 5} for t, s, val, acc, loss, why in rows])
    return frame.reindex(columns=list(REPEAT_COLUMNS.values()))


def snapshot(attrs: dict | None = None, **fields) -> StudyResults:
    """fashion_mlp with three trials of two seeds each: #2 best, #1 pruned."""
    space = load_space("fashion_mlp", SPACES)
    raw = pd.DataFrame({
        "number": [0, 1, 2], "state": ["COMPLETE", "PRUNED", "COMPLETE"], "value": [0.880, None, 0.905],
        "params_hidden_layers": [1, 2, 1], "params_dropout": [0.1, 0.4, 0.2], "params_learning_rate": [1e-3, 5e-3, 2e-3],
        "duration": pd.to_timedelta([60, 20, 70], unit="s"),
        "datetime_start": [T0, T0 + pd.Timedelta(seconds=61), T0 + pd.Timedelta(seconds=82)],
        "datetime_complete": [T0 + pd.Timedelta(seconds=60), T0 + pd.Timedelta(seconds=81), T0 + pd.Timedelta(seconds=152)],
    })
    repeats = _repeats([(0, 42, 0.879, 0.874, 0.35, "max_epochs"), (0, 43, 0.881, 0.876, 0.34, "early_stopped"),
                        (1, 42, 0.80, None, None, "pruned"),
                        (2, 42, 0.904, 0.899, 0.29, "max_epochs"), (2, 43, 0.906, 0.897, 0.30, "max_epochs")])
    curve = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "loss": [0.6, 0.4, 0.3, 0.25, 0.2],
                          "accuracy": [0.8, 0.85, 0.88, 0.9, 0.92], "val_loss": [0.45, 0.35, 0.3, 0.32, 0.36],
                          "val_accuracy": [0.84, 0.87, 0.9, 0.9, 0.89]})
    defaults = {"name": "fashion_mlp", "space": space, "attrs": {SPACE: "fashion_mlp", **(attrs or {})}, "maximise": True,
                "trials": trials_table(raw, repeats, "val_accuracy", maximise=True), "repeats": repeats,
                "experiment_id": "7", "mlflow_ui": "http://127.0.0.1:5000", "curves": {2: curve, 0: curve},
                "importances": {"learning_rate": 0.6, "dropout": 0.3, "hidden_layers": 0.1},
                "intermediate": {0: {1: 0.85, 2: 0.87}, 1: {1: 0.78, 2: 0.80}, 2: {1: 0.88, 2: 0.90}}}
    return StudyResults(**{**defaults, **fields})


def test_trials_table_puts_the_best_completed_trial_first_with_its_spread():
    trials = snapshot().trials
    assert trials["number"].tolist() == [2, 0, 1]
    best = trials.iloc[0]
    assert best["n_repeats"] == 2 and best["value_mean"] == pytest.approx(0.905)
    assert best["test_accuracy_min"] == pytest.approx(0.897) and best["test_accuracy_max"] == pytest.approx(0.899)
    assert best["duration_s"] == 70 and best["epochs"] == 10


def test_space_page_holds_every_section_from_the_snapshot():
    page = space_page(snapshot())
    for section in ("Best configuration", "Leaderboard", "Optimisation history", "Param importance",
                    "Parallel coordinates", "Learning curves of the top", "#1: trial 2, seed 42", "overfitting from epoch 4",
                    "Pruning and early stopping", "make reproduce SPACE=fashion_mlp TRIAL=2</code>",
                    "What the pruner saw", "1 trials were pruned where their line ends"):
        assert section in page, section
    assert "Trial <b>#2</b>: val_accuracy 0.9050 ± " in page and "(n=2)" in page
    assert len(re.findall(r'href="http://127.0.0.1:5000/#/experiments/7/runs/[0-9a-f]{32}"', page)) >= 3
    assert "Quick smoke run" not in page and "Best model on the test set" not in page  # none scored in this snapshot


def test_run_links_go_to_the_ui_in_use_or_name_the_run_when_none_is_known(monkeypatch):
    from sweeps.store.tracking import ui_url

    page = space_page(snapshot(mlflow_ui=None))
    assert "/#/experiments/" not in page and re.search(r"<code>[0-9a-f]{32}</code>", page)
    monkeypatch.delenv("MLFLOW_UI_URL", raising=False)
    assert ui_url("https://alice:s3cret@mlflow.example.org:8443/") == "https://mlflow.example.org:8443"
    assert ui_url("sqlite:////work/mlflow.db") is None
    monkeypatch.setenv("MLFLOW_UI_URL", "http://127.0.0.1:5077/")
    assert ui_url("sqlite:////work/mlflow.db") == "http://127.0.0.1:5077"


def test_reproduce_command_names_the_engine_and_the_quick_study():
    page = space_page(snapshot(attrs={ENGINE: "kerastuner", QUICK_STUDY: True}, name="fashion_mlp-kerastuner-quick"))
    assert "make reproduce SPACE=fashion_mlp TRIAL=2 ENGINE=kerastuner QUICK=1</code>" in page
    assert "Quick smoke run" in page
    older = space_page(snapshot(name="fashion_mlp-kerastuner"))  # a study from before the engine was recorded
    assert "TRIAL=2 ENGINE=kerastuner</code>" in older


def test_few_trials_get_no_trend_line_or_importance_and_say_why():
    page = space_page(snapshot(importances={}, importance_note="too few completed trials"))
    assert "No trend lines: 2 completed trials, fewer than 10" in page
    assert "Not shown: 2 completed trials, fewer than 10; importance from so few is mostly noise." in page


def test_leaderboard_reads_params_first_with_the_verdict_and_one_number_format():
    board = leaderboard(snapshot())
    columns = board.columns.tolist()
    assert columns[:6] == ["trial", "state", "target", "hidden_layers", "dropout", "learning_rate"]
    assert columns.index("min") == columns.index("val_accuracy mean ± 95% CI (n)") + 1  # two seeds: min and max
    assert board.loc[0, "target"].endswith(">PASS</span>") and board.loc[2, "target"] == ""  # #1 was pruned
    assert board.loc[0, "learning_rate"] == "0.002" and board.loc[0, "dropout"] == "0.2"
    page = space_page(snapshot())
    assert '<a href="fashion_mlp/trials.csv">trials.csv</a>' in page and "<pre>" not in page  # no YAML recorded
    html_page = space_page(snapshot(attrs={"space_yaml": "model: mlp\n"}, failures={3: "ValueError: bad"}))
    assert "<pre>model: mlp\n</pre>" in html_page and "ValueError: bad" in html_page


def test_two_objective_study_shows_its_pareto_front():
    text = (SPACES / "fashion_mlp.yaml").read_text() + textwrap.dedent("""
        objective: {metric: val_accuracy, secondary: param_count}
        """)
    text = re.sub(r"  pruner: .*\n", "  pruner: {name: none}\n", text)
    space = parse_space(text, SPACES / "fashion_mlp.yaml")
    result = snapshot(space=space, pareto_front=[0, 2])
    result.trials["secondary"] = result.trials["param_count"]
    page = space_page(result)
    assert "Pareto front: val_accuracy against param_count" in page and "2 trials are not beaten on both at once" in page


def test_overview_row_per_study_with_the_bar_verdict_and_time_to_it():
    row = overview([snapshot()]).iloc[0]
    assert row["complete"] == 2 and row["pruned"] == 1 and row["epochs"] == 22
    assert row["target"].endswith(">PASS</span>")  # 0.898 ≥ 0.89 and 0.295 ≤ 0.33 on the mean over seeds
    assert row["objective"] == "maximize val_accuracy" and row["target bar"] == "test_accuracy ≥ 0.89, test_loss ≤ 0.33"
    assert row["first trial meeting the bar (min)"] == "2.5"  # 2 s idle between trials; one decimal, as shown
    assert row["training wall time (min)"] == f"{result_minutes(snapshot()):.1f}"


def result_minutes(result) -> float:
    return result.trials["duration_s"].sum() / 60


def test_the_report_says_which_trials_are_baselines_and_who_found_the_best():
    result = snapshot()
    result.trials["found_by"] = ["baseline 2"] + ["sampler"] * (len(result.trials) - 1)
    board = leaderboard(result)
    assert board["found by"].tolist()[0] == "baseline 2"
    assert "baseline 2 of the space file" in best_config(result)
    assert overview([result]).iloc[0]["winner found by"] == "baseline 2"
    result.trials["found_by"] = "sampler"
    assert "chosen by the TPE sampler" in best_config(result)


def test_the_best_configuration_says_which_seeds_only_confirmed_it():
    result = snapshot()
    result.trials["n_repeats"], result.trials["confirmation_seeds"], result.trials["search_value"] = 2, 2, 0.9123
    assert ("Its scores are those of the 2 seed(s) trained after the search to confirm it (the same params, new seeds); "
            "the seed the search chose it on scored 0.912") in best_config(result)


def test_one_seed_gives_no_min_and_max_in_the_best_configuration():
    result = snapshot()
    result.trials["n_repeats"] = 1
    assert "min " not in best_config(result) and "max " not in best_config(result)


def test_time_to_the_bar_leaves_out_idle_gaps_between_sweeps_and_counts_parallel_trials_once():
    result = snapshot()
    trials = result.trials.set_index("number")
    trials.loc[2, "datetime_start"] = T0 + pd.Timedelta(hours=5)  # the next day's sweep found it
    trials.loc[2, "datetime_complete"] = T0 + pd.Timedelta(hours=5, seconds=70)
    trials.loc[1, "datetime_start"], trials.loc[1, "datetime_complete"] = T0 + pd.Timedelta(seconds=30), T0 + pd.Timedelta(seconds=81)
    result.trials = trials.reset_index()
    assert result.time_to_target() == pytest.approx(81 + 70)  # trial 0 and 1 overlap: 0-81 s, then 70 s


def blog_snapshot(scores: dict[float, list[float]]) -> StudyResults:
    """fashion_blog: one trial per dropout, its val_accuracy per seed."""
    space = load_space("fashion_blog", SPACES)
    raw = pd.DataFrame({
        "number": range(len(scores)), "state": "COMPLETE", "value": [sum(v) / len(v) for v in scores.values()],
        "params_dropout": list(scores), "duration": pd.to_timedelta([300] * len(scores), unit="s"),
        "datetime_start": [T0 + pd.Timedelta(minutes=5 * i) for i in range(len(scores))],
        "datetime_complete": [T0 + pd.Timedelta(minutes=5 * i + 5) for i in range(len(scores))],
    })
    repeats = _repeats([(t, 42 + i, v, v - 0.004, 0.25, "early_stopped")
                        for t, values in enumerate(scores.values()) for i, v in enumerate(values)])
    return StudyResults(name="fashion_blog", space=space, attrs={SPACE: "fashion_blog"}, maximise=True,
                        trials=trials_table(raw, repeats, "val_accuracy", maximise=True), repeats=repeats)


BLOG = {0.2: [0.915, 0.917, 0.913, 0.916, 0.914], 0.25: [0.918, 0.915, 0.920, 0.916, 0.919],
        0.3: [0.919, 0.921, 0.917, 0.922, 0.918], 0.5: [0.905, 0.907, 0.903, 0.906, 0.904]}


def test_blog_dropout_table_says_which_configs_the_seeds_cannot_tell_apart():
    rows = seeds_table(blog_snapshot(BLOG)).set_index("dropout")
    assert rows.index.tolist() == ["0.3", "0.25", "0.2", "0.5"]  # best first, by the mean over 5 seeds
    assert rows.loc["0.3", "verdict"] == "best" and rows.loc["0.3", "val_accuracy mean ± 95% CI (n)"].endswith("(n=5)")
    assert rows.loc["0.25", "verdict"] == "not distinguishable with n = 5 seeds"  # 0.9194 vs 0.9176: within noise
    assert rows.loc["0.5", "verdict"] == rows.loc["0.2", "verdict"] == "better"
    summary = seeds_section(blog_snapshot(BLOG))
    assert "runner-up (trial 1): <b>not distinguishable with n = 5 seeds</b>" in summary
    leaderboard = space_page(blog_snapshot(BLOG))
    assert "best − this [95% CI]" in leaderboard and "+0.0018 [" in leaderboard


def test_one_seed_configs_get_no_verdict_and_no_min_max():
    single = blog_snapshot({d: v[:1] for d, v in BLOG.items()})
    assert seeds_section(single) == "" and "best − this" not in space_page(single)
    assert "min" not in leaderboard(single).columns and "test acc max" not in leaderboard(single).columns


def test_a_big_study_lists_its_best_trials_and_draws_many_points_as_png():
    import matplotlib.pyplot as plt

    from sweeps.reporting import figures

    page = space_page(snapshot())
    assert "Every\ntrial as CSV" in page or "Every trial as CSV" in page
    assert len(leaderboard(snapshot(), rows=2)) == 2
    fig, ax = plt.subplots()
    ax.scatter(range(figures.MAX_SVG_MARKS + 1), range(figures.MAX_SVG_MARKS + 1))
    assert figures.to_data_uri(fig)[0].startswith("data:image/png;base64,")
    fig, ax = plt.subplots()
    ax.plot(range(10), range(10))
    assert figures.to_data_uri(fig)[0].startswith("data:image/svg+xml;base64,")


def test_the_winner_line_gives_a_spread_only_over_several_seeds(tmp_path, monkeypatch):
    from sweeps.reporting.winner import winner_line

    monkeypatch.chdir(tmp_path)  # a project of the user's: the command it suggests is `sweep …`

    line = winner_line(snapshot())
    assert line.startswith("best of fashion_mlp: trial 2: val_accuracy 0.9050 ± ") and "(n=2)" in line
    assert line.endswith("(mean ± 95% CI over seeds)")
    one_seed = snapshot()
    one_seed.trials = one_seed.trials.assign(n_repeats=1)
    assert winner_line(one_seed).endswith("(n=1) (one seed, no spread: `sweep run fashion_mlp --confirm N` confirms it "
                                          "on N more seeds)")


def test_importances_read_the_search_trials_alone_not_confirmations_or_warm_start_copies():
    import optuna
    from optuna.distributions import FloatDistribution

    from sweeps.results.read import _importances
    from sweeps.store.keys import CONFIRMS, WARM_FROM

    dists = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}
    study = optuna.create_study(direction="maximize")
    grid = [(i / 11, (i * 7 % 12) / 11) for i in range(12)]
    study.add_trials([optuna.trial.create_trial(params={"x": x, "y": y}, distributions=dists, value=x) for x, y in grid])
    # The winner confirmed and another study's trials copied in, both scoring by y alone: weighed in, y would matter.
    study.add_trials([optuna.trial.create_trial(params={"x": 1.0, "y": y}, distributions=dists, value=10 * y,
                                                user_attrs={key: 11}) for key in (CONFIRMS, WARM_FROM)
                      for _, y in grid])
    importances, note = _importances(study)
    assert note == "" and importances["x"] > 0.9 > importances["y"]


def test_the_test_images_are_moved_once_per_process_each_as_its_perturbation_says(data_dir):
    from experiments.data.loading import model_inputs, raw_data
    from experiments.evaluate import PERTURBATIONS
    from sweeps.results.best_scores import moved_test_images

    moved = moved_test_images("fashion_mnist")
    x = model_inputs(raw_data("fashion_mnist").arrays["x_test"])
    # The images as they are are not copied: their predictions are the checkpoint's own, made already.
    assert list(moved) == list(PERTURBATIONS)[1:] and all(len(images) == 10_000 for images in moved.values())
    ends = np.r_[0:250, -250:0]  # each image is moved on its own: the first and last 250 stand for all 10,000
    for name, images in moved.items():
        assert np.array_equal(images[ends], PERTURBATIONS[name](x[ends])), name
    assert moved_test_images("fashion_mnist") is moved  # the next report's best checkpoint: not moved again
    some = moved_test_images("fashion_mnist", (3, 9999))  # a quick study's rows only
    assert np.array_equal(some["shifted 3 px"], moved["shifted 3 px"][[3, 9999]])
