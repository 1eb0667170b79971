"""Model builders: plain hyperparameters in, an uncompiled ``keras.Model`` out."""

from __future__ import annotations

from typing import Any

import keras

from experiments.settings import INPUT_SHAPE, feature_size, layer_value, setting


def build_mlp(params: dict[str, Any], num_classes: int = 10) -> keras.Model:
    """Flatten → (Dense → Dropout) × hidden_layers → Dense softmax."""
    act, dropout = setting(params, "activation", "mlp"), setting(params, "dropout", "mlp")
    layers: list[keras.layers.Layer] = [keras.Input(INPUT_SHAPE), keras.layers.Flatten()]
    for i in range(1, setting(params, "hidden_layers", "mlp") + 1):
        layers.append(keras.layers.Dense(layer_value(params, "units", i, "mlp"), activation=act))
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(num_classes, activation="softmax"))
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
    return layers


def build_cnn(params: dict[str, Any], num_classes: int = 10) -> keras.Model:
    """[augmentation] → conv_layers blocks of (Conv [→ BatchNorm] → activation) × convs_per_block → Pool
    [→ Dropout] → Flatten or global average → Dense → Dropout → Dense softmax. With one conv per block and no
    batch norm this is the blog's CNN."""
    get = lambda name: setting(params, name, "cnn")  # noqa: E731
    if feature_size(params) < 1:
        raise ValueError(f"conv_layers={get('conv_layers')} with kernel_size={get('kernel_size')} shrinks 28x28 below 1x1")
    pool = {"max": keras.layers.MaxPooling2D, "avg": keras.layers.AveragePooling2D}.get(get("pooling"))
    norm = get("batch_norm")
    layers: list[keras.layers.Layer] = [keras.Input(INPUT_SHAPE), *_augmentation(get)]
    for i in range(1, get("conv_layers") + 1):
        filters = layer_value(params, "filters", i, "cnn")
        for _ in range(get("convs_per_block")):
            # With batch norm the conv's bias is redundant and the activation follows the normalisation.
            layers.append(keras.layers.Conv2D(filters, get("kernel_size"), padding=get("padding"), use_bias=not norm,
                                              activation=None if norm else get("activation")))
            if norm:
                layers += [keras.layers.BatchNormalization(), keras.layers.Activation(get("activation"))]
        if pool is not None:
            layers.append(pool(2))
        if get("conv_dropout") > 0:
            layers.append(keras.layers.Dropout(get("conv_dropout")))
    layers.append(keras.layers.GlobalAveragePooling2D() if get("head") == "global_avg" else keras.layers.Flatten())
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
