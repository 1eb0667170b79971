"""Build a space's model once, before anything trains: a builder of the user's that cannot be imported, raises,
or returns no fitting Keras model is one line naming the space file, not a failed trial."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import optuna

from experiments.errors import ModelError
from experiments.models import build_model
from sweeps.errors import BadModel, one_line
from sweeps.space.space import Space


def _draw(space: Space) -> dict[str, Any]:
    """A seeded draw of the space's params, as the sampler's first random trial would make it (an in-memory study,
    so log scales, steps and choices are Optuna's own)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=space.spec.sweep.seed))
    return space.suggest(study.ask())


def check_model(space: Space, input_shape: tuple[int, ...], num_classes: int | None) -> keras.Model:
    """Build the model of the space's first baseline (else of a seeded draw of its params) and check its output
    fits ``num_classes`` classes; no training. The built model, or a BadModel naming the space file."""
    baselines = space.spec.sweep.baselines
    sampled = _draw(space)
    if baselines:
        sampled.update(baselines[0].params)
    model_params, _ = space.resolve(sampled)
    if baselines:
        model_params.update(baselines[0].fixed)
    where = f"{space.path}: model {space.spec.model}"
    keras.backend.clear_session()
    try:
        model = build_model(space.spec.model, model_params, input_shape, num_classes)
    except ModelError as exc:
        raise BadModel(f"{space.path}: {exc}") from None
    except Exception as exc:  # the builder's own error, named
        raise BadModel(f"{where}: the builder raised {type(exc).__name__}: {one_line(exc)} (params {model_params})") from None
    try:
        model(np.zeros((1, *input_shape), dtype="float32"))
    except Exception as exc:
        raise BadModel(f"{where}: the model does not take inputs of shape {input_shape} ({one_line(exc)})") from None
    _check_outputs(model, num_classes, where)
    return model


def model_size(space: Space, input_shape: tuple[int, ...], num_classes: int | None) -> int:
    """The parameter count of :func:`check_model`'s model (what a process that asked another to build it gets back)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # in a process of its own: no line for its in-memory study
    return check_model(space, input_shape, num_classes).count_params()


def _check_outputs(model: keras.Model, num_classes: int | None, where: str) -> None:
    """A classifier ends in one softmax unit per class; a regression in one unit without softmax."""
    outputs = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if num_classes is not None and outputs != num_classes:
        raise BadModel(f"{where}: the model has {outputs} outputs for {num_classes} classes; end it with "
                       f"Dense({num_classes}, activation='softmax')")
    last = getattr(model.layers[-1], "activation", None) if model.layers else None
    if num_classes is None and (outputs != 1 or getattr(last, "__name__", "") == "softmax"):
        kind = "a softmax" if outputs == 1 else f"{outputs} outputs"
        raise BadModel(f"{where}: the model ends in {kind} for a regression; end it with Dense(1) (no activation)")
