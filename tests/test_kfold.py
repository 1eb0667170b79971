"""k-fold cross-validation per trial (``validation: kfold``, ``folds: 5``): each fold is one of the trial's repeats,
holding its fold's rows out; the trial's value is the mean over folds with its spread; each fold a child run; the
pruner judges after each fold and pruned folds never train; refit trains on every training row."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import optuna
import pytest

from experiments.data.folds import fold_part, fold_rows
from experiments.data.loading import load_dataset
from experiments.outcome import RepeatResult
from sweeps.cli import main
from sweeps.objective.trial import TrialContext, run_trial
from sweeps.search.samplers import make_pruner
from sweeps.space.space import parse_space
from sweeps.store.keys import FOLD, FOLDS_TRAINED, KIND, REPEAT_RUN, STOP_REASONS, VALUE_STD
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.tracking import Tracker, tracking_uri
from tests.test_tables import cancer_csv

KFOLD_SPACE = """\
dataset: {{path: {path}, target: diagnosis}}
model: mlp
validation: kfold
folds: 5
train: {{epochs: 2, batch_size: 64}}
params:
  units: {{type: int, low: 8, high: 64}}
sweep: {{n_trials: 3, sampler: {{name: random}}{pruner}}}
"""


def space_of(tmp_path: Path, pruner: str = "", name: str = "cv"):
    return parse_space(KFOLD_SPACE.format(path=cancer_csv(tmp_path / "cancer.csv"), pruner=pruner),
                       tmp_path / f"{name}.yaml")


# --- the folds -------------------------------------------------------------------------------------------


def test_every_row_is_validated_exactly_once_and_each_fold_keeps_the_class_proportions():
    y = np.array([0] * 70 + [1] * 25 + [2] * 5)
    folds = fold_rows(y, 5, classes=True)
    validated = np.concatenate([val for _, val in folds])
    assert sorted(validated.tolist()) == list(range(100))  # every row once, none twice
    for train, val in folds:
        assert not set(train) & set(val) and len(train) + len(val) == 100
        assert np.bincount(y[val], minlength=3).tolist() == [14, 5, 1]  # 70/5, 25/5, 5/5: stratified
    again = fold_rows(y, 5, classes=True)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again, strict=True))  # seeded: the same folds every time


def test_a_regressions_folds_are_a_shuffle_not_runs_of_sorted_targets():
    y = np.arange(100, dtype=np.float32)  # sorted targets: unshuffled folds would be 0-19, 20-39…
    folds = fold_rows(y, 5, classes=False)
    assert sorted(np.concatenate([val for _, val in folds]).tolist()) == list(range(100))
    assert all(np.ptp(y[val]) > 50 for _, val in folds)


def test_kfold_data_keeps_every_training_row_and_the_test_split_untouched(tmp_path: Path):
    space = space_of(tmp_path)
    kfold = load_dataset(space.data, "kfold", space.spec.val_size, 42)
    holdout = load_dataset(space.data, "holdout", 0.2, 42)
    assert len(kfold.y_val) == 0 and len(kfold.y_train) == len(holdout.y_train) + len(holdout.y_val)
    assert np.array_equal(kfold.x_test, holdout.x_test) and np.array_equal(kfold.y_test, holdout.y_test)
    part = fold_part(kfold, 5, 2)
    train, val = fold_rows(kfold.y_train, 5, True)[2]
    assert np.array_equal(part.x_val, kfold.x_train[val]) and np.array_equal(part.x_train, kfold.x_train[train])
    numeric = part.front.schema.numeric
    # the fold's standardisation is its training rows' alone: its validation rows leak into nothing
    assert np.allclose(part.front.mean, kfold.x_train[train][:, numeric].astype(np.float64).mean(axis=0))
    assert not np.allclose(part.front.mean, kfold.front.mean)


# --- the space file --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "said"), [
    (lambda t: t.replace("dataset: {path: PATH, target: diagnosis}", "dataset: fashion_mnist"),
     "validation: kfold is for data of yours"),
    (lambda t: t.replace("PATH, target: diagnosis", "images"), "validation: kfold needs a table"),
    (lambda t: t.replace("validation: kfold\n", ""), "folds: only with validation: kfold"),
    (lambda t: t.replace("n_trials: 3", "n_trials: 3, repeats: 3"), "sweep.repeats: with validation: kfold"),
    (lambda t: t.replace("validation: kfold\nfolds: 5\n", "") + "", None),
])
def test_kfold_where_it_does_not_fit_is_one_line_and_exit_2(project: Path, capsys, change, said):
    cancer_csv(project / "cancer.csv")
    text = change(KFOLD_SPACE.format(path="PATH", pruner="")).replace("PATH", "cancer.csv")
    (project / "search_spaces" / "cv.yaml").write_text(text)
    assert main(["check", "cv"]) == (0 if said is None else 2)
    if said is not None:
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and said in err[0], err
        assert not (project / "mlruns").exists() and not (project / "optuna.db").exists()


def test_a_kfold_space_on_the_keras_tuner_engine_is_one_line_and_exit_2_nothing_written(project: Path, capsys):
    cancer_csv(project / "cancer.csv")
    (project / "search_spaces" / "cv.yaml").write_text(KFOLD_SPACE.format(path="cancer.csv", pruner=""))
    assert main(["run", "cv", "--engine", "kerastuner", "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "validates by kfold, which the optuna engine runs" in err[0], err
    assert not (project / "mlflow.db").exists() and not (project / "optuna.journal").exists()


def test_wilcoxon_without_folds_is_refused(tmp_path: Path):
    text = KFOLD_SPACE.format(path="x.csv", pruner=", pruner: {name: wilcoxon}").replace("validation: kfold\nfolds: 5\n", "")
    with pytest.raises(Exception, match="wilcoxon compares a trial's folds"):
        parse_space(text, tmp_path / "cv.yaml")


def test_a_kfold_space_trains_a_repeat_per_fold_and_prunes_with_wilcoxon_by_default(tmp_path: Path):
    spec = space_of(tmp_path).spec
    assert (spec.folds, spec.sweep.repeats, spec.sweep.pruner.name) == (5, 5, "wilcoxon")


# --- a trial: folds as repeats ---------------------------------------------------------------------------


class FakeTraining:
    """Stands in for ``train_repeat``: a fold's score is the params' quality plus a per-fold offset; it records
    which rows each repeat validated on."""

    def __init__(self, quality):
        self.quality, self.calls = quality, []

    def __call__(self, family, model_params, settings, data, seed, workdir, callbacks=(), **_):
        fold = len([c for c in self.calls if c[0] == model_params["units"]])
        self.calls.append((model_params["units"], seed, data.x_val.copy()))
        value = self.quality(model_params["units"]) + 0.01 * fold
        return RepeatResult(seed=seed, history={"loss": [0.5], "val_accuracy": [value], "val_loss": [1 - value]},
                            stop_reason="max_epochs", best_epoch=1, test_accuracy=value, test_loss=0.5)


def run_trials(tmp_path: Path, quality, units: list[int], pruner: str = "") -> tuple[optuna.Study, TrialContext, FakeTraining]:
    space = space_of(tmp_path, pruner)
    data = load_dataset(space.data, "kfold", space.spec.val_size, 42)
    tracker = Tracker(tracking_uri(tmp_path), "cv")
    fake = FakeTraining(quality)
    ctx = TrialContext(space=space, data=data, tracker=tracker, sweep_run=tracker.start_run("sweep"),
                       workdir=tmp_path / "work", tags={}, train=fake)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(space))
    for u in units:
        study.enqueue_trial({"units": u})
    study.optimize(lambda t: run_trial(ctx, t), n_trials=len(units))
    return study, ctx, fake


def test_a_trials_value_is_the_mean_over_its_folds_each_a_child_run_validating_its_own_rows(tmp_path: Path):
    study, ctx, fake = run_trials(tmp_path, lambda units: 0.8, [32], pruner=", pruner: {name: none}")
    trial = study.trials[0]
    folds = [0.8 + 0.01 * i for i in range(5)]
    assert trial.value == pytest.approx(statistics.mean(folds))
    assert trial.user_attrs[VALUE_STD] == pytest.approx(statistics.stdev(folds))
    assert trial.user_attrs[FOLDS_TRAINED] == 5
    expected = fold_rows(ctx.data.y_train, 5, True)
    for i, (_, seed, x_val) in enumerate(fake.calls):  # repeat i (seed 42 + i) holds fold i out
        assert seed == 42 + i and np.array_equal(x_val, ctx.data.x_train[expected[i][1]])
    runs = ctx.tracker.runs(kind=REPEAT_RUN)
    assert sorted(runs[f"tags.{FOLD}"].astype(int)) == [0, 1, 2, 3, 4]
    assert sorted(runs["metrics.best_val_accuracy"]) == pytest.approx(folds)
    assert (runs[f"tags.{KIND}"] == REPEAT_RUN).all()


def test_wilcoxon_prunes_a_trial_worse_on_every_fold_and_its_pruned_folds_never_train(tmp_path: Path):
    study, _, fake = run_trials(tmp_path, lambda units: 0.5 + units / 100, [60, 10, 62])
    good, bad, better = study.trials
    assert good.state == better.state == optuna.trial.TrialState.COMPLETE
    assert bad.state == optuna.trial.TrialState.PRUNED
    trained = [u for u, _, _ in fake.calls]
    assert trained.count(10) == bad.user_attrs[FOLDS_TRAINED] == 4  # n=4 all worse: p = 1/16 < 0.1; fold 5 never trains
    assert trained.count(60) == trained.count(62) == 5  # better than the best: every fold
    assert bad.user_attrs[STOP_REASONS][-1] == "pruned"
    assert list(bad.intermediate_values) == [0, 1, 2, 3]  # one report per fold, steps = fold index


HOLDOUT_SPACE = """\
dataset: {path: cancer.csv, target: diagnosis}
model: mlp
train: {epochs: 3, batch_size: 64}
params:
  units: {type: int, low: 8, high: 64}
  dropout: {type: float, low: 0.0, high: 0.3}
