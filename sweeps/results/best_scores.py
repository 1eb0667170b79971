"""The best checkpoint of a study scored on the test set its trials were scored on (all of it, or a quick study's
sample): confusion, mistakes, robustness (cached per checkpoint: a checkpoint never changes)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from experiments.data.batches import predict_images
from experiments.data.loading import load_dataset, model_inputs, raw_data
from experiments.data.raw import DataSource
from experiments.evaluate import PERTURBATIONS, RegressionScores, TestScores, robustness
from sweeps.objective.checkpoints import load_checkpoint
from sweeps.space.space import Space
from sweeps.store.keys import QUICK, QUICK_STUDY
from sweeps.store.registry import BestRun, best_run
from sweeps.store.tracking import Tracker


@dataclass
class BestModelScores:
    """The best checkpoint scored on the test set its study was scored on."""

    run: BestRun
    scores: TestScores | RegressionScores
    robustness: pd.DataFrame  # empty unless the inputs are 28x28 grey images
    x_test: np.ndarray  # all the test images (the pictures of the mistakes and of the seed's case)
    case: np.ndarray | None  # class probabilities of the seed's case: test image CASE rotated 20° and shifted 3 px
    case_class: int | None = None  # the true class of test image CASE (None: a regression)

    @property
    def examples(self) -> str:
        """Which test examples the scores are over, for the page: all of them, or a quick study's sample."""
        n = len(self.scores.y_true)
        return (f"the {n:,} test examples its quick trials were scored on (a stratified sample)" if n < len(self.x_test)
                else f"all {n:,} test examples")

    @property
    def pictures(self) -> bool:
        """Whether the inputs are images to show (height, width, channels)."""
        return self.x_test.ndim == 4


CASE = 0  # the test image of the seed's case (Fashion-MNIST: an ankle boot; MNIST: a 7)
CASE_MOVE = "rotated 20° + shifted 3 px"


def case_image(x_test: np.ndarray) -> np.ndarray:
    """Test image CASE rotated 20° and shifted 3 px, as the seed note moved its digit."""
    return PERTURBATIONS[CASE_MOVE](x_test[CASE:CASE + 1])[0]


Rows = tuple[int, ...] | None  # rows of a test set, hashable for moved_test_images's cache; None: all of them


@functools.lru_cache(maxsize=2)
def moved_test_images(data: DataSource, rows: Rows = None) -> dict[str, np.ndarray]:
    """The test images of ``data`` (those of ``rows``: :func:`scored_rows`) under each of :data:`PERTURBATIONS` but
    the first, the images as they are, moved once per process as :func:`raw_data` reads them once: ``sweep report``
    scores the best checkpoint of every study, and the studies of one dataset share them."""
    x = model_inputs(_rows_of(raw_data(data).arrays["x_test"], rows))
    return {name: move(x) for name, move in list(PERTURBATIONS.items())[1:]}


def scored_rows(study: optuna.Study, space: Space) -> Rows:
    """The rows of the test set that a quick study's trials were scored on (its stratified sample, 1,200 of
    Fashion-MNIST's 10,000): its best model is scored on the same rows, its numbers read with theirs and ~8× faster.
    None for a study trained on the whole data."""
    if not study.user_attrs.get(QUICK_STUDY):
        return None
    spec = space.spec
    rows = load_dataset(space.data, spec.validation, spec.val_size, spec.sweep.seed, QUICK["subset"]).test_rows
    return None if rows is None else tuple(rows.tolist())


def _rows_of(x: np.ndarray, rows: Rows) -> np.ndarray:
    return x if rows is None else x[np.asarray(rows)]


MOVABLE = (28, 28, 1)  # the seed note's moves (rotations, shifts) are about 28x28 grey images


def evaluate_best(study: optuna.Study, tracker: Tracker, space: Space, cache_dir: Path) -> BestModelScores | None:
    """Load the best checkpoint and score it on the test examples its study's trials were scored on (all of them,
    or a quick study's sample: :func:`scored_rows`): confusion, mistakes, and for 28x28 grey images robustness to
    rotations and shifts."""
    run = best_run(study, tracker)
    if run is None:
        return None
    raw = raw_data(space.data)
    movable = model_inputs(raw.arrays["x_test"][:1]).shape[1:] == MOVABLE
    streamed = raw.streamed and not movable  # stored images stay on disk; 28x28 grey ones are moved in memory
    x_all = raw.arrays["x_test"] if streamed else model_inputs(raw.arrays["x_test"])
    rows = scored_rows(study, space)
    x, y = _rows_of(x_all, rows), _rows_of(raw.arrays["y_test"], rows)
    saved = cache_dir / run.run_id / "test_scores.npz"  # a checkpoint never changes: score it once
    cached = np.load(saved) if saved.is_file() else None
    if cached is not None and ("case" in cached or not movable) and len(cached["probabilities"]) == len(y):
        with cached as f:
            probabilities, case = f["probabilities"], f["case"] if movable else None
            rob = pd.DataFrame({"perturbation": f["perturbation"], "accuracy": f["accuracy"]})
    else:  # not scored yet, or on other rows (scored before a quick study's sample was, or the seed's case kept)
        model = load_checkpoint(tracker, run.run_id, cache_dir)
        # A regression's "probabilities" are its predictions.
        probabilities = predict_images(model, x) if streamed else model.predict(x, batch_size=1024, verbose=0)
        moved = moved_test_images(space.data, rows) if movable else {}
        rob = (robustness(model, moved, y, as_they_are=probabilities) if movable
               else pd.DataFrame({"perturbation": [], "accuracy": []}))
        case = model.predict(case_image(x_all)[None], verbose=0)[0] if movable else None
        np.savez(saved, probabilities=probabilities, perturbation=rob["perturbation"].to_numpy(str),
                 accuracy=rob["accuracy"].to_numpy(), **({"case": case} if case is not None else {}))
    scores = (TestScores(y_true=y.astype(np.int64), probabilities=probabilities, class_names=raw.class_names,
                         rows=None if rows is None else np.asarray(rows))
              if raw.class_names else RegressionScores(y_true=y.astype(np.float64), y_pred=probabilities[:, 0].astype(np.float64)))
    return BestModelScores(run=run, scores=scores, robustness=rob, x_test=x_all, case=case,
                           case_class=int(raw.arrays["y_test"][CASE]) if raw.class_names else None)
