"""Your model builders: a space names one as ``model: models:FUNCTION``.

A builder takes the trial's params (the names your space declares), the shape of one input and the number of
classes (None for a regression), and returns an *uncompiled* Keras model; the sweep compiles it with the space's
``train:`` settings.
"""

import keras


def small_cnn(params, input_shape, num_classes):
    """Images: two convolution blocks, global average pooling, dropout, softmax."""
    width = params["width"]
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(params["dropout"]),
        keras.layers.Dense(num_classes, activation="softmax"),
    ], name="small_cnn")


def small_mlp(params, input_shape, num_classes):
    """Rows of numbers (a table, flattened arrays): two dense layers, dropout, then softmax over the classes, or
    one number for a regression."""
    width = params["width"]
    output = keras.layers.Dense(1) if num_classes is None else keras.layers.Dense(num_classes, activation="softmax")
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Flatten(),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dropout(params["dropout"]),
        keras.layers.Dense(width // 2, activation="relu"),
        output,
    ], name="small_mlp")
