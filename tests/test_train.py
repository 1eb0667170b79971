"""One repeat: fit with the standard callbacks, restore the best checkpoint, score it on test."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from experiments.data.loading import load_dataset
from experiments.settings import OPTIMIZER_NAMES, TrainSettings
from experiments.train import OPTIMIZERS, TrainingInterrupted, WarmStart, train_repeat


@pytest.fixture(scope="module")
def small(request):
    from .conftest import real_data_dir

    mp = pytest.MonkeyPatch()
    mp.setenv("SWEEPS_DATA_DIR", str(real_data_dir()))
    request.addfinalizer(mp.undo)
    return load_dataset("fashion_mnist", "holdout", subset=3000)


def test_every_optimizer_name_has_a_keras_class():
    assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES


def test_repeat_restores_the_best_checkpoint_and_scores_it_on_test(small, tmp_path):
    settings = TrainSettings(epochs=3, batch_size=64, verbose=0)
    result = train_repeat("mlp", {"units": 64}, settings, small, seed=7, workdir=tmp_path)
    assert result.epochs == 3 and result.stop_reason == "max_epochs"
    assert set(result.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s"}
    assert result.best_epoch == int(np.argmax(result.history["val_accuracy"])) + 1
    restored = keras.models.load_model(result.checkpoint)
    _, val_acc = restored.evaluate(small.x_val, small.y_val, verbose=0)
    assert val_acc == pytest.approx(result.best("val_accuracy"), abs=1e-6)
    test_loss, test_acc = restored.evaluate(small.x_test, small.y_test, verbose=0)
    assert (result.test_loss, result.test_accuracy) == (pytest.approx(test_loss, abs=1e-5), pytest.approx(test_acc, abs=1e-6))
    assert result.test_accuracy > 0.5  # ten classes: chance is 0.1
    assert result.param_count == 784 * 64 + 64 + 64 * 10 + 10 and "dense" in result.summary


def test_same_seed_same_result(small, tmp_path):
    settings = TrainSettings(epochs=1, batch_size=128, verbose=0)
    a = train_repeat("mlp", {"units": 32}, settings, small, seed=3, workdir=tmp_path / "a")
    b = train_repeat("mlp", {"units": 32}, settings, small, seed=3, workdir=tmp_path / "b")
    assert a.history["val_loss"] == pytest.approx(b.history["val_loss"], rel=1e-5)


def test_warm_start_continues_from_the_given_weights_and_epoch(small, tmp_path):
    first = train_repeat("mlp", {"units": 32}, TrainSettings(epochs=2, verbose=0), small, seed=3, workdir=tmp_path / "a")
    weights = keras.models.load_model(first.checkpoint).get_weights()
    warm = train_repeat("mlp", {"units": 32}, TrainSettings(epochs=4, verbose=0), small, seed=3, workdir=tmp_path / "c",
                        warm_start=WarmStart(weights, initial_epoch=2))
    assert (warm.epochs, warm.first_epoch) == (2, 3) and 3 <= warm.best_epoch <= 4
    assert warm.best("val_accuracy") == max(warm.history["val_accuracy"])
    # Epoch 3 from the trained weights starts where epoch 2 ended, far below the same fresh model's first epoch.
    assert warm.history["loss"][0] < first.history["loss"][0] - 0.1


def test_nan_loss_stops_training_with_reason(small, tmp_path):
    settings = TrainSettings(epochs=3, optimizer="sgd", learning_rate=1e30, verbose=0)
    result = train_repeat("mlp", {"units": 32}, settings, small, seed=1, workdir=tmp_path)
    assert result.stop_reason == "nan_loss" and result.test_accuracy is None


def test_a_callback_that_raises_leaves_the_partial_history(small, tmp_path):
    class StopAtSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("pruned")

    seen = []
    with pytest.raises(TrainingInterrupted) as info:
        train_repeat("mlp", {"units": 16}, TrainSettings(epochs=5, verbose=0), small, seed=1, workdir=tmp_path,
                     callbacks=(StopAtSecondEpoch(),), on_epoch=lambda step, logs: seen.append(step))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.result.epochs == 2 and seen == [1, 2]
    assert info.value.result.checkpoint.is_file()


def test_the_deadline_stops_training_and_keeps_the_best_weights(small, tmp_path):
    import time

    settings = TrainSettings(epochs=50, batch_size=32, patience=50, verbose=0)
    start = time.monotonic()
    result = train_repeat("mlp", {"units": 32}, settings, small, seed=1, workdir=tmp_path, deadline=start + 3)
    assert result.stop_reason == "time_budget" and 1 <= result.epochs < 50
    assert time.monotonic() - start < 3 + 10  # one batch past the deadline, then validation and the test score
    assert result.test_accuracy is not None and result.best_epoch is not None and result.checkpoint.is_file()


def test_a_passed_deadline_still_ends_with_a_scored_model(small, tmp_path):
    import time

    result = train_repeat("mlp", {"units": 16}, TrainSettings(epochs=5, verbose=0), small, seed=1, workdir=tmp_path,
                          deadline=time.monotonic() - 1)
    assert result.stop_reason == "time_budget" and result.epochs == 1 and result.test_accuracy is not None


def _epochs_trained_under(budget, seconds: list[float]) -> int:
    """Drive ``budget`` through epochs of ``seconds`` each on its own clock; the epochs trained before it stopped."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    budget.set_model(model)
    for epoch, length in enumerate(seconds):
        budget.on_epoch_begin(epoch)
        budget.clock.now += length
        budget.on_epoch_end(epoch)
        if model.stop_training:
            return epoch + 1
    return len(seconds)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("seconds", "trained", "cut"), [
    ([5, 1, 1, 1, 1, 1, 1, 1], 8, False),  # 12 s in all: the slow first epoch (tracing) is no pace, all 8 fit in 15 s
    ([5, 5, 5, 5, 5, 5, 5, 5], 3, True),  # 5 s each: 3 fit in 15 s, and the horizon is moved there
])
def test_the_time_budget_paces_from_an_epoch_that_traced_nothing(seconds, trained, cut):
    from experiments.train import TimeBudget

    budget = TimeBudget(deadline=15.0, epochs=8, steps_per_epoch=10, clock=_Clock())
    assert (_epochs_trained_under(budget, seconds), budget.reached) == (trained, cut)
    assert budget.last_epoch == trained


