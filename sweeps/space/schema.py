"""The search-space file format, as pydantic models. Constraints on every value are declared once, here."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from experiments.data.builtin import DATASETS
from experiments.data.loading import VALIDATIONS
from experiments.metrics import direction as metric_direction
from experiments.settings import FAMILIES, LR_SCHEDULES, OPTIMIZER_NAMES
from sweeps.space.constraints import check_constraint
from sweeps.space.folds import kfold_defaults

Scalar = bool | int | float | str
# A param sampled only when each named param took this value or one of these (``when: {optimizer: [sgd, adamw]}``).
When = dict[str, Scalar | list[Scalar]]
METRICS = ("val_accuracy", "val_loss", "val_robust_accuracy", "val_mae")  # robust: on a rotated, shifted validation copy
TARGET_METRICS = ("test_accuracy", "test_loss", "test_mae")
TASKS = ("classification", "regression")
# What each task may select on and be judged by (its Keras metrics: accuracy, or mean absolute error).
TASK_METRICS = {"classification": ({"val_accuracy", "val_loss", "val_robust_accuracy"}, {"test_accuracy", "test_loss"}),
                "regression": ({"val_mae", "val_loss"}, {"test_mae", "test_loss"})}
# Each task's training settings when the space gives none, and the losses and metrics it may use instead.
TASK_TRAINING = {"classification": {"loss": "sparse_categorical_crossentropy", "metrics": ("accuracy",)},
                 "regression": {"loss": "mse", "metrics": ("mae",)}}
TASK_LOSSES = {"classification": {"sparse_categorical_crossentropy"}, "regression": {"mse", "mae", "huber"}}
SAMPLERS = ("tpe", "random", "grid", "cmaes", "qmc", "gp")
PRUNERS = ("none", "median", "percentile", "threshold", "successive_halving", "hyperband", "wilcoxon")


def _names(values) -> str:
    return ", ".join(str(v) for v in values)


class Section(BaseModel):
    """A mapping whose unknown keys are an error that lists the allowed ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Keys of neighbouring tools' files → what to write here instead.
    habits: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [k for k in data if k not in cls.model_fields]
            if unknown:
                hint = f"; did you mean {cls.habits[unknown[0]]}" if unknown[0] in cls.habits else ""
                raise ValueError(f"unknown key {unknown[0]!r}{hint} (allowed: {_names(cls.model_fields)})")
        return data


# --- values: what each training setting and model hyperparameter may be ---------------------------------

class TrainValues(Section):
    """Training settings; each may be fixed in ``train:`` or searched in ``params:``."""

    epochs: int | None = Field(None, ge=1, le=1000)
    batch_size: int | None = Field(None, ge=1, le=60000)
    optimizer: Literal[OPTIMIZER_NAMES] | None = None  # type: ignore[valid-type]
    learning_rate: float | None = Field(None, gt=0, le=10)
    lr_schedule: Literal[LR_SCHEDULES] | None = None  # type: ignore[valid-type]
    weight_decay: float | None = Field(None, ge=0, le=1)
    loss: Literal["sparse_categorical_crossentropy", "mse", "mae", "huber"] | None = None
    metrics: list[Literal["accuracy", "mae"]] | None = None
    patience: int | None = Field(None, ge=0, le=100)


def _model_fields() -> dict[str, Any]:
    knobs = {name: knob for family in FAMILIES.values() for name, knob in family.items()}
    return {name: (knob.type | None, Field(None, **knob.bounds)) for name, knob in knobs.items()}


# Model hyperparameters of every family, with the bounds declared in experiments.settings.FAMILIES.
ModelValues = create_model("ModelValues", __base__=Section, **_model_fields())
FAMILY_KEYS = {family: tuple(knobs) for family, knobs in FAMILIES.items()}
# A builder of the user's: package.module:function, importable from the project folder.
BUILDER_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


# --- params: what may be searched ---------------------------------------------------------------------

class IntParam(Section):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False
    per_layer: bool = False
    when: When | None = Field(None, min_length=1)  # sampled only when these params take these values

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        _check_range(self.low, self.high, self.step, self.log)
        if self.log and self.step != 1:
            raise ValueError("log: true needs step 1")
        return self

    def values(self) -> list[Any]:
        return list(range(self.low, self.high + 1, self.step))

    def bounds(self) -> list[Any]:
        return [self.low, self.high]

    def size(self) -> int:
        return (self.high - self.low) // self.step + 1


