"""Model builders: plain hyperparameters in, an uncompiled ``keras.Model`` out.

Per-layer values are looked up as ``<name>_<i>`` (1-based) and fall back to ``<name>``, so a space
may share one width across layers (``units``) or sample one per layer (``units_1``, ``units_2``…).
"""

from __future__ import annotations

from typing import Any

import keras

INPUT_SHAPE = (28, 28, 1)
POOLINGS = ("max", "avg", "none")
PADDINGS = ("valid", "same")

# family -> hyperparameter -> default. Names marked per-layer accept the ``_<i>`` form.
DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden_layers": 1, "units": 128, "dropout": 0.0, "activation": "relu"},
    "cnn": {
        "conv_layers": 2, "filters": 32, "kernel_size": 3, "pooling": "max", "padding": "valid",
        "dense_units": 128, "dropout": 0.0, "activation": "relu",
    },
}
PER_LAYER = {"mlp": {"units": "hidden_layers"}, "cnn": {"filters": "conv_layers"}}


def layer_value(params: dict[str, Any], name: str, index: int, family: str) -> Any:
    """The value of per-layer hyperparameter ``name`` for layer ``index`` (1-based)."""
    return params.get(f"{name}_{index}", params.get(name, DEFAULTS[family][name]))


def _get(params: dict[str, Any], name: str, family: str) -> Any:
    return params.get(name, DEFAULTS[family][name])


def feature_size(params: dict[str, Any]) -> int:
    """Side length of the CNN's last feature map for a 28x28 input (< 1 means the net is invalid)."""
    size = INPUT_SHAPE[0]
    kernel = _get(params, "kernel_size", "cnn")
    for _ in range(_get(params, "conv_layers", "cnn")):
        if _get(params, "padding", "cnn") == "valid":
            size -= kernel - 1
        if size < 1:
            return size
        if _get(params, "pooling", "cnn") != "none":
            size //= 2
    return size


def build_mlp(params: dict[str, Any], num_classes: int = 10) -> keras.Model:
    """Flatten → (Dense → Dropout) × hidden_layers → Dense softmax."""
    act, dropout = _get(params, "activation", "mlp"), _get(params, "dropout", "mlp")
    layers: list[keras.layers.Layer] = [keras.Input(INPUT_SHAPE), keras.layers.Flatten()]
    for i in range(1, _get(params, "hidden_layers", "mlp") + 1):
        layers.append(keras.layers.Dense(layer_value(params, "units", i, "mlp"), activation=act))
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(num_classes, activation="softmax"))
    return keras.Sequential(layers, name="mlp")


def build_cnn(params: dict[str, Any], num_classes: int = 10) -> keras.Model:
    """(Conv → Pool) × conv_layers → Flatten → Dense → Dropout → Dense softmax (the blog's CNN shape)."""
    get = lambda name: _get(params, name, "cnn")  # noqa: E731
    if feature_size(params) < 1:
        raise ValueError(f"conv_layers={get('conv_layers')} with kernel_size={get('kernel_size')} shrinks 28x28 below 1x1")
    pool = {"max": keras.layers.MaxPooling2D, "avg": keras.layers.AveragePooling2D}.get(get("pooling"))
    layers: list[keras.layers.Layer] = [keras.Input(INPUT_SHAPE)]
    for i in range(1, get("conv_layers") + 1):
        filters = layer_value(params, "filters", i, "cnn")
        layers.append(keras.layers.Conv2D(filters, get("kernel_size"), padding=get("padding"), activation=get("activation")))
        if pool is not None:
            layers.append(pool(2))
    layers.append(keras.layers.Flatten())
    if get("dense_units") > 0:
        layers.append(keras.layers.Dense(get("dense_units"), activation=get("activation")))
    if get("dropout") > 0:
        layers.append(keras.layers.Dropout(get("dropout")))
    layers.append(keras.layers.Dense(num_classes, activation="softmax"))
    return keras.Sequential(layers, name="cnn")


BUILDERS = {"mlp": build_mlp, "cnn": build_cnn}


def build_model(family: str, params: dict[str, Any], num_classes: int = 10) -> keras.Model:
    """Build the ``family`` model (``mlp`` or ``cnn``) from its hyperparameters."""
    return BUILDERS[family](params, num_classes)
