"""Report statistics and helpers on hand-made numbers: confidence intervals, overfitting onset, the target bar."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from experiments.evaluate import PERTURBATIONS, TestScores, rotate, shift
from sweeps.predict import prepare_image
from sweeps.results.study_results import meets_target
from sweeps.space.schema import Bound
from sweeps.stats import compare, overfitting_onset, spread


def test_spread_of_five_seeds_uses_student_t():
    s = spread([0.90, 0.91, 0.92, 0.93, 0.94])
    assert (s.mean, s.n, s.low, s.high) == (pytest.approx(0.92), 5, 0.90, 0.94)
    assert s.std == pytest.approx(0.0158114, rel=1e-5)
    assert s.ci95 == pytest.approx(2.776445 * 0.0158114 / math.sqrt(5), rel=1e-5)  # t(0.975, 4) = 2.776
    assert str(s) == "0.9200 ± 0.0196 (n=5)"


def test_welch_interval_of_two_five_seed_configs_by_hand():
    best = [0.90, 0.91, 0.92, 0.93, 0.94]
    close = compare(best, [v - 0.01 for v in best], maximise=True)
    # equal variances 0.00025: se = sqrt(2 * 0.00025 / 5) = 0.01, Welch df = 8, t(0.975, 8) = 2.306
    assert close is not None and close.mean == pytest.approx(0.01)
    assert (close.low, close.high) == (pytest.approx(0.01 - 0.02306, rel=1e-3), pytest.approx(0.01 + 0.02306, rel=1e-3))
    assert close.verdict == "not distinguishable with n = 5 seeds" and str(close) == "+0.0100 [-0.0131, +0.0331]"
    far = compare(best, [v - 0.05 for v in best], maximise=True)
    assert far is not None and far.better and far.verdict == "better"


def test_compare_for_a_loss_needs_the_interval_below_zero_and_two_seeds_each():
    lower = compare([0.20, 0.21, 0.22], [0.30, 0.31, 0.33], maximise=False)
    assert lower is not None and lower.better and lower.high < 0
    assert compare([0.20, 0.21, 0.22], [0.30, 0.31, 0.33], maximise=True).verdict == "not distinguishable with n = 3 seeds"
    assert compare([0.9, 0.91], [0.8], maximise=True) is None  # one seed: no spread to judge by
    uneven = compare([0.9, 0.91, 0.92], [0.9, None, 0.91], maximise=True)
    assert uneven is not None and uneven.verdict == "not distinguishable with n = 3 and 2 seeds"


def test_spread_ignores_missing_values_and_has_no_interval_for_one_seed():
    s = spread([0.8, None, float("nan")])
    assert (s.mean, s.n, s.std) == (0.8, 1, 0.0) and math.isnan(s.ci95)
    assert str(s) == "0.8000 (n=1)"
    assert spread([]).n == 0 and str(spread([])) == ""


@pytest.mark.parametrize("loss, val_loss, onset", [
    ([1.0, 0.6, 0.4, 0.3, 0.2], [0.9, 0.6, 0.5, 0.55, 0.7], 4),   # val turns up after epoch 3 while train falls
    ([1.0, 0.6, 0.4, 0.3], [0.9, 0.6, 0.5, 0.45], None),           # still improving
    ([1.0, 0.6, 0.6, 0.7], [0.9, 0.5, 0.6, 0.7], None),            # train stopped falling too: not overfitting
    ([1.0], [0.9], None),
    ([1.0, 0.5, 0.3], [0.4, 0.45, 0.5], 2),                        # overfits from the start
])
def test_overfitting_onset(loss, val_loss, onset):
    assert overfitting_onset(loss, val_loss) == onset


EXAM = {"test_accuracy": Bound(min=0.89), "test_loss": Bound(max=0.33)}


@pytest.mark.parametrize("accuracy, loss, ok", [
    (0.918, 0.233, True),    # the blog's best hand result
    (0.890, 0.330, True),    # exactly on the bar
    (0.868, 0.30, False),    # the blog's first MLP: accuracy too low
    (0.91, 0.34, False),     # loss too high
    (float("nan"), 0.2, None),
])
def test_target_bar(accuracy, loss, ok):
    assert meets_target(pd.Series({"test_accuracy_mean": accuracy, "test_loss_mean": loss}), EXAM) == ok


def test_confusion_per_class_and_mistakes():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    scores = TestScores(y_true=np.array([0, 1, 1, 1]), probabilities=probabilities, class_names=("cat", "dog"))
    assert scores.accuracy == 0.75
    assert scores.confusion().to_numpy().tolist() == [[1, 0], [1, 2]]
    assert scores.per_class_accuracy().tolist() == [1.0, pytest.approx(2 / 3)]
    assert scores.mistakes().to_dict("records") == [{"index": 2, "true": "dog", "predicted": "cat", "confidence": 0.7}]
    sampled = TestScores(y_true=scores.y_true, probabilities=probabilities, class_names=("cat", "dog"),
                         rows=np.array([4, 17, 250, 9000]))  # a quick study's rows of the test set
    assert sampled.mistakes()["index"].tolist() == [250]  # what `sweep predict --from-test` and the pictures take


def test_perturbations_keep_the_shape_and_move_the_pixels():
    x = np.zeros((1, 28, 28, 1), np.float32)
    x[0, 10, 10, 0] = 1.0
    assert shift(3)(x)[0, 13, 13, 0] == 1.0
    assert rotate(20)(x).shape == x.shape and rotate(20)(x)[0, 10, 10, 0] < 1.0
    assert all(t(x).shape == x.shape for t in PERTURBATIONS.values())


def test_a_photo_of_a_dark_object_on_white_becomes_a_light_object_on_black(tmp_path):
    pixels = np.full((300, 200), 255, np.uint8)
    pixels[100:200, 50:150] = 0
    Image.fromarray(pixels).convert("RGB").save(tmp_path / "shirt.jpg")
    image = prepare_image(tmp_path / "shirt.jpg")
    assert image.shape == (28, 28, 1) and image.dtype == np.float32
    assert image[14, 14, 0] > 0.9 and image[1, 14, 0] < 0.1  # object bright, background dark


def test_moved_validation_copy_is_seeded_and_moves_every_image_within_bounds():
    from experiments.evaluate import moved_copy

    x = np.zeros((50, 28, 28, 1), dtype=np.float32)
    x[:, 10:18, 12:16, 0] = 1.0  # a bar in the middle, well inside the frame
    moved = moved_copy(x, seed=0)
    assert np.array_equal(moved, moved_copy(x, seed=0)) and not np.array_equal(moved, moved_copy(x, seed=1))
    assert moved.shape == x.shape and moved.dtype == x.dtype
    changed = np.abs(moved - x).reshape(len(x), -1).sum(axis=1)
    assert (changed > 0).mean() > 0.9  # (almost) every image moved: a 0° 0 px draw is rare
    # rotation ≤ 20° and shift ≤ 3 px keep the bar inside the frame: its ink is kept (bilinear blur aside)
    assert np.allclose(moved.reshape(len(x), -1).sum(axis=1), x.reshape(len(x), -1).sum(axis=1), rtol=0.15)