class FloatParam(Section):
    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(None, gt=0)
    log: bool = False
    per_layer: bool = False
    when: When | None = Field(None, min_length=1)  # sampled only when these params take these values

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        _check_range(self.low, self.high, self.step, self.log)
        if self.log and self.step is not None:
            raise ValueError("log: true and step cannot be combined")
        return self

    def values(self) -> list[Any]:
        if self.step is None:
            raise ValueError("a float param without a step has no finite values")
        count = round((self.high - self.low) / self.step)
        return [self.low + i * self.step for i in range(count + 1)]

    def bounds(self) -> list[Any]:
        return [self.low, self.high]

    def size(self) -> int:
        return round((self.high - self.low) / self.step) + 1 if self.step else 0


class CategoricalParam(Section):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)
    per_layer: bool = False
    when: When | None = Field(None, min_length=1)  # sampled only when these params take these values

    @model_validator(mode="after")
    def _unique(self) -> CategoricalParam:
        seen = [c for i, c in enumerate(self.choices) if c in self.choices[:i]]
        if seen:
            raise ValueError(f"duplicate choice {seen[0]!r}")
        return self

    def values(self) -> list[Any]:
        return list(self.choices)

    def bounds(self) -> list[Any]:
        return list(self.choices)

    def size(self) -> int:
        return len(self.choices)


def _check_range(low: float, high: float, step: float | None, log: bool) -> None:
    if low > high:
        raise ValueError(f"low ({low}) must be <= high ({high})")
    if step is not None and high > low and step > high - low:
        raise ValueError(f"step ({step}) is larger than the range high - low ({high - low})")
    if log and low <= 0:
        raise ValueError(f"log: true needs low > 0 (got {low})")


Param = Annotated[IntParam | FloatParam | CategoricalParam, Field(discriminator="type")]


# --- the rest of the file -----------------------------------------------------------------------------

SECONDARY = ("param_count", "epoch_time_s", "val_robust_accuracy")


class Objective(Section):
    metric: Literal[METRICS] = "val_accuracy"  # type: ignore[valid-type]
    direction: Literal["maximize", "minimize"] | None = None
    secondary: Literal[SECONDARY] | None = None  # type: ignore[valid-type]  # a second objective: a Pareto front

    @model_validator(mode="after")
    def _direction_agrees(self) -> Objective:
        """A direction the metric contradicts would select the worst model: it is refused, not obeyed."""
        if self.direction and self.direction != metric_direction(self.metric):
            raise ValueError(f"direction: {self.metric} is better {'high' if metric_direction(self.metric) == 'maximize' else 'low'}"
                             f", so it is {metric_direction(self.metric)}d (leave direction out)")
        return self

    @property
    def directions(self) -> list[Literal["minimize", "maximize"]]:
        """One direction per objective: the metric's, then the secondary one's (a cost is minimised, an accuracy
        maximised)."""
        if not self.secondary:
            return [self.resolved_direction]
        return [self.resolved_direction, metric_direction(self.secondary)]

    @property
    def robust(self) -> bool:
        """Whether a trial must be scored on the moved validation copy each epoch."""
        return "val_robust_accuracy" in (self.metric, self.secondary)

    @property
    def resolved_direction(self) -> Literal["minimize", "maximize"]:
        """The metric's direction (``experiments.metrics``: accuracies maximised, losses and errors minimised)."""
        return metric_direction(self.metric)


class Bound(Section):
    min: float | None = None
    max: float | None = None


