"""The second engine: Keras Tuner decides what to try; the Optuna engine's objective trains it.

As in Keras Tuner itself, the oracle (Hyperband, Bayesian optimisation or random search) chooses each trial's
params and the tuner's ``run_trial`` trains them. Here ``run_trial`` is overridden: each choice becomes a trial of
the Optuna study ``<space>-kerastuner``, trained by :func:`sweeps.objective.trial.run_trial`, so the MLflow runs,
the checks of ``sweep status`` and the report are the same for both engines, and no model is built that is not
trained. When Hyperband promotes a trial to a longer round, the new trial continues from the best checkpoint
of the earlier one (read from its MLflow run) at the epoch where that round stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import keras_tuner as kt
import optuna

from experiments.metrics import metric_mode
from experiments.outcome import WarmStart
from sweeps.errors import SweepStopped
from sweeps.objective.checkpoints import load_checkpoint
from sweeps.objective.constrained import Infeasible
from sweeps.objective.trial import TrialContext, run_trial
from sweeps.search.stop_rules import AfterTrial
from sweeps.space.conditions import When, allowed
from sweeps.space.space import Space
from sweeps.store.keys import EPOCH_BUDGET, INITIAL_EPOCH, KERASTUNER_TRIAL, MLFLOW_RUN_ID
from sweeps.store.registry import first_seed_run

TIME_UP = "the time budget is spent"


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

    @contextlib.contextmanager
    def conditional_scope(self, lineage: list[When]) -> Iterator[None]:
        """Declare the params within in the nested scopes of their ``lineage`` (see
        :func:`sweeps.space.conditions.lineage`). Keras Tuner finds a scope's parent only among the params declared in
        the same scopes, so each takes the first key of a ``when:``: where it holds and another key does not, the
        oracle samples the param and :meth:`Space.suggest` leaves it out."""
        with contextlib.ExitStack() as scopes:
            for when in lineage:
                parent, values = next(iter(when.items()))
                scopes.enter_context(self.hp.conditional_scope(parent, allowed(values)))
            yield


@dataclasses.dataclass
class OptunaTrials:
    """Trains the params a Keras Tuner oracle chose as trials of an Optuna study."""

    ctx: TrialContext
    study: optuna.Study
    after_trial: Sequence[AfterTrial]
    deadline: float | None
    epochs: int  # the epoch budget of a trial when the oracle sets none (Hyperband sets one per round)
    cache_dir: Path

    def train(self, kt_trial: kt.engine.trial.Trial) -> dict[str, float]:
        """Train ``kt_trial``'s params as the next Optuna trial; the objective's value for the oracle."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise kt.errors.FatalError(TIME_UP)  # the one way to end a Keras Tuner search early
        hp = kt_trial.hyperparameters
        warm_start = None
        if "tuner/trial_id" in hp.values and hp.values.get("tuner/initial_epoch", 0) > 0:
            warm_start = self._weights_of(hp.values["tuner/trial_id"], hp.values["tuner/initial_epoch"])
        epochs = hp.values.get("tuner/epochs", self.epochs)
        budget = min(epochs, self.ctx.max_epochs or epochs)
        trial = self._start(kt_trial.trial_id, self.ctx.space.suggest(HPSuggester(hp)))
        trial.set_user_attr(EPOCH_BUDGET, budget)  # what `sweep reproduce` needs to train this trial again
        if warm_start is not None:
            trial.set_user_attr(INITIAL_EPOCH, warm_start.initial_epoch)
        ctx = dataclasses.replace(self.ctx, max_epochs=budget, warm_start=warm_start)
        try:
            value = run_trial(ctx, trial)
            self.study.tell(trial, value)
        except Infeasible as exc:  # never trained; Keras Tuner's oracle counts it as a failed trial of its own
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            raise kt.errors.FailedTrialError(str(exc)) from None
        except optuna.TrialPruned:  # the sweep's time budget cut it (Keras Tuner's trials are not pruned otherwise)
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            raise kt.errors.FatalError(TIME_UP) from None
        except BaseException:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        finally:
            storage = self.study._storage  # the one trial, not a read of the whole study
            finished = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(self.study._study_id,
                                                                                         trial.number))
            for callback in self.after_trial:  # what study.optimize calls after each trial of the Optuna engine
                callback(self.study, finished)
        return {self.ctx.space.spec.objective.metric: float(value)}  # type: ignore[arg-type]

    def _start(self, kt_trial_id: str, chosen: dict[str, Any]) -> optuna.Trial:
        """A new RUNNING trial of the study holding ``chosen``, the params of Keras Tuner's trial ``kt_trial_id``.

        Created as that very trial: ``enqueue_trial`` + ``ask`` would start the oldest WAITING trial of the study
        instead, whatever params it holds (a retry that recovery queued, a trial queued by hand)."""
        # Study starts a trial only in ``ask``, which pops its queue first: the trial is created here as ``ask``
        # creates one, its params fixed as ``enqueue_trial`` fixes them.
        template = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, system_attrs={"fixed_params": chosen},
                                             user_attrs={KERASTUNER_TRIAL: kt_trial_id})
        trial = optuna.Trial(self.study, self.study._storage.create_new_trial(self.study._study_id, template))
        held = self.ctx.space.suggest(trial)  # every param set now, as the oracle chose it
        if held != chosen:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise kt.errors.FatalError(f"Optuna trial {trial.number} holds {held}, not {chosen}, the params Keras "
                                       f"Tuner's trial {kt_trial_id} chose")
        return trial

    def _weights_of(self, kt_trial_id: str, initial_epoch: int) -> WarmStart:
        """The best weights of the Optuna trial that trained Keras Tuner's ``kt_trial_id`` (its first seed)."""
        earlier = [t for t in self.study.get_trials(deepcopy=False) if t.user_attrs.get(KERASTUNER_TRIAL) == kt_trial_id
                   and t.state == optuna.trial.TrialState.COMPLETE]
        if not earlier:
            raise RuntimeError(f"Keras Tuner promoted its trial {kt_trial_id}, which no finished Optuna trial trained "
                               "(a Keras Tuner project begun before its trials were recorded): trained from scratch")
        run_id = first_seed_run(self.ctx.tracker, earlier[-1].number) or earlier[-1].user_attrs[MLFLOW_RUN_ID]
        model = load_checkpoint(self.ctx.tracker, run_id, self.cache_dir)
        return WarmStart(model.get_weights(), initial_epoch)


