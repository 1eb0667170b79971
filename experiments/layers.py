"""Keras's own layers, run faster on the TensorFlow backend: a model saved with them holds the plain layers and loads
without this package."""

from __future__ import annotations

import types
from typing import Any

import keras


def fused_batch_norm(momentum: float) -> keras.layers.BatchNormalization:
    """Keras's BatchNormalization that trains and infers over the channels of NHWC images as TensorFlow's one fused
    kernel (``FusedBatchNormV3`` and its gradient, oneDNN's on a CPU), where Keras 3 runs a dozen separate ops: the
    moments, the normalisation, the moving averages, and as many again for the gradient. The same weights and
    arithmetic but one difference: the moving variance averages the batch's unbiased variance (n/(n-1) times the
    one Keras averages, n = batch × height × width values a channel), as Keras 2 did.

    Only this layer object runs fused: it stays a ``keras.layers.BatchNormalization``, so a checkpoint or a
    registered model holds Keras's own layer and loads without this package (unfused there). Anything else
    (another backend, a mask, another rank) runs Keras's code."""
    layer = keras.layers.BatchNormalization(momentum=momentum)
    layer.call = types.MethodType(_fused_call, layer)
    return layer


def _fused_call(self: keras.layers.BatchNormalization, inputs: Any, training: bool | None = None,
                mask: Any = None) -> Any:
    if keras.backend.backend() != "tensorflow" or len(inputs.shape) != 4 or self.axis not in (-1, 3) or mask is not None:
        return keras.layers.BatchNormalization.call(self, inputs, training=training, mask=mask)
    import tensorflow as tf  # the backend is TensorFlow (checked above)

    x = tf.cast(inputs, "float32")  # as Keras's: half-precision inputs overflow the moments
    if training and self.trainable:
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance, epsilon=self.epsilon,
            is_training=True, exponential_avg_factor=1.0 - self.momentum)  # returns the moved averages
        self.moving_mean.assign(mean)
        self.moving_variance.assign(variance)
    else:
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance, epsilon=self.epsilon,
            is_training=False)
    return tf.cast(outputs, self.compute_dtype)
