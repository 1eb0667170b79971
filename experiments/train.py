"""Train one repeat: build, compile, fit with the standard callbacks, restore the best checkpoint, score on test.

Knows nothing of Optuna or MLflow: extra callbacks (pruning) and a per-epoch hook (tracking) come in
from the caller, plain results go out.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from experiments.data.batches import ImageBatches
from experiments.data.loading import Dataset
from experiments.metrics import metric_mode
from experiments.models import build_for_data
from experiments.outcome import RepeatResult, WarmStart
from experiments.points import BEST, CheckpointHook, ResumePoint
from experiments.resume import KeepResumePoint
from experiments.schedule import FittedCosineDecay
from experiments.settings import TrainSettings

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "nadam": keras.optimizers.Nadam,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}

EpochHook = Callable[[int, dict[str, float]], None]
# Batches per call into TensorFlow: same batches, same result, far less Python per batch (it halves a small
# MLP's epoch). Batch-level callbacks (TerminateOnNaN, the deadline, a stop request) see every 16th batch.
STEPS_PER_EXECUTION = 16


class _ExpectedRetracing(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls to <function …> triggered tf.function retracing" warning. Each
    trial builds a new model, whose train and test functions are traced anew: expected in a sweep, nothing to act
    on, and it reads as a fault in the user's model in every worker's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_ExpectedRetracing())  # TensorFlow's Python logger (tf.get_logger())


class TrainingInterrupted(Exception):
    """``fit`` was stopped by an exception (a pruning callback, an error); carries the partial result."""

    def __init__(self, result: RepeatResult):
        super().__init__(f"training interrupted after {result.epochs} epochs")
        self.result = result


class EpochRecorder(keras.callbacks.Callback):
    """Keeps every epoch's logs (plus its wall time) and passes them to an optional hook."""

    def __init__(self, history: dict[str, list[float]], hook: EpochHook | None = None):
        super().__init__()
        self.history, self.hook, self._start = history, hook, 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = {k: float(v) for k, v in (logs or {}).items()}
        row["epoch_time_s"] = time.perf_counter() - self._start
        row["learning_rate"] = float(self.model.optimizer.learning_rate)  # after this epoch's steps (schedules)
        for key, value in row.items():
            self.history.setdefault(key, []).append(value)
        if self.hook is not None:
            self.hook(epoch + 1, row)


