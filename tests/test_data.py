"""Data: files found offline in the documented order, verified, split honestly; bad files get one clear error."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from experiments.data import builtin as data_module
from experiments.data.builtin import FILES, load_raw
from experiments.data.idx import to_idx
from experiments.data.loading import load_dataset, model_inputs
from experiments.errors import DataError


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch, tmp_path):
    """Each test resolves the files anew, with an empty Keras cache and no Debian package."""
    load_raw.cache_clear()
    load_dataset.cache_clear()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(data_module, "DEBIAN_DIR", tmp_path / "no-debian")
    yield
    load_raw.cache_clear()
    load_dataset.cache_clear()


def write_idx(folder: Path, part: str, array: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILES[part][0]
    path.write_bytes(gzip.compress(to_idx(array)))
    return path


def tiny_dataset(folder: Path, n_train: int = 60000, n_test: int = 10000) -> None:
    """Four well-formed IDX files (right magic and shape) whose content is not the real dataset."""
    rng = np.random.default_rng(0)
    write_idx(folder, "x_train", np.zeros((n_train, 28, 28), np.uint8))
    write_idx(folder, "y_train", rng.integers(0, 10, n_train, dtype=np.uint8))
    write_idx(folder, "x_test", np.zeros((n_test, 28, 28), np.uint8))
    write_idx(folder, "y_test", rng.integers(0, 10, n_test, dtype=np.uint8))


def test_real_fashion_mnist_loads_and_verifies(data_dir):
    raw = load_raw("fashion_mnist", download=False)
    assert raw.arrays["x_train"].shape == (60000, 28, 28)
    assert raw.arrays["y_test"].shape == (10000,)
    assert raw.arrays["y_train"][0] == 9 and raw.arrays["y_test"][0] == 9  # Ankle boot, as its README says
    assert np.bincount(raw.arrays["y_train"]).tolist() == [6000] * 10
    assert raw.source.endswith("fashion-mnist")


def test_mnist_is_accepted_on_its_decompressed_content(data_dir):
    raw = load_raw("mnist", download=False)
    assert np.bincount(raw.arrays["y_test"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_a_regzipped_copy_is_accepted_and_the_keras_cache_is_searched(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("SWEEPS_DATA_DIR")
    cache = tmp_path / "keras-home" / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    for fname, _, _ in FILES.values():
        (cache / fname).write_bytes(gzip.compress(gzip.decompress((data_dir / "fashion-mnist" / fname).read_bytes()), compresslevel=1, mtime=0))
    raw = load_raw("fashion_mnist", download=False)
    assert "keras-home" in raw.source


def test_nothing_found_names_every_place_tried_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPS_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError) as info:
        load_raw("fashion_mnist", download=False)
    message = str(info.value)
    assert "dataset fashion_mnist not found" in message
    assert "the Keras cache" in message and "Debian" in message
    assert "set SWEEPS_DATA_DIR" in message and "train-images-idx3-ubyte.gz" in message


def test_a_missing_file_is_named(tmp_path, monkeypatch):
    tiny_dataset(tmp_path / "fashion-mnist")
    (tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("SWEEPS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\.gz"):
        load_raw("fashion_mnist", download=False)


def test_right_shape_wrong_content_is_an_md5_mismatch(tmp_path, monkeypatch):
    tiny_dataset(tmp_path / "mnist")
    monkeypatch.setenv("SWEEPS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: md5 mismatch, this is not the original mnist x_train"):
        load_raw("mnist", download=False)


@pytest.mark.parametrize("damage, expected", [
    (lambda p: p.write_bytes(p.read_bytes()[:-20]), "not a readable gzip file"),
    (lambda p: p.write_bytes(b"not gzip at all"), "not a readable gzip file"),
    (lambda p: p.write_bytes(gzip.compress(to_idx(np.zeros(60000, np.uint8)))), "wrong magic number 0x00000801, expected 0x00000803"),
    (lambda p: p.write_bytes(gzip.compress(to_idx(np.zeros((100, 28, 28), np.uint8)))), "holds 100 examples, expected 60000"),
    (lambda p: p.write_bytes(gzip.compress(to_idx(np.zeros((60000, 28, 28), np.uint8))[:-5])), "data bytes, expected 47040000"),
    (lambda p: p.write_bytes(gzip.compress(b"\x00\x00")), "truncated IDX header"),
])
def test_damaged_files_are_rejected(tmp_path, monkeypatch, damage, expected):
    tiny_dataset(tmp_path / "fashion-mnist")
    damage(tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz")
    monkeypatch.setenv("SWEEPS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=expected):
        load_raw("fashion_mnist", download=False)


def test_holdout_validation_is_the_last_10000_training_images(data_dir):
    raw = load_raw("fashion_mnist", download=False)
    ds = load_dataset("fashion_mnist", "holdout")
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (50000, 10000, 10000)
    assert np.array_equal(ds.y_val, raw.arrays["y_train"][-10000:])
    assert ds.x_train.dtype == np.float32 and ds.x_train.shape[1:] == (28, 28, 1)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


def test_the_built_in_holdout_stays_the_tail_of_the_training_file_whatever_the_seed(data_dir):
    x = model_inputs(load_raw("fashion_mnist", download=False).arrays["x_train"])
    for seed in (0, 1):
        ds = load_dataset("fashion_mnist", "holdout", seed=seed)
        assert np.array_equal(ds.x_val, x[-10000:]) and np.array_equal(ds.x_train, x[:-10000])


def test_stratified_validation_is_balanced_and_seeded(data_dir):
    a = load_dataset("fashion_mnist", "stratified", val_size=6000, seed=1)
    b = load_dataset("fashion_mnist", "stratified", val_size=6000, seed=1, subset=None)
    assert np.bincount(a.y_val).tolist() == [600] * 10
    assert np.array_equal(a.y_val, b.y_val)


def test_test_validation_scores_on_the_selection_set_as_the_blog_did(data_dir):
    ds = load_dataset("fashion_mnist", "test", subset=3000)
    assert np.array_equal(ds.y_val, ds.y_test) and len(ds.y_train) == 3000


def test_a_subset_keeps_every_class_in_proportion(data_dir):
    ds = load_dataset("fashion_mnist", "holdout", subset=1000)
    counts = np.bincount(ds.y_train, minlength=10)
    full = np.bincount(load_dataset("fashion_mnist", "holdout").y_train, minlength=10)
    assert np.abs(counts - full / full.sum() * 1000).max() <= 1  # stratified: each class within one image


def test_subset_keeps_the_same_share_of_each_split(data_dir):
    ds = load_dataset("fashion_mnist", "holdout", subset=5000)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (5000, 1000, 1000)
    assert set(np.unique(ds.y_train)) == set(range(10))