sweep: {n_trials: 3, repeats: 2, sampler: {name: tpe}}
"""
# The trials of HOLDOUT_SPACE for seed 42, measured on the commit before kfold existed (7460c3b, its tree by `git
# archive` run with /tmp/kf_baseline.py): number, params, value, spread over the 2 seeds.
BEFORE_KFOLD = [(0, {"units": 29, "dropout": 0.2852142919229748}, 0.7747252881526947, 0.05439282607997685),
                (1, {"units": 49, "dropout": 0.17959754525911098}, 0.9175824224948883, 0.03885201862855489),
                (2, {"units": 16, "dropout": 0.04679835610086079}, 0.8131868243217468, 0.015540807451421956)]


@pytest.mark.slow
def test_spaces_without_kfold_train_the_same_trials_as_before(project: Path):
    import sweeps.api

    cancer_csv(project / "cancer.csv")
    (project / "search_spaces" / "hold.yaml").write_text(HOLDOUT_SPACE)
    sweeps.api.run("hold", root=project)
    study = optuna.load_study(study_name="hold", storage=open_storage(default_storage(project)))
    got = [(t.number, t.params, t.value, t.user_attrs[VALUE_STD]) for t in study.trials]
    assert [(n, p) for n, p, _, _ in got] == [(n, p) for n, p, _, _ in BEFORE_KFOLD]
    assert [v for _, _, v, _ in got] == pytest.approx([v for _, _, v, _ in BEFORE_KFOLD], abs=1e-6)
    assert [s for _, _, _, s in got] == pytest.approx([s for _, _, _, s in BEFORE_KFOLD], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("project", ["workers"], indirect=True)
def test_a_kfold_sweep_in_worker_processes_reports_its_spread_over_folds_and_refits_on_every_row(project: Path, capsys):
    cancer_csv(project / "cancer.csv")
    (project / "search_spaces" / "cv.yaml").write_text(
        KFOLD_SPACE.format(path="cancer.csv", pruner="").replace("n_trials: 3", "n_trials: 2").replace("folds: 5", "folds: 3"))
    assert main(["run", "cv", "--quick", "--refit"]) == 0
    out = capsys.readouterr().out
    assert "over 3 folds" in out and "training rows (no fold held out)" in out
    runs = Tracker(tracking_uri(project), "cv-quick", create=False).runs()
    folds = runs[runs[f"tags.{KIND}"] == REPEAT_RUN]
    assert folds.groupby(f"tags.{FOLD}").size().to_dict() == {str(i): 2 for i in range(3)}  # 2 trials × 3 folds
    sweep = runs[runs[f"tags.{KIND}"] == "sweep"].iloc[0]
    refits = runs[runs[f"tags.{KIND}"] == "refit"]
    assert int(sweep["params.val_size"]) == 0 and len(refits) == 3  # a refit per fold's seed, on every row
    assert set(refits["params.train_size"]) == {sweep["params.train_size"]}
    page = (project / "reports" / "cv-quick.html").read_text()
    assert "Folds per trial: 3" in page and "mean ± 95% CI (n folds)" in page and "(n=3)" in page
