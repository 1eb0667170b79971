"""The fused batch norm computes what Keras's BatchNormalization computes, the built-in CNN uses it, and a model
saved with it holds Keras's own layer."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments.layers import fused_batch_norm
from experiments.models import BN_MOMENTUM, build_model

SHAPE = (16, 6, 5, 3)  # 16 images of 6x5 pixels: n = 480 values a channel


def _pair(rng: np.random.Generator) -> tuple[keras.layers.BatchNormalization, keras.layers.BatchNormalization]:
    """Keras's layer and the fused one with the same (non-trivial) weights and moving statistics."""
    keras_bn, fused = keras.layers.BatchNormalization(momentum=BN_MOMENTUM), fused_batch_norm(BN_MOMENTUM)
    for layer in (keras_bn, fused):
        layer.build(SHAPE)
    weights = [rng.normal(1, 0.5, 3), rng.normal(0, 1, 3), rng.normal(0, 1, 3), rng.uniform(0.5, 2, 3)]
    for layer in (keras_bn, fused):  # gamma, beta, moving mean, moving variance
        layer.set_weights([w.astype("float32") for w in weights])
    return keras_bn, fused


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(1).normal([2.0, -1.0, 0.5], [3.0, 0.5, 1.0], SHAPE).astype("float32")


def test_a_training_step_gives_keras_outputs_gradients_and_moving_statistics(images: np.ndarray):
    keras_bn, fused = _pair(np.random.default_rng(0))
    weigh = tf.constant([1.0, -2.0, 3.0])  # a loss that weighs the channels differently: gradients differ by channel
    results = []
    for layer in (keras_bn, fused):
        x = tf.constant(images)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.square(y) * weigh + y)
        results.append((y, *tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])))
    for ours, theirs in zip(results[1], results[0], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean.numpy(), keras_bn.moving_mean.numpy(), rtol=1e-5)
    # The moving variance averages the unbiased batch variance: Keras's biased one times n/(n-1), n = 480.
    n = SHAPE[0] * SHAPE[1] * SHAPE[2]
    batch_variance = images.reshape(-1, 3).var(axis=0)
    start = _pair(np.random.default_rng(0))[0].moving_variance.numpy()
    expected = BN_MOMENTUM * start + (1 - BN_MOMENTUM) * batch_variance * n / (n - 1)
    np.testing.assert_allclose(fused.moving_variance.numpy(), expected, rtol=1e-5)
    assert not np.allclose(fused.moving_variance.numpy(), start)  # it moved


def test_inference_normalises_with_the_moving_statistics(images: np.ndarray):
    keras_bn, fused = _pair(np.random.default_rng(0))
    np.testing.assert_allclose(fused(images, training=False), keras_bn(images, training=False), rtol=1e-5, atol=1e-5)
    moving = [v.numpy().copy() for v in fused.non_trainable_variables]
    fused(images, training=False)
    assert all(np.array_equal(before, v.numpy()) for before, v in zip(moving, fused.non_trainable_variables, strict=True))


def test_a_frozen_layer_trains_as_inference():
    """``trainable = False`` (fine-tuning): training=True still normalises with the moving statistics, moving none."""
    keras_bn, fused = _pair(np.random.default_rng(0))
    images = np.random.default_rng(2).normal(size=SHAPE).astype("float32")
    keras_bn.trainable = fused.trainable = False
    np.testing.assert_allclose(fused(images, training=True), keras_bn(images, training=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fused.moving_mean.numpy(), keras_bn.moving_mean.numpy())


def test_inputs_it_cannot_fuse_take_keras_path():
    """A 2-D input (a dense layer's) is normalised by Keras's own code: same result, nothing fused."""
    keras_bn, fused = keras.layers.BatchNormalization(momentum=BN_MOMENTUM), fused_batch_norm(BN_MOMENTUM)
    rows = np.random.default_rng(3).normal(size=(8, 4)).astype("float32")
    np.testing.assert_allclose(fused(rows, training=True), keras_bn(rows, training=True), rtol=1e-5, atol=1e-5)


def test_the_cnn_trains_its_batch_norm_fused_and_a_saved_model_holds_keras_own_layer(tmp_path: Path, images: np.ndarray):
    params = {"conv_layers": 1, "filters_1": 4, "batch_norm": True, "padding": "same"}
    model = build_model("cnn", params, (6, 5, 3), 2)
    step = tf.function(lambda x: model(x, training=True)).get_concrete_function(tf.TensorSpec((None, 6, 5, 3)))
    assert "FusedBatchNormV3" in {op.type for op in step.graph.get_operations()}
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(images, np.arange(16) % 2, epochs=1, verbose=0)
    model.save(tmp_path / "cnn.keras")
    with zipfile.ZipFile(tmp_path / "cnn.keras") as saved:  # what a process without this package reads
        layers = json.loads(saved.read("config.json"))["config"]["layers"]
    assert [(layer["module"], layer["class_name"]) for layer in layers if "Normalization" in layer["class_name"]] == [
        ("keras.layers", "BatchNormalization")]
    loaded = keras.models.load_model(tmp_path / "cnn.keras", compile=False)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
