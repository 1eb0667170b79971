"""Sweeps that train nothing, for measuring what the framework itself costs as a study grows (``make
bench-scale``): a simulated repeat stands in for Keras, everything else is real — the sampler, the pruner, the
storages, MLflow logging, the status check and the report — and each trial's sampler and MLflow seconds are
written to a timings file. It plugs into an ordinary sweep: ``sweep run SPACE --extensions
sweeps.bench.simulation:extensions``."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import optuna
from mlflow import MlflowClient
from optuna.trial import FrozenTrial

from experiments.data.loading import Dataset
from experiments.outcome import RepeatResult, WarmStart
from experiments.points import ResumePoint
from experiments.settings import TrainSettings
from experiments.train import TrainingInterrupted
from sweeps.execution.worker_loop import Extensions
from sweeps.search.stop_rules import AfterTrial
from sweeps.search.study import Sweep
from sweeps.space.schema import CategoricalParam, FloatParam, IntParam
from sweeps.space.space import Space

TIMINGS = "SWEEPS_SCALE_TIMINGS"  # env: the JSON-lines file a simulated sweep appends each trial's costs to


def _quality(space: Space, params: dict[str, Any]) -> float:
    """A smooth synthetic score in [0.80, 0.93]: best when every numeric param sits 37 % into its range."""
    penalty = 0.0
    for name, param in space.spec.params.items():
        value = params.get(name, params.get(f"{name}_1"))
        if value is None or isinstance(param, CategoricalParam) or isinstance(value, bool):
            continue
        assert isinstance(param, IntParam | FloatParam)
        low, high = (math.log(param.low), math.log(param.high)) if param.log else (param.low, param.high)
        x = math.log(value) if param.log else float(value)
        penalty += ((x - low) / (high - low or 1) - 0.37) ** 2
    return 0.93 - 0.13 * min(1.0, penalty / max(1, len(space.spec.params)) * 4)


def simulated_training(space: Space) -> Callable[..., RepeatResult]:
    """A stand-in for :func:`experiments.train.train_repeat`: per-epoch metrics rising towards a synthetic
    function of the params (seeded noise), passed to the epoch hook and to the callbacks' ``on_epoch_end`` (so
    Optuna's pruning callback prunes), early stopping on val_loss, a tiny checkpoint file; no model, so no
    resume point (``on_checkpoint`` and ``resume`` are taken and not used: a simulated trial restarts)."""

    def train(family: str, model_params: dict[str, Any], settings: TrainSettings, data: Dataset, seed: int,
              workdir: Path, callbacks: Sequence[Any] = (), on_epoch: Callable | None = None,
              warm_start: WarmStart | None = None, deadline: float | None = None, on_checkpoint: Callable | None = None,
              resume: ResumePoint | None = None) -> RepeatResult:
        rng = np.random.default_rng([seed, abs(hash(repr(sorted(model_params.items())))) % 2**32])
        top = _quality(space, model_params)
        first = warm_start.initial_epoch if warm_start else 0
        result = RepeatResult(seed=seed, checkpoint=workdir / "best.keras", first_epoch=first + 1, param_count=1000)
        best_loss, waited, stopped = math.inf, 0, False
        for epoch in range(first, settings.epochs):
            acc = top - (top - 0.6) * math.exp(-(epoch + 1) / 3) + rng.normal(0, 0.003)
            logs = {"loss": 1.2 - acc, "accuracy": acc + 0.01, "val_loss": 1.25 - acc, "val_accuracy": acc,
                    "epoch_time_s": 0.0, "learning_rate": settings.learning_rate}
            for key, value in logs.items():
                result.history.setdefault(key, []).append(value)
            if on_epoch is not None:
                on_epoch(epoch + 1, logs)
            try:
                for callback in callbacks:
                    callback.on_epoch_end(epoch, logs)
            except Exception as exc:  # the pruning callback raised TrialPruned
                raise TrainingInterrupted(result) from exc
            waited = 0 if logs["val_loss"] < best_loss else waited + 1
            best_loss = min(best_loss, logs["val_loss"])
            if waited > settings.patience:
                stopped = True
                break
        values = result.history["val_accuracy"]
        result.best_epoch = int(np.argmax(values)) + result.first_epoch
        result.stop_reason = "early_stopped" if stopped else "max_epochs"
        result.test_accuracy, result.test_loss = max(values) - 0.005, 1.26 - max(values)
        workdir.mkdir(parents=True, exist_ok=True)
        result.checkpoint.write_bytes(b"simulated: no model")  # type: ignore[union-attr]
        return result

    return train


class TimedSampler(optuna.samplers.BaseSampler):
    """Delegates to a sampler and adds up the seconds it spends deciding."""

    def __init__(self, sampler: optuna.samplers.BaseSampler):
        self.sampler, self.seconds = sampler, 0.0

    def _timed(self, call: Callable, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return call(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def infer_relative_search_space(self, study, trial):
        return self._timed(self.sampler.infer_relative_search_space, study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._timed(self.sampler.sample_relative, study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._timed(self.sampler.sample_independent, study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self._timed(self.sampler.before_trial, study, trial)

    def after_trial(self, study, trial, state, values):
        self._timed(self.sampler.after_trial, study, trial, state, values)


class TimedClient:
    """An ``MlflowClient`` that adds up the seconds its writes take (reads pass through untimed)."""

    WRITES = frozenset({"create_run", "log_batch", "log_artifact", "log_text", "set_terminated"})

    def __init__(self, client: MlflowClient):
        self.client, self.seconds = client, 0.0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name not in self.WRITES:
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed


class TimingsLog:
    """After each trial: append its sampler, MLflow and whole seconds to the timings file (an Optuna callback)."""

    def __init__(self, sampler: TimedSampler, client: TimedClient, path: Path):
        self.sampler, self.client, self.path = sampler, client, path
        self.last = (0.0, 0.0)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        sampler_s, mlflow_s = self.sampler.seconds, self.client.seconds
        row = {"trial": trial.number, "state": trial.state.name, "pid": os.getpid(),
               "sampler_s": sampler_s - self.last[0], "mlflow_s": mlflow_s - self.last[1],
               "trial_s": (trial.duration.total_seconds() if trial.duration else None)}
        self.last = (sampler_s, mlflow_s)
        with self.path.open("a") as out:
            out.write(json.dumps(row) + "\n")


def timings_path() -> Path | None:
    """Where a simulated sweep writes its timings (None: not measuring)."""
    value = os.environ.get(TIMINGS)
    return Path(value) if value else None


def instrument(sweep: Sweep) -> list[AfterTrial]:
    """Time the opened sweep's sampler and MLflow writes; when ``$SWEEPS_SCALE_TIMINGS`` names a file, the
    callback that writes each trial's seconds there."""
    sampler, client = TimedSampler(sweep.study.sampler), TimedClient(sweep.tracker.client)
    sweep.study.sampler = sampler
    sweep.tracker.client = cast(MlflowClient, client)
    path = timings_path()
    return [TimingsLog(sampler, client, path)] if path else []


def extensions(space: Space) -> Extensions:
    """What a simulated sweep plugs in: the simulated training, the timing, and no model registry (a simulated
    trial's checkpoint is no Keras file)."""
    return Extensions(train=simulated_training(space), instrument=instrument, register_best=False)
