"""Model builders: plain hyperparameters, the input shape and the class count in, an uncompiled ``keras.Model`` out.

A space names its builder: a built-in family (``mlp``, ``cnn``) or ``module:function`` from the user's project;
both go through :func:`builder`, one mechanism."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from experiments.data.loading import TargetScale
from experiments.data.tables import TableFront
from experiments.errors import ModelError
from experiments.layers import fused_batch_norm
from experiments.settings import feature_size, layer_value, setting

Builder = Callable[[dict[str, Any], tuple[int, ...], int | None], keras.Model]
# Batch norm's moving statistics move 10 % a step (PyTorch's default), not Keras's 1 %: with Keras's, a quick run's
# 94 steps left them far from the data and every batch-norm CNN validated at chance (0.10-0.19 vs 0.84 without).
BN_MOMENTUM = 0.9


def output_layer(num_classes: int | None) -> keras.layers.Layer:
    """A classifier's softmax over its classes, or a regression's one linear unit."""
    return keras.layers.Dense(num_classes, activation="softmax") if num_classes else keras.layers.Dense(1)


def build_mlp(params: dict[str, Any], input_shape: tuple[int, ...], num_classes: int | None) -> keras.Model:
    """Flatten → (Dense → Dropout) × hidden_layers → Dense softmax."""
    act, dropout = setting(params, "activation", "mlp"), setting(params, "dropout", "mlp")
    layers: list[keras.layers.Layer] = [keras.Input(input_shape), keras.layers.Flatten()]
    for i in range(1, setting(params, "hidden_layers", "mlp") + 1):
        layers.append(keras.layers.Dense(layer_value(params, "units", i, "mlp"), activation=act))
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(output_layer(num_classes))
    return keras.Sequential(layers, name="mlp")


def _augmentation(get) -> list[keras.layers.Layer]:
    """Keras preprocessing layers for the augment_* knobs; they change images only while training."""
    layers: list[keras.layers.Layer] = []
    if get("augment_flip"):
        layers.append(keras.layers.RandomFlip("horizontal"))
    if get("augment_translate") > 0:
        layers.append(keras.layers.RandomTranslation(get("augment_translate"), get("augment_translate"), fill_mode="constant"))
    if get("augment_rotate") > 0:
        layers.append(keras.layers.RandomRotation(get("augment_rotate") / 360, fill_mode="constant"))
    if get("augment_zoom") > 0:
        layers.append(keras.layers.RandomZoom(get("augment_zoom"), fill_mode="constant"))
    if get("augment_erase") > 0:
        # Random Erasing (Zhong et al. 2017): a patch of random noise; Keras draws the probability from
        # [0, factor] unless given as a range, so (p, p) makes it p. Model inputs are in [0, 1].
        p = get("augment_erase")
        layers.append(keras.layers.RandomErasing(factor=(p, p), value_range=(0, 1)))
    return layers


def build_cnn(params: dict[str, Any], input_shape: tuple[int, ...], num_classes: int | None) -> keras.Model:
    """[augmentation] → conv_layers blocks of (Conv [→ BatchNorm] → activation) × convs_per_block → Pool
    [→ Dropout] → Flatten or global average → Dense → Dropout → Dense softmax. With one conv per block and no
    batch norm this is the blog's CNN."""
    get = lambda name: setting(params, name, "cnn")  # noqa: E731
    if len(input_shape) != 3:
        raise ValueError(f"the cnn takes images (height, width, channels), not inputs of shape {input_shape}: use mlp "
                         "or a builder of yours")
    if feature_size(params, input_shape[0]) < 1:
        side = input_shape[0]
        raise ValueError(f"conv_layers={get('conv_layers')} with kernel_size={get('kernel_size')} shrinks {side}x{side} below 1x1")
    pool = {"max": keras.layers.MaxPooling2D, "avg": keras.layers.AveragePooling2D}.get(get("pooling"))
    norm = get("batch_norm")
    layers: list[keras.layers.Layer] = [keras.Input(input_shape), *_augmentation(get)]
    for i in range(1, get("conv_layers") + 1):
        filters = layer_value(params, "filters", i, "cnn")
        for _ in range(get("convs_per_block")):
            # With batch norm the conv's bias is redundant and the activation follows the normalisation.
            layers.append(keras.layers.Conv2D(filters, get("kernel_size"), padding=get("padding"), use_bias=not norm,
                                              activation=None if norm else get("activation")))
            if norm:
                layers += [fused_batch_norm(BN_MOMENTUM), keras.layers.Activation(get("activation"))]
        if pool is not None:
            layers.append(pool(2))
        if get("conv_dropout") > 0:
            layers.append(keras.layers.Dropout(get("conv_dropout")))
    layers.append(keras.layers.GlobalAveragePooling2D() if get("head") == "global_avg" else keras.layers.Flatten())
    if get("dense_units") > 0:
        layers.append(keras.layers.Dense(get("dense_units"), activation=get("activation")))
    if get("dropout") > 0:
        layers.append(keras.layers.Dropout(get("dropout")))
    layers.append(output_layer(num_classes))
    network = keras.Sequential(layers, name="cnn")
    return with_mirror_averaged(network, input_shape) if get("test_time_flip") else network


