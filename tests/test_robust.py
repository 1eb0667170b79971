"""Robustness as a goal, end to end: a quick sweep of the shipped fashion_cnn_robust space on real data."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from sweeps.cli import main
from sweeps.store.tracking import Tracker, tracking_uri

from .test_sweep import runs, study

pytestmark = pytest.mark.slow


def test_robust_space_selects_on_the_moved_validation_copy_and_the_report_reads_the_seed_case(project: Path):
    assert main(["run", "fashion_cnn_robust", "--quick"]) == 0
    name = "fashion_cnn_robust-quick"
    trials = {t.number: t for t in study(project, name).get_trials()}
    trial_runs = runs(project, name)
    trial_runs = trial_runs[trial_runs["tags.sweeps.kind"] == "trial"].set_index("tags.sweeps.trial")
    tracker = Tracker(tracking_uri(project), name, create=False)
    client = mlflow.MlflowClient(tracking_uri(project))
    for number, trial in trials.items():
        run = trial_runs.loc[str(number)]
        assert trial.value == pytest.approx(run["metrics.best_val_robust_accuracy"])  # the objective
        assert run["params.robust"] == "True" and run["params.monitor"] == "val_robust_accuracy"
        curve = tracker.metric_history(run["run_id"], ("val_robust_accuracy", "val_accuracy"))
        assert len(curve) == run["metrics.epochs"] and curve["val_robust_accuracy"].between(0, 1).all()
        # rotated within ±20° and shifted up to 3 px, validation images are harder than as they are
        assert (curve["val_robust_accuracy"] < curve["val_accuracy"]).all()
        summary = client.download_artifacts(run["run_id"], "model_summary.txt", str(project))
        augmented = "random_rotation" in Path(summary).read_text()
        assert augmented == (float(run["params.augment_rotate"]) > 0)  # the second baseline augments
    page = (project / "reports" / "summary.html").read_text()
    assert "The seed&#x27;s case" in page or "The seed's case" in page
    assert f'<a href="{name}.html">{name}</a>' in page and "val_robust_accuracy" in page