class Named(Section):
    """A sampler or pruner: its name and keyword options for the Optuna class."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class Sampler(Named):
    name: Literal[SAMPLERS] = "tpe"  # type: ignore[valid-type]


class Pruner(Named):
    name: Literal[PRUNERS] = "median"  # type: ignore[valid-type]


class Baseline(Section):
    """A known configuration tried before the sampler's own picks (Optuna's ``enqueue_trial``)."""

    params: dict[str, Scalar] = Field(default_factory=dict)  # values for the space's params; the rest are sampled
    epochs: int | None = Field(None, ge=1, le=1000)  # a cheaper budget than train.epochs: a first look
    fixed: dict[str, Scalar] = Field(default_factory=dict)  # model settings in place of the space's fixed ones


class Resources(Section):
    """What one worker (one trial at a time) needs: a cluster places workers by it; TensorFlow in a worker uses that
    many threads. Fractional GPUs share one device (each worker's TensorFlow grows its memory as it needs)."""

    cpus: float = Field(1, gt=0, le=1024)
    gpus: float = Field(0, ge=0, le=64)


class Plateau(Section):
    """The search has stalled: the best has not improved by ``min_delta`` over the last ``trials`` finished trials."""

    trials: int = Field(ge=1, le=10_000)
    min_delta: float = Field(0.0, ge=0)


class StopRules(Section):
    """When the whole sweep ends before its trials or its time budget are spent."""

    on_target: bool = False  # the first trial whose test scores meet the space's target: bar ends the sweep
    plateau: Plateau | None = None


class SweepSettings(Section):
    n_trials: int = Field(20, ge=1)
    timeout: float | None = Field(1800, gt=0)
    seed: int = Field(42, ge=0)
    repeats: int = Field(1, ge=1, le=100)
    confirm: int = Field(0, ge=0, le=20)  # after the search: the winner's params again on this many new seeds
    sampler: Sampler = Sampler()
    pruner: Pruner = Pruner()
    baselines: list[Baseline] = Field(default_factory=list)
    # An earlier study of the same task in the same storage: its finished trials are copied in when this study is
    # created, so the sampler models from its first pick; they are not this sweep's trials (no runs, not counted,
    # never the winner).
    warm_start: str | None = Field(None, min_length=1)
    resources: Resources = Resources()
    stop: StopRules = StopRules()


EXAM_BAR = {"test_accuracy": Bound(min=0.89), "test_loss": Bound(max=0.33)}


class DataFile(Section):
    """Data of the user's, by its path (relative to the project folder): an .npz of x_train, y_train, x_test,
    y_test (x_val, y_val optional); a .csv or .parquet table with a ``target`` column; or a folder of images, one
    sub-folder per class (in ``train/`` and ``test/``, or split)."""

    path: str = Field(min_length=1)
    target: str | None = Field(None, min_length=1)  # a table's label column
    test: str | None = Field(None, min_length=1)  # a table's own test file; else test_size of it is held out
    test_size: float = Field(0.2, gt=0, lt=1)  # held out once (seeded, stratified for classes) when no test is given
    image_size: tuple[int, int] | None = None  # height, width: images are resized to it (needed for mixed sizes)
    color_mode: Literal["grayscale", "rgb"] | None = None  # default: grayscale when every image is

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
        if size is not None and not all(1 <= side <= 4096 for side in size):
            raise ValueError(f"{list(size)}: expected [height, width], each 1 to 4096 pixels")
        return size


class SpaceFile(Section):
    """A whole search-space file."""

    habits: ClassVar[dict[str, str]] = {  # a W&B sweep file's keys
        "method": "sweep: {sampler: {name: …}} (W&B's method: grid → grid, random → random, bayes → tpe)",
        "metric": "objective: {metric: val_accuracy} (W&B's metric name; the direction follows from it)",
        "parameters": "params: (W&B's values: [...] → {type: categorical, choices: [...]}, min/max → {type: float, "
                      "low: …, high: …})",
        "early_terminate": "sweep: {pruner: {name: hyperband}} (W&B's early_terminate)",
        "program": "model: mlp, cnn or module:function (the space names its model builder; there is no training script)",
        "command": "model: mlp, cnn or module:function (the space names its model builder; there is no training script)",
        "run_cap": "sweep: {n_trials: …} (W&B's run_cap)",
    }

    name: str | None = None
    description: str = ""
    dataset: str | DataFile  # a built-in dataset's name, or {path: FILE}
    task: Literal[TASKS] = "classification"  # type: ignore[valid-type]
    validation: Literal[VALIDATIONS] = "holdout"  # type: ignore[valid-type]
    val_size: float = Field(10000, gt=0, le=1_000_000)  # a count, or a fraction (< 1) of the training part
    folds: int | None = Field(None, ge=2, le=20)  # validation: kfold's (5 when left out); each fold is a repeat
    model: str  # a built-in family, or module:function naming the user's builder
    fixed: dict[str, Scalar] = Field(default_factory=dict)
    train: TrainValues = TrainValues()
    params: dict[str, Param] = Field(default_factory=dict)
    objective: Objective = Objective()
    target: dict[Literal[TARGET_METRICS], Bound] = Field(default_factory=lambda: dict(EXAM_BAR))  # type: ignore[valid-type]
    sweep: SweepSettings = SweepSettings()
    # Each "NAME OP NAME" or "NAME OP NUMBER" (OP: <=, >=, <, >), a name a param or an outcome (param_count,
    # epoch_time_s, a validation metric): on params alone checked before training, on outcomes after it.
    constraints: list[Annotated[str, AfterValidator(check_constraint)]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data: Any) -> Any:
        """What is left out follows from the task and the data: a regression selects on val_mae and has no exam
        bar; data of the user's has no exam bar either and holds out a fraction (0.2) for validation, not 10,000
        examples."""
        if not isinstance(data, dict):
            return data
        data = kfold_defaults(dict(data))
        if data.get("task") == "regression":
            objective = data.get("objective")
            if objective is None or (isinstance(objective, dict) and "metric" not in objective):
                data["objective"] = {**(objective or {}), "metric": "val_mae"}
            data.setdefault("target", {})
        if isinstance(data.get("dataset"), dict):  # the exam bar is Fashion-MNIST's: data of yours has none unless given
            data.setdefault("val_size", 0.2)
            data.setdefault("target", {})
        return data

    @model_validator(mode="after")
    def _fits_task(self) -> SpaceFile:
        metrics, targets = TASK_METRICS[self.task]
        if self.task == "regression" and isinstance(self.dataset, str):
            raise ValueError(f"task: {self.dataset} is a classification dataset; a regression needs data of yours")
        for name in (self.objective.metric, self.objective.secondary):
            if name and name.startswith("val_") and name not in metrics:
                raise ValueError(f"objective: {name} is not a metric of a {self.task} (allowed: {_names(sorted(metrics))})")
        if self.train.loss and self.train.loss not in TASK_LOSSES[self.task]:
            raise ValueError(f"train.loss: {self.train.loss} is not a loss of a {self.task} (allowed: "
                             f"{_names(sorted(TASK_LOSSES[self.task]))})")
        if self.train.metrics and set(self.train.metrics) != set(TASK_TRAINING[self.task]["metrics"]):
            raise ValueError(f"train.metrics: a {self.task} is measured by {_names(TASK_TRAINING[self.task]['metrics'])}")
        for name in self.target:
            if name not in targets:
                raise ValueError(f"target.{name}: not a metric of a {self.task} (allowed: {_names(sorted(targets))})")
        if self.sweep.stop.on_target and not self.target:
            raise ValueError("sweep.stop.on_target: the space has no target: bar to meet (add one, e.g. "
                             f"{'target: {test_mae: {max: …}}' if self.task == 'regression' else 'target: {test_accuracy: {min: …}}'})")
        return self

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset(cls, dataset: Any) -> Any:
        if isinstance(dataset, str) and dataset not in DATASETS:
            raise ValueError(f"{dataset!r}: expected {', '.join(DATASETS)} or {{path: FILE}} naming your data file")
        return dataset

    @field_validator("val_size")
    @classmethod
    def _val_size(cls, val_size: float) -> float:
        if val_size >= 1 and val_size != int(val_size):
            raise ValueError(f"{val_size}: expected a count (a whole number) or a fraction below 1")
        return int(val_size) if val_size >= 1 else val_size

    @field_validator("model")
    @classmethod
    def _model(cls, model: str) -> str:
        if model not in FAMILY_KEYS and not BUILDER_PATTERN.match(model):
            raise ValueError(f"{model!r}: expected {', '.join(FAMILY_KEYS)} or module:function naming your builder "
                             "(params, input_shape, num_classes) -> keras.Model, e.g. models:build")
        return model
