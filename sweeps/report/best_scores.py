"""The best checkpoint of a study scored on its whole test set: confusion, mistakes, robustness (cached per
checkpoint: a checkpoint never changes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from experiments.data import DATASETS, load_raw, to_model_input
from experiments.evaluate import TestScores, robustness, score
from sweeps.store.registry import BestRun, best_run, load_checkpoint
from sweeps.store.tracking import Tracker


@dataclass
class BestModelScores:
    """The best checkpoint scored on the full test set of its dataset."""

    run: BestRun
    scores: TestScores
    robustness: pd.DataFrame
    x_test: np.ndarray


def evaluate_best(study: optuna.Study, tracker: Tracker, dataset: str, cache_dir: Path) -> BestModelScores | None:
    """Load the best checkpoint and score it on all test images: confusion, mistakes, robustness."""
    run = best_run(study, tracker)
    if run is None:
        return None
    raw = load_raw(dataset)
    x = to_model_input(raw.arrays["x_test"])
    y = raw.arrays["y_test"].astype(np.int64)
    saved = cache_dir / run.run_id / "test_scores.npz"  # a checkpoint never changes: score it once
    if saved.is_file():
        with np.load(saved) as f:
            probabilities = f["probabilities"]
            rob = pd.DataFrame({"perturbation": f["perturbation"], "accuracy": f["accuracy"]})
    else:
        model = load_checkpoint(tracker, run.run_id, cache_dir)
        probabilities, rob = score(model, x, y, ()).probabilities, robustness(model, x, y)
        np.savez(saved, probabilities=probabilities, perturbation=rob["perturbation"].to_numpy(str),
                 accuracy=rob["accuracy"].to_numpy())
    scores = TestScores(y_true=y, probabilities=probabilities, class_names=DATASETS[dataset].class_names)
    return BestModelScores(run=run, scores=scores, robustness=rob, x_test=x)
