"""The second engine: Keras Tuner searches the same space with the same builder, callbacks, split and tracking.

Keras Tuner decides which params to try (Hyperband, Bayesian optimisation or random search); each choice is
then trained by the Optuna engine's own objective on a trial of the study ``<space>-kerastuner``, so the MLflow
runs, the checks of ``sweep status`` and the report are the same for both engines. When Hyperband promotes a
trial to a longer round, the new trial continues from the best weights of the earlier one (Keras Tuner loads
them into the model it hands to ``fit``) at the epoch where that round stopped, as in Keras Tuner itself.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras_tuner as kt
import optuna

from experiments.models import build_model
from experiments.train import WarmStart
from sweeps.errors import SweepStopped
from sweeps.search.progress import AfterTrial
from sweeps.search.space import Space
from sweeps.search.trial import TrialContext, run_trial
from sweeps.store.records import EPOCH_BUDGET, INITIAL_EPOCH

TIME_UP = "the time budget is spent"
TUNERS = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization, "random": kt.RandomSearch}


class HPSuggester:
    """Lets :meth:`Space.suggest` declare and read Keras Tuner hyperparameters."""

    def __init__(self, hp: kt.HyperParameters):
        self.hp = hp

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        # Keras Tuner reads a log-sampled step as a multiplier: no step there, as in Optuna.
        return self.hp.Int(name, low, high, step=None if log else step, sampling="log" if log else "linear")

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        return self.hp.Float(name, low, high, step=step, sampling="log" if log else "linear")

    def suggest_categorical(self, name: str, choices: list) -> Any:
        return self.hp.Choice(name, choices)


class SpaceHyperModel(kt.HyperModel):
    """Builds the space's model for Keras Tuner and trains its choices as trials of an Optuna study."""

    def __init__(self, ctx: TrialContext, study: optuna.Study, after_trial: Sequence[AfterTrial], deadline: float | None):
        super().__init__()
        self.ctx, self.study, self.after_trial, self.deadline = ctx, study, after_trial, deadline

    def build(self, hp: kt.HyperParameters):
        model_params, _ = self.ctx.space.resolve(self.ctx.space.suggest(HPSuggester(hp)))
        return build_model(self.ctx.space.spec.model, model_params)

    def fit(self, hp: kt.HyperParameters, model, *args, callbacks=(), epochs: int | None = None,
            initial_epoch: int = 0, **kwargs) -> dict:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise kt.errors.FatalError(TIME_UP)  # the one way to end a Keras Tuner search early
        self.study.enqueue_trial(self.ctx.space.suggest(HPSuggester(hp)))
        trial = self.study.ask()
        budget = min(epochs, self.ctx.max_epochs or epochs) if epochs else self.ctx.max_epochs
        # Keras Tuner's own checkpoint callback rides along: Hyperband reads it when it promotes a trial.
        promoted = "tuner/trial_id" in hp.values and initial_epoch > 0
        warm_start = WarmStart(model.get_weights(), initial_epoch) if promoted else None
        if budget:  # what `sweep reproduce` needs to train this trial again
            trial.set_user_attr(EPOCH_BUDGET, budget)
        if promoted:
            trial.set_user_attr(INITIAL_EPOCH, initial_epoch)
        ctx = dataclasses.replace(self.ctx, max_epochs=budget, callbacks=tuple(callbacks), warm_start=warm_start)
        try:
            value = run_trial(ctx, trial)
            self.study.tell(trial, value)
        except BaseException:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        finally:
            finished = self.study.get_trials(deepcopy=False)[trial.number]
            for callback in self.after_trial:  # what study.optimize calls after each trial of the Optuna engine
                callback(self.study, finished)
        return {self.ctx.space.spec.objective.metric: value}


def search(space: Space, ctx: TrialContext, study: optuna.Study, tuner: str, trials: int, workdir: Path,
           after_trial: Sequence[AfterTrial], timeout: float | None = None) -> None:
    """Run Keras Tuner's ``tuner`` until its project has ``trials`` trials (Hyperband: one full set of brackets)
    or ``timeout`` seconds have passed (a running trial finishes)."""
    deadline = time.monotonic() + timeout if timeout else None
    spec = space.spec
    objective = kt.Objective(spec.objective.metric, "max" if spec.objective.resolved_direction == "maximize" else "min")
    _, settings = space.resolve({})
    options: dict[str, Any] = {"max_epochs": ctx.max_epochs or settings.epochs} if tuner == "hyperband" else {"max_trials": trials}
    engine = TUNERS[tuner](hypermodel=SpaceHyperModel(ctx, study, after_trial, deadline), objective=objective, seed=spec.sweep.seed,
                           directory=str(workdir), project_name=study.study_name, overwrite=False,
                           max_consecutive_failed_trials=3, **options)
    try:
        engine.search(ctx.data.x_train, ctx.data.y_train, validation_data=(ctx.data.x_val, ctx.data.y_val),
                      epochs=ctx.max_epochs or settings.epochs, verbose=0)
    except kt.errors.FatalError as exc:
        if str(exc) != TIME_UP:
            raise
    except RuntimeError as exc:  # Keras Tuner gives up after 3 failed trials in a row
        raise SweepStopped(f"Keras Tuner stopped: {exc}") from None
