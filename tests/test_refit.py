"""Refit: the best config trained again on training + validation images, scored once, registered as a refit."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from rich.console import Console

from sweeps.cli import main
from sweeps.search.study import open_study
from sweeps.space.space import load_space
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.tracking import Tracker, tracking_uri

from .test_sweep import runs, write_space


@pytest.mark.slow
def test_refit_after_a_sweep_trains_on_validation_too_and_registers_a_refit(project: Path, capsys):
    write_space(project, "tiny", repeats=2)
    assert main(["run", "tiny", "--quick", "--trials", "2", "--refit"]) == 0
    out = capsys.readouterr().out
    assert "refit of tiny-quick trial" in out and "registered models:/tiny-quick/" in out
    all_runs = runs(project, "tiny-quick")
    refits = all_runs[all_runs["tags.sweeps.kind"] == "refit"]
    assert len(refits) == 2 and set(refits["status"]) == {"FINISHED"} and set(refits["params.seed"]) == {"42", "43"}
    sweep = all_runs[all_runs["tags.sweeps.kind"] == "sweep"].iloc[0]  # the split the sweep trained and selected on
    both = int(sweep["params.train_size"]) + int(sweep["params.val_size"])
    assert set(refits["params.train_size"]) == {str(both)}
    best = study_best(project)
    selected = all_runs[(all_runs["tags.sweeps.kind"] == "repeat") & (all_runs["tags.sweeps.trial"] == str(best))]
    assert sorted(refits["params.epochs"].astype(int)) == sorted(selected["metrics.best_epoch"].astype(int))
    assert refits["metrics.test_accuracy"].between(0.5, 1).all()  # above chance (0.1) on the real test set
    versions = mlflow.MlflowClient(tracking_uri(project)).search_model_versions("name='tiny-quick'")
    assert sum(v.tags.get("refit") == "true" for v in versions) == 1
    assert sum(v.tags.get("refit") != "true" for v in versions) == 1  # the selected best is registered too
    page = (project / "reports" / "tiny-quick.html").read_text()
    assert "Selected vs refit" in page and f"({both:,} images)" in page and "(n=2)" in page


def study_best(project: Path) -> int:
    found = optuna.load_study(study_name="tiny-quick", storage=open_storage(default_storage(project)))
    return found.best_trial.number


def test_refit_refuses_a_space_that_selects_on_the_test_set(tiny: Path, capsys):
    text = (tiny / "search_spaces" / "tiny.yaml").read_text()
    (tiny / "search_spaces" / "tiny.yaml").write_text("validation: test\n" + text)
    study = open_study(load_space("tiny", tiny / "search_spaces"), open_storage(default_storage(tiny)), False,
                       Console(quiet=True))
    Tracker(tracking_uri(tiny), study.study_name)
    study.add_trial(optuna.trial.create_trial(params={"units": 64}, value=0.8,
                                              distributions={"units": CategoricalDistribution([64])}))
    capsys.readouterr()  # what setting the stores up printed
    assert main(["refit", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: tiny: this space selects on the test set (validation: test), so a refit would train on the "
                   "test images it is scored on; refit needs validation: holdout, stratified or kfold"]