class RobustAccuracy(keras.callbacks.Callback):
    """Adds ``val_robust_accuracy`` to each epoch's logs: accuracy on the moved validation copy. It runs before
    the checkpoint, early stopping and pruning callbacks, so each of them can watch it."""

    def __init__(self, x_moved: np.ndarray, y: np.ndarray):
        super().__init__()
        self.x_moved, self.y = x_moved, y

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            predicted = self.model.predict(self.x_moved, batch_size=1024, verbose=0).argmax(axis=1)
            logs["val_robust_accuracy"] = float((predicted == self.y).mean())


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` that saves to a temporary file and renames it over the best one, so a failed write
    (a full disk) never leaves a corrupt "best" checkpoint behind."""

    filepath: str

    def _save_model(self, epoch: int, batch: int | None, logs: dict | None) -> None:
        final = self.filepath
        partial = final.removesuffix(".keras") + ".partial.keras"
        self.filepath = partial
        try:
            super()._save_model(epoch, batch, logs)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        finally:
            self.filepath = final
        if os.path.exists(partial):
            os.replace(partial, final)


class TimeBudget(keras.callbacks.Callback):
    """Fits training to the sweep's time left. After each epoch it counts the epochs that still end before the
    deadline at that epoch's pace; when fewer than planned, training ends at the last of them and a fitted cosine
    schedule ends its decay there too, so the model still finishes at a low rate with its best weights (a schedule
    cut in the middle leaves it at a high one). Past the deadline it stops after the current batch.

    The first epoch a ``fit`` runs is no pace: it traces the training and validation steps (several times a small
    model's epoch), so counting from it cut trials that had time to finish, and the horizon never moves later."""

    RESUME_COUNTERS = ("reached", "last_epoch")

    def __init__(self, deadline: float, epochs: int, steps_per_epoch: int, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.deadline, self.planned, self.steps_per_epoch, self.clock = deadline, epochs, steps_per_epoch, clock
        self.last_epoch, self.reached, self._start, self._paced = epochs, False, 0.0, False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = self.clock()
        self._fit_schedule()  # again on every epoch: a resumed repeat gets its fitted horizon back here

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.clock() >= self.deadline:
            self.reached = self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = self.clock()
        if math.isinf(self.deadline) or not self._paced:
            self._paced = True  # the next epoch's time is the pace: this one traced the steps
            return
        fits = epoch + 1 + int(max(self.deadline - now, 0.0) // max(now - self._start, 1e-3))
        if fits < self.last_epoch:  # never later again: the schedule only ever moves its end earlier
            self.last_epoch = fits
            self._fit_schedule()
        if epoch + 1 >= self.last_epoch and self.last_epoch < self.planned:
            self.reached = self.model.stop_training = True

    def _fit_schedule(self) -> None:
        rate = getattr(self.model.optimizer, "_learning_rate", None)
        if isinstance(rate, FittedCosineDecay):
            rate.cut((self.planned - self.last_epoch) * self.steps_per_epoch)


def make_optimizer(settings: TrainSettings, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer with its learning rate (cosine: decayed to 0 over ``settings.epochs``, or fewer when the time
    runs short) and weight decay."""
    rate: float | keras.optimizers.schedules.LearningRateSchedule = settings.learning_rate
    if settings.lr_schedule == "cosine":
        rate = FittedCosineDecay(settings.learning_rate, settings.epochs * steps_per_epoch)
    # AdamW needs a float (0.0 turns its decay off); the others take None for none.
    decay = float(settings.weight_decay) if settings.optimizer == "adamw" else settings.weight_decay or None
    return OPTIMIZERS[settings.optimizer](learning_rate=rate, weight_decay=decay)


def steps_per_epoch(settings: TrainSettings, train_size: int) -> int:
    return math.ceil(train_size / settings.batch_size)


def compile_model(model: keras.Model, settings: TrainSettings, train_size: int) -> None:
    """Compile ``model`` for training with ``settings`` on ``train_size`` examples (its schedule counts steps)."""
    model.compile(optimizer=make_optimizer(settings, steps_per_epoch(settings, train_size)), loss=settings.loss,
                  metrics=list(settings.metrics), steps_per_execution=STEPS_PER_EXECUTION)


def build_for(family: str, model_params: dict[str, Any], data: Dataset) -> keras.Model:
    """The model of ``family`` for ``data``, as every training builds it: behind a table's front, and a
    regression's output in the target's units (see :func:`experiments.models.build_for_data`)."""
    return build_for_data(family, model_params, data.input_shape, data.num_classes, data.front, data.target)


def _best_epoch(history: dict[str, list[float]], monitor: str, first_epoch: int) -> int | None:
    values = np.asarray(history.get(monitor, []), dtype=float)
    if values.size == 0 or np.isnan(values).all():
        return None
    pick = np.nanargmax if metric_mode(monitor) == "max" else np.nanargmin
    return int(pick(values)) + first_epoch


def train_repeat(
    family: str,
    model_params: dict[str, Any],
    settings: TrainSettings,
    data: Dataset,
    seed: int,
    workdir: Path,
    callbacks: tuple[keras.callbacks.Callback, ...] = (),
    on_epoch: EpochHook | None = None,
    warm_start: WarmStart | None = None,
    deadline: float | None = None,
    on_checkpoint: CheckpointHook | None = None,
    resume: ResumePoint | None = None,
) -> RepeatResult:
    """Fit one seeded model (from ``warm_start``'s weights and epoch, if given) and score its best checkpoint
    on the test set. ``settings.epochs`` is the last epoch, counted from the first; training stops early (and
    the best weights so far are scored) when ``time.monotonic()`` reaches ``deadline``.

    After every epoch the repeat's resume point is kept in ``workdir`` and ``on_checkpoint`` told; given ``resume``
    (a point read from ``workdir``), training goes on after its epoch instead of starting over.

    Raises :class:`TrainingInterrupted` (with the partial history) when a callback or ``fit`` raises.
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    initial_epoch = warm_start.initial_epoch if warm_start else 0
    result = RepeatResult(seed=seed, checkpoint=workdir / BEST, first_epoch=initial_epoch + 1)
    start = time.perf_counter()
    model = build_for(family, model_params, data)
    compile_model(model, settings, len(data.y_train))
    if warm_start is not None:
        model.set_weights(warm_start.weights)
    result.param_count, result.summary = model.count_params(), _summary(model)
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=settings.patience)
    time_up = TimeBudget(math.inf if deadline is None else deadline, settings.epochs,
                         steps_per_epoch(settings, len(data.y_train)))
    if resume is not None:
        result.history.update({name: list(values) for name, values in resume.history.items()})
        initial_epoch = resume.epoch
    fit_callbacks = _fit_callbacks(settings, data, result, on_epoch, early, time_up, callbacks)
    fit_callbacks.append(KeepResumePoint(workdir, result.history, fit_callbacks, on_checkpoint, resume))
    try:
        _fit(model, settings, data, seed, fit_callbacks, initial_epoch, resume)
    except Exception as exc:
        result.wall_time_s = time.perf_counter() - start
        result.best_epoch = _best_epoch(result.history, settings.monitor, result.first_epoch)
        raise TrainingInterrupted(result) from exc
    losses = result.history.get("loss", [])
    if not losses or not all(math.isfinite(v) for v in losses):
        result.stop_reason = "nan_loss"
    else:
        result.stop_reason = ("time_budget" if time_up.reached else
                              "early_stopped" if early.stopped_epoch > 0 else "max_epochs")
        result.best_epoch = _best_epoch(result.history, settings.monitor, result.first_epoch)
        model.load_weights(result.checkpoint)  # the trained model's compiled evaluation is reused, not re-traced
        _score_on_test(model, data, result)
    result.wall_time_s = time.perf_counter() - start
    return result


def _summary(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    return "\n".join(lines)


def _fit(model: keras.Model, settings: TrainSettings, data: Dataset, seed: int,
         callbacks: list[keras.callbacks.Callback], initial_epoch: int, resume: ResumePoint | None) -> None:
    """Train from ``initial_epoch`` to ``settings.epochs`` (a resumed repeat that had stopped only gets its
    callbacks' counters back: its test score was all that was left)."""
    if resume is not None and resume.done:
        resume.restore_counters(callbacks)
        return
    model.fit(
        **_training_inputs([(data.x_train, data.y_train)], data.streamed, settings.batch_size, seed),
        validation_data=_inputs(data.x_val, data.y_val, data.streamed, settings.batch_size),
        epochs=settings.epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=settings.verbose,
    )


def _fit_callbacks(settings: TrainSettings, data: Dataset, result: RepeatResult, on_epoch: EpochHook | None,
                   early: keras.callbacks.EarlyStopping, time_up: TimeBudget,
                   extra: tuple[keras.callbacks.Callback, ...]) -> list[keras.callbacks.Callback]:
    """The standard callbacks of a repeat, in the order they must run: the robustness score first (so the
    checkpoint, early stopping and pruning can watch it), the recorder, the checkpoint, the stops, the caller's."""
    fit_callbacks = [
        *([RobustAccuracy(data.x_val_moved, data.y_val)] if settings.robust else []),
        EpochRecorder(result.history, on_epoch),
        AtomicModelCheckpoint(str(result.checkpoint), monitor=settings.monitor, save_best_only=True,
                              mode=metric_mode(settings.monitor)),
        early,
        keras.callbacks.TerminateOnNaN(),
        time_up,
        *extra,
    ]
    if settings.lr_schedule == "plateau":  # halve the rate before early stopping would give up
        fit_callbacks.append(keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=max(1, settings.patience // 2)))
    return fit_callbacks


def _training_inputs(parts: list[tuple[np.ndarray, np.ndarray]], streamed: bool, batch_size: int,
                     seed: int) -> dict[str, Any]:
    """``fit``'s data: arrays in memory (Keras shuffles them), or stored images streamed in seeded batches."""
    if streamed:
        return {"x": ImageBatches(parts, batch_size, seed)}
    if len(parts) == 1:
        return {"x": parts[0][0], "y": parts[0][1], "batch_size": batch_size}
    return {"x": np.concatenate([x for x, _ in parts]), "y": np.concatenate([y for _, y in parts]), "batch_size": batch_size}


def _inputs(x: np.ndarray, y: np.ndarray, streamed: bool, batch_size: int) -> Any:
    """Validation or test data in order: the arrays, or stored images streamed in batches."""
    return ImageBatches([(x, y)], batch_size) if streamed else (x, y)


def _score_on_test(model: keras.Model, data: Dataset, result: RepeatResult) -> None:
    if data.streamed:
        scores = model.evaluate(_inputs(data.x_test, data.y_test, True, 1024), verbose=0, return_dict=True)
    else:
        scores = model.evaluate(data.x_test, data.y_test, batch_size=1024, verbose=0, return_dict=True)
    result.test_loss = float(scores["loss"])
    result.test_accuracy = float(scores["accuracy"]) if "accuracy" in scores else None
    result.test_mae = float(scores["mae"]) if "mae" in scores else None


def refit_repeat(
    family: str,
    model_params: dict[str, Any],
    settings: TrainSettings,
    data: Dataset,
    seed: int,
    epochs: int,
    workdir: Path,
    callbacks: tuple[keras.callbacks.Callback, ...] = (),
) -> RepeatResult:
    """Fit one seeded model on the training and validation images together for exactly ``epochs`` epochs (a
    selected run's best epoch: no held-out data is left to stop on), save it, and score it once on the test set.

    The learning-rate schedule spans ``settings.epochs`` as in the selected run; a plateau schedule, which needs
    validation loss, is left out.
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    parts = [(data.x_train, data.y_train), (data.x_val, data.y_val)]
    train_size = len(data.y_train) + len(data.y_val)
    result = RepeatResult(seed=seed, checkpoint=workdir / "refit.keras", stop_reason="max_epochs")
    start = time.perf_counter()
    model = build_for(family, model_params, data)
    compile_model(model, settings, train_size)
    result.param_count = model.count_params()
    model.fit(**_training_inputs(parts, data.streamed, settings.batch_size, seed), epochs=epochs,
              verbose=settings.verbose, callbacks=[EpochRecorder(result.history), keras.callbacks.TerminateOnNaN(), *callbacks])
    losses = result.history.get("loss", [])
    if len(losses) < epochs or not all(math.isfinite(v) for v in losses):
        result.stop_reason = "nan_loss"
    else:
        result.best_epoch = epochs
        model.save(result.checkpoint)
        _score_on_test(model, data, result)
    result.wall_time_s = time.perf_counter() - start
    return result