def test_cosine_schedule_decays_to_zero_over_the_epochs_and_weight_decay_is_set():
    from experiments.train import make_optimizer

    optimizer = make_optimizer(TrainSettings(epochs=4, learning_rate=0.01, lr_schedule="cosine", weight_decay=1e-4,
                                             optimizer="adamw"), steps_per_epoch=10)
    schedule = optimizer.learning_rate if callable(optimizer.learning_rate) else optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(0.01) and float(schedule(40)) == pytest.approx(0.0, abs=1e-9)
    assert optimizer.weight_decay == pytest.approx(1e-4)
    assert make_optimizer(TrainSettings(), steps_per_epoch=10).weight_decay is None
    assert make_optimizer(TrainSettings(optimizer="adamw", weight_decay=0.0), steps_per_epoch=10).weight_decay == 0.0


def test_plateau_schedule_halves_the_rate_when_validation_stalls(small, tmp_path):
    settings = TrainSettings(epochs=10, batch_size=256, learning_rate=2.0, optimizer="sgd", lr_schedule="plateau",
                             patience=2, verbose=0)  # a rate this high makes val_loss stall at once
    result = train_repeat("mlp", {"units": 16}, settings, small, seed=1, workdir=tmp_path)
    assert result.history["learning_rate"][0] == 2.0 and min(result.history["learning_rate"]) <= 1.0


def test_checkpoints_are_written_beside_and_renamed_so_a_failed_save_keeps_the_last_best(tmp_path):
    """Pins the private Keras API ``AtomicModelCheckpoint`` overrides: ModelCheckpoint saves through
    ``_save_model`` using ``self.filepath``. Were that to change, the saves would no longer go to the partial file."""
    from experiments.train import AtomicModelCheckpoint

    keras.utils.set_random_seed(0)
    x, y = np.random.default_rng(0).normal(size=(64, 4)).astype("float32"), np.arange(64) % 2
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    best = tmp_path / "best.keras"
    saved_to: list[str] = []
    real_save = model.save

    def save(path, *args, **kwargs):
        saved_to.append(str(path))
        if len(saved_to) == 3:  # a full disk in the middle of the third write
            open(path, "wb").write(b"half a file")
            raise OSError(28, "No space left on device")
        return real_save(path, *args, **kwargs)

    model.save = save
    checkpoint = AtomicModelCheckpoint(str(best), monitor="loss", mode="min", save_best_only=True)
    with pytest.raises(OSError, match="No space left"):
        model.fit(x, y, epochs=5, batch_size=64, callbacks=[checkpoint], verbose=0)
    assert saved_to and all(path.endswith("best.partial.keras") for path in saved_to)
    assert len(saved_to) == 3 and not (tmp_path / "best.partial.keras").exists()
    assert keras.models.load_model(best).count_params() == 10  # the second save, whole


