"""Load and validate a search-space file into a :class:`Space` that can ask an Optuna trial for params."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ValidationError

from experiments.data.raw import DataSource, UserData, file_version
from experiments.settings import DEFAULTS, PER_LAYER, TrainSettings, base_name, feature_size, is_built_in, layer_name
from sweeps.errors import SpaceError, one_line
from sweeps.space.conditions import When, allowed, check_conditions, holds, lineage, sampling_order
from sweeps.space.constraints import Constraint, check_feasible, on_params_only, parse_constraint
from sweeps.space.schema import (
    FAMILY_KEYS,
    TASK_METRICS,
    TASK_TRAINING,
    CategoricalParam,
    FloatParam,
    ModelValues,
    Param,
    SpaceFile,
    TrainValues,
)
from sweeps.space.validation import check_validation

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SUFFIXES = (".yaml", ".yml")  # a space file's
TRAIN_KEYS = tuple(TrainValues.model_fields)
MAX_GRID = 10_000
# libyaml's loader where PyYAML was built with it: the same YAML, about 10x faster than the pure-Python one.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Suggester(Protocol):
    """What a Space needs from a trial: Optuna's ``Trial`` has it."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float: ...
    def suggest_categorical(self, name: str, choices: list) -> Any: ...


@dataclass(frozen=True)
class Space:
    """A validated search space: the parsed file, where it came from, its text and a hash of it (the text travels
    with the space, so a worker or a report never reads the file again)."""

    spec: SpaceFile
    path: Path
    sha: str
    text: str

    @property
    def name(self) -> str:
        return self.spec.name or self.path.stem

    @property
    def data(self) -> DataSource:
        """What ``experiments.data`` loads: a built-in dataset's name, or the path of the user's data file."""
        dataset = self.spec.dataset
        if isinstance(dataset, str):
            return dataset
        path, test = Path(dataset.path), Path(dataset.test) if dataset.test else None
        return UserData(path, target=dataset.target, test=test, test_size=dataset.test_size,
                        image_size=dataset.image_size, color_mode=dataset.color_mode,
                        regression=self.spec.task == "regression", version=file_version(path, test))

    @property
    def data_label(self) -> str:
        """The data as the report names it."""
        return str(self.data)

    @property
    def constraints(self) -> list[Constraint]:
        """The file's constraints, parsed."""
        return [parse_constraint(text) for text in self.spec.constraints]

    def split_constraints(self) -> tuple[list[Constraint], list[Constraint]]:
        """The constraints on params alone (checked before training) and those on outcomes (after it)."""
        params = set(param_ranges(self.spec))
        alone = [c for c in self.constraints if on_params_only(c, params)]
        return alone, [c for c in self.constraints if c not in alone]

    def suggest(self, trial: Suggester) -> dict[str, Any]:
        """Ask ``trial`` for every param whose ``when:`` holds (define-by-run: each after the params it names; a param
        not sampled is left out, so its builder's default applies); per-layer params up to the sampled depth only."""
        values: dict[str, Any] = {}
        # Keras Tuner's oracle must know a conditional param even where its condition fails (it returns None there).
        scope: Callable[[list[When]], AbstractContextManager] | None = getattr(trial, "conditional_scope", None)
        for name in sampling_order(self.spec.params):
            param = self.spec.params[name]
            active = holds(param.when, values)
            if not active and scope is None:
                continue
            with scope(lineage(self.spec.params, name)) if scope is not None and param.when else nullcontext():
                value = _suggest(trial, name, param)
            if active:
                values[name] = value
        for name, param in self.spec.params.items():
            if not param.per_layer:
                continue
            depth_name = PER_LAYER[self.spec.model][name]
            depth = values.get(depth_name, self.spec.fixed.get(depth_name, DEFAULTS[self.spec.model][depth_name]))
            for i in range(1, depth + 1):
                values[layer_name(name, i)] = _suggest(trial, layer_name(name, i), param)
        return values

    def resolve(self, sampled: dict[str, Any]) -> tuple[dict[str, Any], TrainSettings]:
        """Split fixed + sampled values into model hyperparameters and training settings."""
        train = {**TASK_TRAINING[self.spec.task], **self.spec.train.model_dump(exclude_none=True),
                 **{k: v for k, v in sampled.items() if k in TRAIN_KEYS}}
        if "metrics" in train:
            train["metrics"] = tuple(train["metrics"])
        model = {**self.spec.fixed, **{k: v for k, v in sampled.items() if k not in TRAIN_KEYS}}
        return model, TrainSettings(**train, monitor=self.spec.objective.metric, robust=self.spec.objective.robust)

    def grid(self) -> dict[str, list[Any]]:
        """The full grid of a space whose params all have finite values (for the grid sampler)."""
        return {name: param.values() for name, param in self.spec.params.items()}


