"""A user's folder of images: one sub-folder per class (in ``train/`` and ``test/``, or split once), one size or
``image_size``, colour or grey as the files are. End to end: a generated folder of 3 classes at 32x32 RGB with
the built-in cnn, through both engines."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments.data.loading import builder_inputs, load_dataset, raw_data
from experiments.data.raw import UserData
from experiments.errors import DataError
from sweeps.cli import main
from tests.conftest import BOTH_WAYS

COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}

SPACE = """\
dataset: {path: shapes}
model: cnn
fixed: {conv_layers: 2, dense_units: 16}
train: {epochs: 2, batch_size: 16}
params:
  dropout: {type: float, low: 0.0, high: 0.5}
  filters: {type: categorical, choices: [8, 16]}
target: {test_accuracy: {min: 0.6}}
sweep: {n_trials: 2, sampler: {name: random}, pruner: {name: none}}
"""


def shapes_folder(root: Path, per_class: int = 30, size: int = 32, split: bool = False, mode: str = "RGB") -> Path:
    """Noisy squares of three colours, ``size`` pixels a side, one sub-folder per colour (in train/ and test/ when
    ``split``)."""
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        for i in range(per_class):
            part = ("test" if i % 5 == 0 else "train") if split else ""
            pixels = np.clip(rng.normal(30, 20, (size, size, 3)), 0, 255)
            top, left = rng.integers(0, size // 2, 2)
            pixels[top:top + size // 2, left:left + size // 2] = colour
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels.astype(np.uint8)).convert(mode).save(folder / f"{i}.png")
    return root


def test_an_image_folder_is_decoded_once_into_the_cache_split_once_and_fingerprinted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the project folder: the image cache lives in its .sweeps/
    source = UserData(shapes_folder(tmp_path / "shapes"))
    data = load_dataset(source, "holdout", 0.25, 0)
    assert data.class_names == ("blue", "green", "red") and data.input_shape == (32, 32, 3)
    assert len(data.y_test) == 18 and np.bincount(data.y_test).tolist() == [6, 6, 6]  # 0.2 held out, stratified
    assert len(set(data.y_val.tolist())) == 3  # the training part was shuffled once: a holdout is not one class
    # Stored images stay on disk as uint8, memory-mapped; the model's inputs are scaled batch by batch.
    assert data.streamed and isinstance(data.x_train, np.memmap) and data.x_train.dtype == np.uint8
    assert data.input_scale == 1 / 255 and builder_inputs(source) == ((32, 32, 3), 3)
    cached = list((tmp_path / ".sweeps" / "cache" / "images").glob("*.npy"))
    assert len(cached) == 1 and cached[0].stat().st_size > 90 * 32 * 32 * 3
    assert len(list((tmp_path / ".sweeps" / "cache" / "images").glob("*.digest"))) == 1  # the content digest, kept
    before = data.md5
    (tmp_path / "shapes" / "red" / "0.png").write_bytes((tmp_path / "shapes" / "red" / "1.png").read_bytes())
    load_dataset.cache_clear()
    raw_data.cache_clear()
    assert load_dataset(source, "holdout", 0.25, 0).md5 != before  # the digest is of the content
    assert len(list((tmp_path / ".sweeps" / "cache" / "images").glob("*.npy"))) == 2


def test_streamed_batches_are_scaled_seeded_reshuffled_and_cover_every_image_once(tmp_path, monkeypatch):
    from experiments.data.batches import ImageBatches

    monkeypatch.chdir(tmp_path)
    data = load_dataset(UserData(shapes_folder(tmp_path / "shapes")), "holdout", 0.25, 0)
    batches = ImageBatches([(data.x_train, data.y_train), (data.x_val, data.y_val)], 16, seed=3)
    first = [batches[i] for i in range(len(batches))]
    assert sum(len(y) for _, y in first) == len(data.y_train) + len(data.y_val) and len(batches) == 5  # 72 in 16s
    x, _ = first[0]
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 and x.shape[1:] == (32, 32, 3)
    total = sorted(np.concatenate([y for _, y in first]).tolist())
    assert total == sorted(np.concatenate([data.y_train, data.y_val]).tolist())
    batches.on_epoch_end()
    assert not np.array_equal(batches[0][1], first[0][1]) or not np.array_equal(batches[1][1], first[1][1])
    again = ImageBatches([(data.x_train, data.y_train), (data.x_val, data.y_val)], 16, seed=3)
    assert np.array_equal(again[0][0], first[0][0])  # the same seed, the same order


def test_train_and_test_sub_folders_grey_images_and_a_given_size(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = shapes_folder(tmp_path / "grey", size=20, split=True, mode="L")
    data = load_dataset(UserData(root, image_size=(16, 24)), "holdout", 0.2)
    assert data.input_shape == (16, 24, 1) and len(data.y_test) == 18 and len(data.y_train) + len(data.y_val) == 72


def test_image_folder_mistakes_are_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = shapes_folder(tmp_path / "mixed", per_class=5)
    Image.new("RGB", (40, 30)).save(root / "red" / "big.png")
    with pytest.raises(DataError, match=r"images of mixed sizes \(.*30x40 big.png.*\); set dataset.image_size"):
        load_dataset(UserData(root))
    root = shapes_folder(tmp_path / "unseen", per_class=5, split=True)
    (root / "test" / "purple").mkdir()
    Image.new("RGB", (32, 32)).save(root / "test" / "purple" / "0.png")
    with pytest.raises(DataError, match="class 'purple' is not among the training classes"):
        load_dataset(UserData(root))
    (tmp_path / "one" / "cats").mkdir(parents=True)
    with pytest.raises(DataError, match="needs one sub-folder per class, two or more"):
        load_dataset(UserData(tmp_path / "one"))


@pytest.mark.slow
@BOTH_WAYS
def test_a_png_folder_with_the_built_in_cnn_end_to_end_on_both_engines(project: Path, capfd):
    shapes_folder(project / "shapes")
    (project / "search_spaces" / "shapes.yaml").write_text(SPACE)
    assert main(["run", "shapes", "--quick"]) == 0
    assert main(["status", "shapes", "--quick"]) == 0
    out = capfd.readouterr().out
    assert "data shapes from shapes: train 58, validation 14" in out and "consistent" in out
    page = (project / "reports" / "shapes-quick.html").read_text()
    assert "Confusion matrix" in page and "misclassified test images" in page and "Robustness: rotated" not in page
    assert main(["predict", "shapes", "--quick", "--image", "shapes/red/3.png"]) == 0
    ranked = re.findall(r"^\s+(\d)\. (\S+)\s+([\d.]+)%$", capfd.readouterr().out, flags=re.MULTILINE)
    assert [int(rank) for rank, _, _ in ranked] == [1, 2, 3] and {cls for _, cls, _ in ranked} == set(COLOURS)
    shares = [float(share) for _, _, share in ranked]  # every class once, most likely first, adding up to 100 %
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(100, abs=0.2)
    assert main(["run", "shapes", "--quick", "--engine", "kerastuner"]) == 0
    assert main(["status", "shapes", "--quick", "--engine", "kerastuner"]) == 0
    assert "consistent" in capfd.readouterr().out