def test_a_batch_norm_cnn_validates_well_after_a_quick_runs_few_steps(small, tmp_path):
    """3,000 images in batches of 64: 47 steps an epoch, as few as a quick run's. With Keras's default momentum
    (0.99) the moving statistics were still far from the data and validation sat at chance."""
    settings = TrainSettings(epochs=2, batch_size=64, verbose=0)
    params = {"conv_layers": 2, "filters": 16, "padding": "same", "batch_norm": True, "dense_units": 32}
    result = train_repeat("cnn", params, settings, small, seed=3, workdir=tmp_path)
    assert result.best("val_accuracy") > 0.5  # ten classes: chance is 0.1


def test_a_short_budget_ends_training_early_with_its_cosine_schedule_decayed(small, tmp_path, monkeypatch):
    import functools
    import itertools

    import experiments.train

    # The budget's clock moves 0.5 s at each reading (an epoch's start and end, each of its 6 executions of 16 steps),
    # so 20 s fit a few of the 2000 epochs on any machine under any load, and the test trains those few epochs rather
    # than for 20 real seconds.
    ticks = itertools.count(step=0.5)
    monkeypatch.setattr(experiments.train, "TimeBudget",
                        functools.partial(experiments.train.TimeBudget, clock=lambda: next(ticks)))
    settings = TrainSettings(epochs=2000, batch_size=32, patience=2000, verbose=0, lr_schedule="cosine", learning_rate=0.01)
    result = train_repeat("mlp", {"units": 32}, settings, small, seed=1, workdir=tmp_path, deadline=20.0)
    rates = result.history["learning_rate"]
    assert result.stop_reason == "time_budget" and 2 <= result.epochs < 2000
    assert rates[-1] == pytest.approx(0.0, abs=1e-6)  # decayed to its end at the last epoch that fitted
    assert rates[0] > 0.005 and all(a >= b for a, b in itertools.pairwise(rates))


def test_a_fitted_schedule_saves_and_loads_with_the_model(tmp_path):
    import keras

    from experiments.schedule import FittedCosineDecay

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(FittedCosineDecay(0.01, 100)), loss="mse")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert float(loaded.optimizer._learning_rate(50)) == pytest.approx(0.005)


def test_a_checkpoint_trained_with_the_fitted_schedule_loads_where_nothing_trained(tmp_path):
    """The process building the report (or a user's) never imported the training code: the checkpoint still loads."""
    import subprocess
    import sys
    from pathlib import Path

    import keras

    from experiments.schedule import FittedCosineDecay
    from sweeps.store.registry import CHECKPOINT

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.AdamW(FittedCosineDecay(0.01, 100)), loss="mse")
    model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)
    (tmp_path / "run").mkdir()
    model.save(tmp_path / "run" / Path(CHECKPOINT).name)
    code = ("import gc; gc.disable(); "  # its imports uncollected, as a worker's are: a quarter less CPU
            "import sys; from pathlib import Path; from sweeps.objective.checkpoints import load_checkpoint; "
            "print(load_checkpoint(None, 'run', Path(sys.argv[1])).count_params())")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "8", done.stderr[-2000:]


def test_tensorflows_note_on_retracing_each_new_model_is_dropped_and_its_other_warnings_are_not():
    import logging

    import tensorflow as tf

    import experiments.train  # noqa: F401  (its filter on TensorFlow's logger)

    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        def step(x):
            return x + 1

        for _ in range(6):  # a new traced function each time, as each trial's new model has: TensorFlow warns at 5
            tf.function(step)(tf.constant(1))
        logger.warning("another warning")
    finally:
        logger.removeHandler(handler)
    assert [record.getMessage() for record in seen] == ["another warning"]
