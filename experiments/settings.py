"""Plain settings of a model and its training, without TensorFlow (cheap to import for validation).

Each model family is declared once, in :data:`FAMILIES`: every hyperparameter with its default and what
values it accepts. The space-file schema, the defaults and the per-layer rules are all read from it, so a
new knob is one line here plus its use in the family's builder (``experiments.models``).

Per-layer values are looked up as ``<name>_<i>`` (1-based) and fall back to ``<name>``, so a space
may share one width across layers (``units``) or sample one per layer (``units_1``, ``units_2``…).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

OPTIMIZER_NAMES = ("adam", "adamw", "nadam", "rmsprop", "sgd")
LR_SCHEDULES = ("constant", "cosine", "plateau")
POOLINGS = ("max", "avg", "none")
PADDINGS = ("valid", "same")
HEADS = ("flatten", "global_avg")
ACTIVATIONS = ("relu", "elu", "gelu", "selu", "tanh", "sigmoid", "swish")


@dataclass(frozen=True)
class Knob:
    """One model hyperparameter: its default, its value type and the bounds a space file may give it
    (pydantic ``Field`` keywords). ``depth`` names the knob that counts the layers of a per-layer knob."""

    default: Any
    type: Any
    bounds: dict[str, Any] = field(default_factory=dict)
    depth: str | None = None


_DROPOUT = Knob(0.0, float, {"ge": 0, "lt": 1})
_ACTIVATION = Knob("relu", Literal[ACTIVATIONS])

# family -> hyperparameter -> Knob.
FAMILIES: dict[str, dict[str, Knob]] = {
    "mlp": {
        "hidden_layers": Knob(1, int, {"ge": 1, "le": 8}),
        "units": Knob(128, int, {"ge": 1, "le": 8192}, depth="hidden_layers"),
        "dropout": _DROPOUT,
        "activation": _ACTIVATION,
    },
    "cnn": {
        "conv_layers": Knob(2, int, {"ge": 1, "le": 8}),  # blocks: convs_per_block convolutions, then a pool
        "filters": Knob(32, int, {"ge": 1, "le": 1024}, depth="conv_layers"),
        "convs_per_block": Knob(1, int, {"ge": 1, "le": 4}),
        "kernel_size": Knob(3, int, {"ge": 1, "le": 28}),
        "pooling": Knob("max", Literal[POOLINGS]),
        "padding": Knob("valid", Literal[PADDINGS]),
        "batch_norm": Knob(False, bool),
        "conv_dropout": _DROPOUT,  # after each block's pool
        "head": Knob("flatten", Literal[HEADS]),
        "dense_units": Knob(128, int, {"ge": 0, "le": 8192}),
        "dropout": _DROPOUT,  # before the output layer
        "activation": _ACTIVATION,
        # Data augmentation: Keras preprocessing layers, active only while training.
        "augment_translate": Knob(0.0, float, {"ge": 0, "le": 0.5}),  # fraction of the image side
        "augment_rotate": Knob(0.0, float, {"ge": 0, "le": 180}),  # degrees
        "augment_zoom": Knob(0.0, float, {"ge": 0, "lt": 1}),
        "augment_flip": Knob(False, bool),  # horizontal
        "augment_erase": Knob(0.0, float, {"ge": 0, "le": 1}),  # probability an image gets a patch erased
        "test_time_flip": Knob(False, bool),  # score an image as the mean of its and its mirror's outputs
    },
}
DEFAULTS = {family: {name: knob.default for name, knob in knobs.items()} for family, knobs in FAMILIES.items()}
PER_LAYER = {family: {name: knob.depth for name, knob in knobs.items() if knob.depth}
             for family, knobs in FAMILIES.items()}


def layer_name(name: str, index: int) -> str:
    """The name of per-layer hyperparameter ``name`` for layer ``index`` (1-based): ``units_2``."""
    return f"{name}_{index}"


def is_built_in(model: str) -> bool:
    """Whether ``model`` names a built-in family (its knobs declared here), not a builder of the user's."""
    return model in FAMILIES


def base_name(name: str, family: str) -> str:
    """``units_2`` → ``units`` for a per-layer hyperparameter of a built-in ``family``; any other name as it is."""
    base, _, index = name.rpartition("_")
    return base if index.isdigit() and base in PER_LAYER.get(family, {}) else name


def layer_value(params: dict[str, Any], name: str, index: int, family: str) -> Any:
    """The value of per-layer hyperparameter ``name`` for layer ``index`` (1-based)."""
    return params.get(layer_name(name, index), params.get(name, DEFAULTS[family][name]))


def setting(params: dict[str, Any], name: str, family: str) -> Any:
    """``params[name]``, or the family's default."""
    return params.get(name, DEFAULTS[family][name])


def feature_size(params: dict[str, Any], side: int = 28) -> int:
    """Side length of the CNN's last feature map for a ``side`` x ``side`` input (< 1 means the net is invalid)."""
    size = side
    kernel = setting(params, "kernel_size", "cnn")
    for _ in range(setting(params, "conv_layers", "cnn")):
        if setting(params, "padding", "cnn") == "valid":
            size -= (kernel - 1) * setting(params, "convs_per_block", "cnn")
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
    lr_schedule: str = "constant"  # cosine: decay to 0 over `epochs`; plateau: halve when val_loss stalls
    weight_decay: float = 0.0  # decoupled, as Keras applies it for every optimizer
    loss: str = "sparse_categorical_crossentropy"
    metrics: tuple[str, ...] = ("accuracy",)
    patience: int = 3
    monitor: str = "val_accuracy"  # ModelCheckpoint's (and the objective's) metric
    robust: bool = False  # also score each epoch on the moved validation copy (val_robust_accuracy)
    verbose: int = 2