BUILT_IN = {"mlp": "experiments.models:build_mlp", "cnn": "experiments.models:build_cnn"}


def builder(model: str) -> Builder:
    """The builder named ``model``: a built-in family or ``module:function`` importable from the project folder."""
    module, _, function = BUILT_IN.get(model, model).partition(":")
    try:
        found = getattr(importlib.import_module(module), function)
    except ImportError as exc:
        raise ModelError(f"model {model}: cannot import {module} ({type(exc).__name__}: {exc})") from None
    except AttributeError:
        raise ModelError(f"model {model}: {module} has no function {function}") from None
    if not callable(found):
        raise ModelError(f"model {model}: {module}.{function} is not a function")
    return found


def build_model(model: str, params: dict[str, Any], input_shape: tuple[int, ...], num_classes: int | None) -> keras.Model:
    """Build the model a space names from its hyperparameters, for inputs of ``input_shape`` and ``num_classes``
    classes; a ModelError when the builder returns no Keras model."""
    built = builder(model)(params, input_shape, num_classes)
    if not isinstance(built, keras.Model):
        raise ModelError(f"model {model}: the builder returned {type(built).__name__}, not a keras.Model")
    return built


@keras.saving.register_keras_serializable(package="sweeps")
class TableFeatures(keras.layers.Layer):
    """A table's row of numbers and text codes → its numbers standardised (Keras' Normalization, with the training
    part's statistics) and each text column one-hot encoded (Keras' CategoryEncoding), a code the training part
    lacks as the unknown (0). Saved with the model, so a checkpoint or a registered model encodes rows the way the
    sweep did."""

    def __init__(self, numeric: Sequence[int], mean: Sequence[float], variance: Sequence[float],
                 categories: Sequence[Sequence[int]], known: Sequence[Sequence[int]] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.numeric, self.mean, self.variance = list(numeric), list(mean), list(variance)
        self.categories = [list(c) for c in categories]  # [column index, one-hot width]
        # known: each text column's codes in the training part; a model saved before it was kept knows every code
        self.known = ([[int(code) for code in k] for k in known] if known is not None
                      else [list(range(width)) for _, width in self.categories])
        self.lookups = [self._lookup(width, k) for (_, width), k in zip(self.categories, self.known, strict=True)]
        self.standardise = keras.layers.Normalization(mean=self.mean, variance=self.variance) if numeric else None
        self.one_hot = [keras.layers.CategoryEncoding(width, output_mode="one_hot") for _, width in self.categories]

    @staticmethod
    def _lookup(width: int, known: list[int]) -> np.ndarray:
        """A constant table: code → itself where the training part had it, else 0, the unknown."""
        lookup = np.zeros(width, dtype="int32")
        lookup[known] = known
        return lookup

    def build(self, input_shape: tuple) -> None:
        # Here, not on the first call: built inside a symbolic call, Normalization's constants would be graph-bound.
        if self.standardise is not None:
            self.standardise.build((None, len(self.numeric)))
        for encode in self.one_hot:
            encode.build((None,))
        self.built = True

    def call(self, rows: Any) -> Any:
        parts = [self.standardise(keras.ops.take(rows, self.numeric, axis=1))] if self.standardise else []
        parts += [encode(keras.ops.take(lookup, keras.ops.cast(rows[:, column], "int32")))
                  for (column, _), lookup, encode in zip(self.categories, self.lookups, self.one_hot, strict=True)]
        return keras.ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], len(self.numeric) + sum(width for _, width in self.categories))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "numeric": self.numeric, "mean": self.mean, "variance": self.variance,
                "categories": self.categories, "known": self.known}