def _suggest(trial: Suggester, name: str, param: Param) -> Any:
    if isinstance(param, CategoricalParam):
        return trial.suggest_categorical(name, param.choices)
    if isinstance(param, FloatParam):
        return trial.suggest_float(name, param.low, param.high, step=param.step, log=param.log)
    return trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)


def _error_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    if len(loc) > 2 and loc[0] == "params" and loc[2] in ("int", "float", "categorical"):
        del loc[2]  # the union's tag, not a key of the file
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "required field is missing"
    return f"{'.'.join(loc) or 'top level'}: {msg}"


def _check_value(name: str, value: Any, family: str) -> None:
    base = base_name(name, family)
    if base not in TRAIN_KEYS and not is_built_in(family):
        return  # a builder of the user's takes whatever settings it reads
    model: type[BaseModel] = TrainValues if base in TRAIN_KEYS else ModelValues
    if model is ModelValues and base not in FAMILY_KEYS[family]:
        allowed = ", ".join(FAMILY_KEYS[family] + TRAIN_KEYS)
        raise ValueError(f"{name!r} is not a setting of a {family} model (allowed: {allowed})")
    try:
        model.model_validate({base: value})
    except ValidationError as exc:
        raise ValueError(f"{value!r} is not allowed: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def is_allowed(name: str, value: Any, family: str) -> bool:
    """Whether a space file may give setting ``name`` the value ``value`` (its declared bounds)."""
    try:
        _check_value(name, value, family)
    except ValueError:
        return False
    return True


def _check_cross_fields(spec: SpaceFile, stem: str) -> None:
    """Checks that need the model family or several sections at once; raise ValueError('<field>: <why>')."""
    family = spec.model
    if spec.name is not None and spec.name != stem:
        raise ValueError(f"name: {spec.name!r} must match the file name {stem!r}")
    for name, value in spec.fixed.items():
        if base_name(name, family) in TRAIN_KEYS:
            raise ValueError(f"fixed.{name}: training settings go under train:, not fixed:")
        _wrap(f"fixed.{name}", _check_value, name, value, family)
    explicit = spec.train.model_fields_set | set(spec.fixed)
    for name, param in spec.params.items():
        if name in explicit:
            raise ValueError(f"params.{name}: also given a fixed value; a setting is either fixed or a param")
        for value in param.bounds():
            _wrap(f"params.{name}", _check_value, name, value, family)
        if param.per_layer and not is_built_in(family):
            raise ValueError(f"params.{name}.per_layer: only a built-in model counts its layers; name each layer's "
                             f"param yourself ({name}_1, {name}_2…)")
        if param.per_layer and name not in PER_LAYER[family]:
            raise ValueError(f"params.{name}.per_layer: only {', '.join(PER_LAYER[family])} can be per layer in a {family}")
    check_conditions(spec)
    _check_constraints(spec)
    check_validation(spec)
    if spec.sweep.sampler.name == "grid":
        for name, param in spec.params.items():
            if param.per_layer or (isinstance(param, FloatParam) and param.step is None):
                raise ValueError(f"params.{name}: the grid sampler needs finite values (categorical, int, or float with step) and no per_layer")
        points = math.prod(param.size() for param in spec.params.values())
        if points > MAX_GRID:
            raise ValueError(f"params: the grid has {points:,} points; the grid sampler takes at most {MAX_GRID:,}")
    if spec.objective.secondary:
        if spec.sweep.pruner.name != "none":
            raise ValueError("sweep.pruner.name: a study with a secondary objective cannot prune (Optuna reports one "
                             "value per step); use none")
        if spec.sweep.sampler.name == "cmaes":
            raise ValueError("sweep.sampler.name: cmaes optimises a single objective; use tpe, random, grid, qmc or gp")
    planned = spec.train.epochs or TrainSettings.epochs
    for i, baseline in enumerate(spec.sweep.baselines):
        if baseline.epochs and "epochs" not in spec.params and baseline.epochs > planned:
            raise ValueError(f"sweep.baselines.{i}.epochs: {baseline.epochs} is more than the {planned} of train.epochs "
                             "(a baseline's epochs is a cheaper first look; raise train.epochs for longer trials)")
        for name, value in baseline.params.items():
            _wrap(f"sweep.baselines.{i}.params.{name}", _check_baseline_value, spec, name, value, baseline.params)
        for name, value in baseline.fixed.items():
            _wrap(f"sweep.baselines.{i}.fixed.{name}", _check_baseline_fixed, spec, name, value)
    if family == "cnn" and isinstance(spec.dataset, str):  # the built-in datasets' 28x28; data of yours: see commands
        check_cnn_size(spec, 28)


OUTCOMES = ("param_count", "epoch_time_s")  # what a trial measures besides its validation metrics


def outcome_names(spec: SpaceFile) -> set[str]:
    """What a constraint may name besides params: the model's size, an epoch's time, the task's validation metrics
    (the moved copy's only when the objective scores it)."""
    metrics = TASK_METRICS[spec.task][0] - (set() if spec.objective.robust else {"val_robust_accuracy"})
    return {*OUTCOMES, *metrics}


def param_ranges(spec: SpaceFile) -> dict[str, tuple[float, float]]:
    """The numeric params a constraint may name, with their lowest and highest values; a per-layer param by each
    layer's name (``units_2``), up to the deepest net the space can sample."""
    ranges: dict[str, tuple[float, float]] = {}
    for name, param in spec.params.items():
        numbers = [v for v in param.bounds() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) != len(param.bounds()):
            continue  # a categorical of names or booleans: not compared
        if not param.per_layer:
            ranges[name] = (min(numbers), max(numbers))
            continue
        for i in range(1, max(_reachable(spec, PER_LAYER[spec.model][name])) + 1):
            ranges[layer_name(name, i)] = (min(numbers), max(numbers))
    return ranges


def _check_constraints(spec: SpaceFile) -> None:
    if spec.constraints and spec.sweep.sampler.name == "cmaes":
        raise ValueError("constraints: the cmaes sampler ignores them (Optuna's CmaEsSampler); use tpe or gp")
    ranges, outcomes = param_ranges(spec), outcome_names(spec)
    for i, text in enumerate(spec.constraints):
        constraint = parse_constraint(text)
        _wrap(f"constraints.{i}", check_feasible, constraint, ranges, outcomes)
        for place, baseline in enumerate(spec.sweep.baselines):  # else queued only to be rejected untrained
            broken = constraint.value(baseline.params)
            if broken is not None and broken > 0:
                raise ValueError(f"sweep.baselines.{place}.params: breaks constraints.{i} ({text})")


def _check_baseline_fixed(spec: SpaceFile, name: str, value: Any) -> None:
    """A baseline may change a fixed model setting (a cheaper first look), never a param or a training setting."""
    if name in spec.params or base_name(name, spec.model) in spec.params:
        raise ValueError("a param of this space: give its value under params:")
    if base_name(name, spec.model) in TRAIN_KEYS:
        raise ValueError("a training setting: a baseline may change model settings only")
    _check_value(name, value, spec.model)


def _check_baseline_value(spec: SpaceFile, name: str, value: Any, baseline: dict[str, Any]) -> None:
    """A baseline value must be one the param could sample (Optuna's enqueue_trial would take anything)."""
    base = base_name(name, spec.model)
    param = spec.params.get(name) or spec.params.get(base)
    if param is None or (name != base) != param.per_layer:
        raise ValueError(f"not a param of this space (params: {', '.join(spec.params) or 'none'})")
    if isinstance(param, CategoricalParam):
        if value not in param.choices:
            raise ValueError(f"{value!r} is not one of the choices {param.choices}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not param.low <= value <= param.high:
        raise ValueError(f"{value!r} is outside the range {param.low} to {param.high}")
    ruled_out = [(k, v) for k, v in (param.when or {}).items() if k in baseline and baseline[k] not in allowed(v)]
    if ruled_out:
        raise ValueError(f"sampled only when {ruled_out[0][0]} is {ruled_out[0][1]} (this baseline sets {baseline[ruled_out[0][0]]!r})")


def _wrap(field: str, check, *args) -> None:
    try:
        check(*args)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


def _reachable(spec: SpaceFile, name: str) -> list[Any]:
    if name in spec.params:
        return spec.params[name].bounds()
    return [spec.fixed.get(name, DEFAULTS[spec.model][name])]


def check_cnn_size(spec: SpaceFile, side: int) -> None:
    """The deepest, widest-kernelled net the space can sample keeps a feature map of the input's ``side``; a
    ValueError naming the params and the side otherwise."""
    worst = {
        "conv_layers": max(_reachable(spec, "conv_layers")),
        "convs_per_block": max(_reachable(spec, "convs_per_block")),
        "kernel_size": max(_reachable(spec, "kernel_size")),
        "padding": "valid" if "valid" in _reachable(spec, "padding") else "same",
        "pooling": "max" if set(_reachable(spec, "pooling")) - {"none"} else "none",
    }
    if feature_size(worst, side) < 1:
        raise ValueError(
            f"params: conv_layers up to {worst['conv_layers']} ({worst['convs_per_block']} per block) with kernel_size up to {worst['kernel_size']} "
            f"(padding {worst['padding']}, pooling {worst['pooling']}) shrinks the {side}x{side} input below 1x1; "
            "lower them or use padding: same"
        )


def parse_space(text: str, path: Path) -> Space:
    """Parse and validate the YAML ``text`` of the space file at ``path``."""
    try:
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or one_line(exc)
        raise SpaceError(f"{path}: {where}YAML syntax error: {problem}") from None
    if data is None:
        raise SpaceError(f"{path}: empty file (expected a mapping with dataset, model, params…)")
    if not isinstance(data, dict):
        raise SpaceError(f"{path}: top level must be a mapping of keys (dataset, model, params…), not {type(data).__name__}")
    try:
        spec = SpaceFile.model_validate(data)
        _check_cross_fields(spec, path.stem)
    except ValidationError as exc:
        raise SpaceError(f"{path}: {_error_line(exc)}") from None
    except ValueError as exc:
        raise SpaceError(f"{path}: {exc}") from None
    return Space(spec=spec, path=path, sha=hashlib.sha256(text.encode()).hexdigest()[:12], text=text)


def available(spaces_dir: Path) -> list[str]:
    """Names of the space files in ``spaces_dir`` (a SpaceError when there is no such folder)."""
    if not spaces_dir.is_dir():
        raise SpaceError(f"no {spaces_dir}/ folder in {Path.cwd()}: run from the project folder (the one holding it; "
                         "`sweep init` starts one) or pass --spaces-dir (SWEEPS_SPACES_DIR)")
    return sorted({p.stem for suffix in SUFFIXES for p in spaces_dir.glob(f"*{suffix}")})


def load_space(name: str, spaces_dir: Path) -> Space:
    """Load space ``name``: a file stem in ``spaces_dir``, or a path to a file in it (tab completion); paths and
    symlinks out of it are refused."""
    listing = f"available: {', '.join(available(spaces_dir)) or 'none'} in {spaces_dir}"
    given = Path(name)
    if given.suffix in SUFFIXES and given.is_file() and given.resolve().parent == spaces_dir.resolve():
        name = given.stem
    if not NAME_PATTERN.match(name):
        raise SpaceError(f"SPACE={name!r}: give the name of a file in {spaces_dir} without a path ({listing})")
    stem = name.removesuffix(".yaml").removesuffix(".yml")
    found = [spaces_dir / f"{stem}{suffix}" for suffix in SUFFIXES if (spaces_dir / f"{stem}{suffix}").is_file()]
    if not found:
        raise SpaceError(f"SPACE={name!r}: no such space ({listing})")
    if len(found) > 1:
        raise SpaceError(f"SPACE={name!r}: both {found[0].name} and {found[1].name} in {spaces_dir}: keep one")
    path = found[0]
    if not path.resolve().is_relative_to(spaces_dir.resolve()):
        raise SpaceError(f"SPACE={name!r}: {path} points outside {spaces_dir}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot read ({exc})") from None
    return parse_space(text, path)
