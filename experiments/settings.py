"""Plain settings of a model and its training, without TensorFlow (cheap to import for validation).

Per-layer values are looked up as ``<name>_<i>`` (1-based) and fall back to ``<name>``, so a space
may share one width across layers (``units``) or sample one per layer (``units_1``, ``units_2``…).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPTIMIZER_NAMES = ("adam", "adamw", "nadam", "rmsprop", "sgd")
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


def setting(params: dict[str, Any], name: str, family: str) -> Any:
    """``params[name]``, or the family's default."""
    return params.get(name, DEFAULTS[family][name])


def feature_size(params: dict[str, Any]) -> int:
    """Side length of the CNN's last feature map for a 28x28 input (< 1 means the net is invalid)."""
    size = INPUT_SHAPE[0]
    kernel = setting(params, "kernel_size", "cnn")
    for _ in range(setting(params, "conv_layers", "cnn")):
        if setting(params, "padding", "cnn") == "valid":
            size -= kernel - 1
        if size < 1:
            return size
        if setting(params, "pooling", "cnn") != "none":
            size //= 2
    return size


@dataclass(frozen=True)
class TrainSettings:
    """How to fit: everything that is not the model's architecture."""

    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    loss: str = "sparse_categorical_crossentropy"
    metrics: tuple[str, ...] = ("accuracy",)
    patience: int = 3
    monitor: str = "val_accuracy"  # ModelCheckpoint's (and the objective's) metric
    verbose: int = 2