class SpaceHyperModel(kt.HyperModel):
    """The space as Keras Tuner's hypermodel: it declares the space's hyperparameters to the oracle (Keras Tuner's
    public hook for that) and builds no model — the tuner's ``run_trial`` trains each trial instead."""

    def __init__(self, space: Space):
        super().__init__(name=space.name)
        self.space = space

    def declare_hyperparameters(self, hp: kt.HyperParameters) -> None:
        self.space.suggest(HPSuggester(hp))

    def build(self, hp: kt.HyperParameters) -> None:  # called to find conditional scopes: the space's when:
        self.space.suggest(HPSuggester(hp))


class SpaceTuner:
    """Mixed into a Keras Tuner tuner: the space is declared through :class:`SpaceHyperModel`, and its trials are
    trained by :class:`OptunaTrials` (``run_trial``, Keras Tuner's documented override; nothing built or fitted by
    Keras Tuner)."""

    def __init__(self, trials: OptunaTrials, **options: Any):
        self.trials = trials
        super().__init__(hypermodel=SpaceHyperModel(trials.ctx.space), **options)  # type: ignore[call-arg]

    def run_trial(self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any) -> dict[str, float]:
        return self.trials.train(trial)


class HyperbandSearch(SpaceTuner, kt.Hyperband):
    """Hyperband's brackets over the space."""


class BayesianSearch(SpaceTuner, kt.BayesianOptimization):
    """Keras Tuner's Gaussian-process Bayesian optimisation over the space."""


class RandomSearch(SpaceTuner, kt.RandomSearch):
    """Keras Tuner's random search over the space."""


TUNERS: dict[str, type[SpaceTuner]] = {"hyperband": HyperbandSearch, "bayesian": BayesianSearch, "random": RandomSearch}


def search(space: Space, ctx: TrialContext, study: optuna.Study, tuner: str, trials: int, workdir: Path,
           after_trial: Sequence[AfterTrial], cache_dir: Path, timeout: float | None = None) -> None:
    """Run Keras Tuner's ``tuner`` until its project has ``trials`` trials (Hyperband: or sooner, at the end of one
    full set of brackets; each promotion is a trial) or ``timeout`` seconds have passed (a running trial finishes)."""
    deadline = time.monotonic() + timeout if timeout else None
    spec = space.spec
    objective = kt.Objective(spec.objective.metric, metric_mode(spec.objective.metric))
    _, settings = space.resolve({})
    epochs = ctx.max_epochs or settings.epochs
    options: dict[str, Any] = {"max_epochs": epochs} if tuner == "hyperband" else {"max_trials": trials}
    engine = TUNERS[tuner](OptunaTrials(ctx, study, after_trial, deadline, epochs, cache_dir), objective=objective,
                           seed=spec.sweep.seed, directory=str(workdir), project_name=study.study_name,
                           overwrite=False, max_consecutive_failed_trials=3, **options)
    if tuner == "hyperband":  # its constructor takes no max_trials, but its oracle stops at one as any oracle does
        engine.oracle.max_trials = trials  # type: ignore[attr-defined]
    try:
        engine.search(verbose=0)  # type: ignore[attr-defined]
    except kt.errors.FatalError as exc:
        if str(exc) != TIME_UP:
            raise
    except RuntimeError as exc:  # Keras Tuner gives up after 3 failed trials in a row
        raise SweepStopped(f"Keras Tuner stopped: {exc}") from None
