"""The best checkpoint of a study scored on its whole test set: confusion, mistakes, robustness (cached per
checkpoint: a checkpoint never changes)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from experiments.data.batches import predict_images
from experiments.data.loading import model_inputs, raw_data
from experiments.data.raw import DataSource
from experiments.evaluate import PERTURBATIONS, RegressionScores, TestScores, robustness
from sweeps.objective.checkpoints import load_checkpoint
from sweeps.store.registry import BestRun, best_run
from sweeps.store.tracking import Tracker


@dataclass
class BestModelScores:
    """The best checkpoint scored on the full test set of its dataset."""

    run: BestRun
    scores: TestScores | RegressionScores
    robustness: pd.DataFrame  # empty unless the inputs are 28x28 grey images
    x_test: np.ndarray
    case: np.ndarray | None  # class probabilities of the seed's case: test image CASE rotated 20° and shifted 3 px

    @property
    def pictures(self) -> bool:
        """Whether the inputs are images to show (height, width, channels)."""
        return self.x_test.ndim == 4


CASE = 0  # the test image of the seed's case (Fashion-MNIST: an ankle boot; MNIST: a 7)
CASE_MOVE = "rotated 20° + shifted 3 px"


def case_image(x_test: np.ndarray) -> np.ndarray:
    """Test image CASE rotated 20° and shifted 3 px, as the seed note moved its digit."""
    return PERTURBATIONS[CASE_MOVE](x_test[CASE:CASE + 1])[0]


@functools.lru_cache(maxsize=1)
def moved_test_images(data: DataSource) -> dict[str, np.ndarray]:
    """The test images of ``data`` as they are and under each of :data:`PERTURBATIONS`, moved once per process as
    :func:`raw_data` reads them once: ``sweep report`` scores the best checkpoint of every study, and the studies of
    one dataset share them."""
    x = model_inputs(raw_data(data).arrays["x_test"])
    return {name: move(x) for name, move in PERTURBATIONS.items()}


MOVABLE = (28, 28, 1)  # the seed note's moves (rotations, shifts) are about 28x28 grey images


def evaluate_best(study: optuna.Study, tracker: Tracker, data: DataSource, cache_dir: Path) -> BestModelScores | None:
    """Load the best checkpoint and score it on all test examples: confusion, mistakes, and for 28x28 grey images
    robustness to rotations and shifts."""
    run = best_run(study, tracker)
    if run is None:
        return None
    raw = raw_data(data)
    movable = model_inputs(raw.arrays["x_test"][:1]).shape[1:] == MOVABLE
    streamed = raw.streamed and not movable  # stored images stay on disk; 28x28 grey ones are moved in memory
    x, y = (raw.arrays["x_test"] if streamed else model_inputs(raw.arrays["x_test"])), raw.arrays["y_test"]
    saved = cache_dir / run.run_id / "test_scores.npz"  # a checkpoint never changes: score it once
    cached = np.load(saved) if saved.is_file() else None
    if cached is not None and ("case" in cached or not movable):
        with cached as f:
            probabilities, case = f["probabilities"], f["case"] if movable else None
            rob = pd.DataFrame({"perturbation": f["perturbation"], "accuracy": f["accuracy"]})
    else:  # not scored yet (or scored before the seed's case was kept)
        model = load_checkpoint(tracker, run.run_id, cache_dir)
        # A regression's "probabilities" are its predictions.
        probabilities = predict_images(model, x) if streamed else model.predict(x, batch_size=1024, verbose=0)
        moved = moved_test_images(data) if movable else {}
        rob = robustness(model, moved, y) if movable else pd.DataFrame({"perturbation": [], "accuracy": []})
        case = model.predict(moved[CASE_MOVE][CASE:CASE + 1], verbose=0)[0] if movable else None
        np.savez(saved, probabilities=probabilities, perturbation=rob["perturbation"].to_numpy(str),
                 accuracy=rob["accuracy"].to_numpy(), **({"case": case} if case is not None else {}))
    scores = (TestScores(y_true=y.astype(np.int64), probabilities=probabilities, class_names=raw.class_names)
              if raw.class_names else RegressionScores(y_true=y.astype(np.float64), y_pred=probabilities[:, 0].astype(np.float64)))
    return BestModelScores(run=run, scores=scores, robustness=rob, x_test=x, case=case)
