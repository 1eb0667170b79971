"""Model builders: the blog's networks have the parameter counts Keras reports for them."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from experiments.data.loading import TargetScale
from experiments.models import build_for_data, build_model
from experiments.settings import feature_size
from sweeps.space.space import load_space

from .conftest import SPACES


def test_blog_mlp_784_512_10_has_407050_params():
    model = build_model("mlp", {"hidden_layers": 1, "units": 512}, (28, 28, 1), 10)
    assert model.count_params() == 407_050
    assert model.output_shape == (None, 10)


def test_blog_first_mlp_flatten_dense128():
    assert build_model("mlp", {}, (28, 28, 1), 10).count_params() == 784 * 128 + 128 + 128 * 10 + 10


def test_blog_final_cnn_from_its_space_has_225034_params():
    model_params, _ = load_space("fashion_blog", SPACES).resolve({"dropout": 0.3})
    model = build_model("cnn", model_params, (28, 28, 1), 10)
    # Conv32 3x3 (320) → pool → Conv64 3x3 (18,496) → pool → 5x5x64 → Dense128 (204,928) → Dense10 (1,290)
    assert model.count_params() == 225_034
    assert [layer.__class__.__name__ for layer in model.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout", "Dense"]


def test_per_layer_widths_are_used_layer_by_layer():
    model = build_model("mlp", {"hidden_layers": 3, "units_1": 256, "units_2": 64, "units_3": 32}, (28, 28, 1), 10)
    assert [layer.units for layer in model.layers if hasattr(layer, "units")] == [256, 64, 32, 10]


def test_a_net_that_shrinks_below_1x1_is_refused():
    params = {"conv_layers": 3, "kernel_size": 5, "padding": "valid"}
    assert feature_size(params) < 1
    with pytest.raises(ValueError, match="shrinks 28x28 below 1x1"):
        build_model("cnn", params, (28, 28, 1), 10)
    assert feature_size({**params, "padding": "same"}) == 3


def test_cnn_blocks_batch_norm_dropout_and_head():
    model = build_model("cnn", {"conv_layers": 2, "convs_per_block": 2, "filters_1": 32, "filters_2": 64, "padding": "same",
                                "batch_norm": True, "conv_dropout": 0.25, "head": "global_avg", "dense_units": 0},
                        (28, 28, 1), 10)
    names = [layer.__class__.__name__ for layer in model.layers]
    assert names == ["Conv2D", "BatchNormalization", "Activation", "Conv2D", "BatchNormalization", "Activation",
                     "MaxPooling2D", "Dropout"] * 2 + ["GlobalAveragePooling2D", "Dense"]
    assert not any(layer.use_bias for layer in model.layers if hasattr(layer, "use_bias") and layer.name.startswith("conv"))
    assert model.output_shape == (None, 10)


def test_augmentation_changes_images_only_while_training():
    import numpy as np

    model = build_model("cnn", {"augment_translate": 0.2, "augment_rotate": 20, "augment_flip": True, "augment_zoom": 0.1,
                                "augment_erase": 0.5}, (28, 28, 1), 10)
    assert [layer.__class__.__name__ for layer in model.layers[:5]] == [
        "RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom", "RandomErasing"]
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    augment = model.layers[1]
    assert np.allclose(augment(x, training=False), x)
    assert not np.allclose(augment(x, training=True), x)
    assert np.allclose(model(x, training=False), model(x, training=False))


@pytest.mark.parametrize("probability", [0.25, 1.0])
def test_augment_erase_erases_a_patch_of_that_share_of_training_images(probability):
    import numpy as np

    erase = build_model("cnn", {"augment_erase": probability}, (28, 28, 1), 10).layers[0]
    x = np.full((2000, 28, 28, 1), 0.5, dtype="float32")
    changed = (np.asarray(erase(x, training=True)) != 0.5).mean(axis=(1, 2, 3))
    assert abs((changed > 0).mean() - probability) < 0.05  # Keras' own default would erase about half as often
    assert 0 < changed[changed > 0].mean() < 0.5  # a patch, not the whole image
    assert np.array_equal(erase(x, training=False), x)


def test_test_time_flip_scores_the_mean_of_image_and_mirror_and_trains_on_the_image_alone(tmp_path):
    import keras
    import numpy as np

    model = build_model("cnn", {"test_time_flip": True, "dropout": 0.0}, (28, 28, 1), 10)
    network = model.get_layer("mirror_averaged").network
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    mirrored = x[:, :, ::-1, :]
    expected = (np.asarray(network(x)) + np.asarray(network(mirrored))) / 2
    assert np.allclose(model(x, training=False), expected, atol=1e-6)
    assert np.allclose(model.predict(mirrored, verbose=0), expected, atol=1e-6)  # a mirror scores as its original
    assert np.allclose(model(x, training=True), network(x, training=True), atol=1e-6)
    assert not np.allclose(model(x, training=True), expected, atol=1e-4)

    model.compile("adam", "sparse_categorical_crossentropy")
    before = [w.copy() for w in network.get_weights()]
    model.fit(x, np.arange(4), epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, network.get_weights(), strict=True))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def tiny_regressor(params, input_shape, num_classes):
    """A builder of the user's (``tests.test_models:tiny_regressor``): one linear unit."""
    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(1)], name="tiny")


@pytest.mark.parametrize("model", ["mlp", "tests.test_models:tiny_regressor"])
def test_a_regression_network_of_any_builder_outputs_in_the_targets_units(model):
    built = build_for_data(model, {}, (4,), None, target=TargetScale(mean=1000.0, std=50.0))
    network = built.layers[1]
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    assert np.allclose(built(x), np.asarray(network(x)) * 50 + 1000, atol=1e-3)
    assert abs(float(np.mean(built(x))) - 1000) < 50  # untrained, it starts near the mean, not near 0


def test_a_classifier_is_built_as_its_builder_made_it():
    built = build_for_data("mlp", {}, (28, 28, 1), 10)
    assert isinstance(built, keras.Sequential) and built.count_params() == 784 * 128 + 128 + 128 * 10 + 10
    assert "target_units" not in [layer.name for layer in built.layers]