@keras.saving.register_keras_serializable(package="sweeps")
class MirrorAveraged(keras.layers.Layer):
    """Test-time augmentation: at inference (validation, test, predictions) the network's outputs for an image and
    for its horizontal mirror, averaged; while training, the network alone, so an epoch's training costs the same.
    Saved with the model, so a checkpoint or a registered model predicts the way the sweep scored."""

    def __init__(self, network: keras.Model, **kwargs: Any):
        super().__init__(**kwargs)
        self.network = network

    def build(self, input_shape: tuple) -> None:
        if not self.network.built:
            self.network.build(input_shape)
        self.built = True

    def call(self, images: Any, training: bool | None = None) -> Any:
        outputs = self.network(images, training=training)
        if training:
            return outputs
        return (outputs + self.network(keras.ops.flip(images, axis=-2), training=False)) / 2  # axis -2: the width

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return self.network.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "network": keras.saving.serialize_keras_object(self.network)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MirrorAveraged:
        return cls(network=keras.saving.deserialize_keras_object(config.pop("network")), **config)


def with_mirror_averaged(network: keras.Model, input_shape: tuple[int, ...]) -> keras.Model:
    """``network`` scoring each image as the mean of its and its mirror's outputs (see :class:`MirrorAveraged`)."""
    images = keras.Input(input_shape)
    return keras.Model(images, MirrorAveraged(network, name="mirror_averaged")(images), name=network.name)


@keras.saving.register_keras_serializable(package="sweeps")
class TargetUnits(keras.layers.Layer):
    """A regression's output in the user's units: ``z * std + mean`` with the training part's target statistics.
    The network before it learns the standardised target, so it starts at the mean with the target's spread
    whatever the units (a target in the hundreds trained worse than predicting the mean); the loss and the MAE
    stay in the user's units. Saved with the model, so a checkpoint or a registered model predicts in them."""

    def __init__(self, mean: float, std: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.mean, self.std = float(mean), float(std)

    def call(self, standardised: Any) -> Any:
        return standardised * self.std + self.mean

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "std": self.std}


def in_target_units(target: TargetScale, network: keras.Model, input_shape: tuple[int, ...]) -> keras.Model:
    """``network`` (taking inputs of ``input_shape``) with its output mapped to the target's units (see
    :class:`TargetUnits`)."""
    inputs = keras.Input(input_shape)
    outputs = TargetUnits(target.mean, target.std, name="target_units")(network(inputs))
    return keras.Model(inputs, outputs, name=network.name)


def with_front(front: TableFront, network: keras.Model) -> keras.Model:
    """``network`` (built for the front's features) behind a table's encoding: the model takes table rows."""
    rows = keras.Input((len(front.schema.columns),), name="rows")
    features = TableFeatures(front.schema.numeric, front.mean, front.variance, front.categories, front.known,
                             name="table_features")(rows)
    return keras.Model(rows, network(features), name=network.name)


def build_for_data(model: str, params: dict[str, Any], input_shape: tuple[int, ...], num_classes: int | None,
                   front: TableFront | None = None, target: TargetScale | None = None) -> keras.Model:
    """The space's model for its data: a table's rows go through its front into a network built for the front's
    features; other inputs go straight in. A regression's network (``target``: the training part's target
    statistics, any builder's) learns the standardised target, its output mapped back to the target's units."""
    features = (front.schema.width,) if front is not None else input_shape
    network = build_model(model, params, features, num_classes)
    if target is not None:
        network = in_target_units(target, network, features)
    return network if front is None else with_front(front, network)
