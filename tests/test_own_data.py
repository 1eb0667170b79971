"""A user's own data: ``dataset: {path: FILE.npz}`` with x_train, y_train, x_test, y_test (x_val, y_val optional),
integer or string labels; mistakes in the file are one line before anything is written; a quick sweep of
scikit-learn's digits (data no one here wrote) with a builder of the user's runs end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.data.loading import load_dataset
from experiments.data.raw import UserData
from experiments.errors import DataError
from sweeps.cli import main
from tests.conftest import BOTH_WAYS

SPACE = """\
dataset: {{path: {path}}}
model: digits_models:small
val_size: 0.2
train: {{epochs: 2, batch_size: 64}}
params:
  width: {{type: int, low: 8, high: 32}}
sweep: {{sampler: {{name: random}}, pruner: {{name: none}}}}
"""

BUILDER = """\
import keras


def small(params, input_shape, num_classes):
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(params["width"], 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
"""


def digits_npz(path: Path, labels: str = "int") -> Path:
    """scikit-learn's 8x8 digits as an .npz: 1,437 training and 360 test images."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x.reshape(-1, 8, 8, 1) / 16).astype(np.float32)
    if labels == "str":
        y = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def class_sorted_digits_npz(path: Path) -> Path:
    """scikit-learn's digits sorted by label (as an .npz built by walking folders class by class is): every fifth
    image a test image, the other 1,437 the training part, all of them in class order."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.argsort(y, kind="stable")
    x, y = (x[order].reshape(-1, 8, 8, 1) / 16).astype(np.float32), y[order]
    test = np.arange(len(y)) % 5 == 0
    np.savez(path, x_train=x[~test], y_train=y[~test], x_test=x[test], y_test=y[test])
    return path


def test_a_holdout_of_a_class_sorted_npz_is_stratified_and_the_same_rows_whatever_the_sweep_seed(tmp_path):
    source = UserData(class_sorted_digits_npz(tmp_path / "sorted.npz"))
    data = load_dataset(source, "holdout", 0.2, 0)
    every = np.bincount(np.concatenate([data.y_train, data.y_val]))
    assert len(data.y_val) == round(0.2 * 1437)
    assert np.abs(np.bincount(data.y_val, minlength=10) - 0.2 * every).max() <= 1  # each class in its share
    again = load_dataset(source, "holdout", 0.2, 1)
    assert np.array_equal(again.x_val, data.x_val) and np.array_equal(again.y_val, data.y_val)


def test_a_regression_holdout_is_a_shuffle_not_the_largest_targets(tmp_path):
    y = np.arange(100, dtype=np.float32)  # sorted: the last rows would be the largest targets
    np.savez(tmp_path / "r.npz", x_train=y[:, None], y_train=y, x_test=y[:10, None], y_test=y[:10])
    data = load_dataset(UserData(tmp_path / "r.npz", regression=True), "holdout", 0.2, 0)
    assert len(data.y_val) == 20 and data.y_val.min() < 50
    assert np.array_equal(data.x_val[:, 0], data.y_val)  # rows stay whole


def test_a_class_too_rare_to_stratify_falls_back_to_a_plain_shuffle(tmp_path):
    y = np.array([0, 1] * 20 + [2])  # class 2: one row, no stratified split can put it on both sides
    np.savez(tmp_path / "rare.npz", x_train=np.arange(41.0)[:, None], y_train=y, x_test=np.zeros((2, 1)),
             y_test=np.array([0, 1]))
    data = load_dataset(UserData(tmp_path / "rare.npz"), "holdout", 0.2, 0)
    assert len(data.y_val) == 8 and sorted(np.concatenate([data.x_train, data.x_val])[:, 0]) == list(range(41))


def test_a_validation_part_without_a_class_of_the_training_part_is_one_warning_line(tmp_path, capsys):
    names = np.array(["bird", "cat", "dog"])
    np.savez(tmp_path / "pets.npz", x_train=np.zeros((6, 2)), y_train=names[[0, 1, 2, 0, 1, 2]],
             x_val=np.zeros((2, 2)), y_val=names[[1, 2]], x_test=np.zeros((3, 2)), y_test=names[[0, 1, 2]])
    load_dataset(UserData(tmp_path / "pets.npz"))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: ")
    assert "pets.npz" in err and "'bird'" in err and "'cat'" not in err


def test_labels_become_class_indices_with_their_names_and_val_size_may_be_a_fraction(tmp_path):
    data = load_dataset(UserData(digits_npz(tmp_path / "digits.npz", labels="str")), "stratified", 0.25, 0)
    assert data.class_names == ("eight", "five", "four", "nine", "one", "seven", "six", "three", "two", "zero")
    assert data.input_shape == (8, 8, 1) and data.num_classes == 10 and data.input_scale is None
    assert len(data.y_val) == round(0.25 * 1437) and len(data.y_train) + len(data.y_val) == 1437
    assert set(np.unique(data.y_test)) == set(range(10)) and data.md5 and data.name == "digits.npz"


@pytest.mark.parametrize("arrays, said", [
    ({"x_train": np.zeros((4, 2))}, "missing y_train, x_test, y_test"),
    ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(4), "x_test": np.zeros((2, 2)), "y_test": np.zeros(2)},
     "y_train has one class only"),
    ({"x_train": np.zeros((4, 2)), "y_train": np.array([0, 1, 0, 1]), "x_test": np.zeros((2, 2)),
      "y_test": np.array([1, 2])}, "y_test has labels not in y_train: 2"),
    ({"x_train": np.full((4, 2), np.nan), "y_train": np.array([0, 1, 0, 1]), "x_test": np.zeros((2, 2)),
      "y_test": np.array([1, 0])}, "x_train has NaN or infinite values"),
    ({"x_train": np.zeros((4, 2)), "y_train": np.array([0, 1, 0]), "x_test": np.zeros((2, 2)),
      "y_test": np.array([1, 0])}, "y_train must be one label per row of x_train"),
])
def test_a_bad_npz_is_one_clear_error(tmp_path, arrays, said):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=said):
        load_dataset(UserData(tmp_path / "bad.npz"))


def test_a_missing_or_unreadable_data_file_is_one_line_before_anything_is_written(project: Path, capsys):
    (project / "digits_models.py").write_text(BUILDER)
    (project / "search_spaces" / "digits.yaml").write_text(SPACE.format(path="nowhere.npz"))
    assert main(["run", "digits", "--quick"]) == 2
    assert capsys.readouterr().err.strip() == "error: nowhere.npz: file not found"
    (project / "broken.npz").write_text("not a zip")
    (project / "search_spaces" / "digits.yaml").write_text(SPACE.format(path="broken.npz"))
    assert main(["check", "digits"]) == 2
    assert "broken.npz: not a readable .npz of arrays" in capsys.readouterr().err
    assert not (project / "optuna.journal").exists() and not (project / "mlflow.db").exists()


@pytest.mark.slow
@BOTH_WAYS
def test_a_quick_sweep_of_digits_with_the_users_builder_end_to_end(project: Path, capfd):
    digits_npz(project / "digits.npz")
    (project / "digits_models.py").write_text(BUILDER)
    (project / "search_spaces" / "digits.yaml").write_text(SPACE.format(path="digits.npz"))
    assert main(["check", "digits"]) == 0
    assert main(["run", "digits", "--quick"]) == 0
    assert main(["status", "digits", "--quick"]) == 0
    out = capfd.readouterr().out
    assert "data digits.npz from digits.npz: train 1150, validation 287" in out and "consistent" in out
    page = (project / "reports" / "digits-quick.html").read_text()
    assert "Confusion matrix" in page and "Robustness: rotated" not in page  # 8x8 digits are not moved
    assert main(["predict", "digits", "--quick", "--from-test", "3"]) == 0


CNN_SPACE = """\
dataset: {path: images-SIDE.npz}
model: cnn
params:
  conv_layers: {type: int, low: 1, high: LAYERS}
"""


@pytest.mark.parametrize(("side", "layers", "verdict"), [(8, 3, "shrinks the 8x8 input below 1x1"),
                                                         (64, 4, "builds")])
def test_the_cnn_size_check_uses_the_datas_own_image_side(project: Path, capsys, side: int, layers: int, verdict: str):
    rng = np.random.default_rng(0)  # 28x28 would refuse 4 layers and accept 3: neither is these images' answer
    images = rng.integers(0, 256, (40, side, side), dtype=np.uint8)
    np.savez(project / f"images-{side}.npz", x_train=images[:30], y_train=np.arange(30) % 3, x_test=images[30:],
             y_test=np.arange(10) % 3)
    (project / "search_spaces" / "imgs.yaml").write_text(CNN_SPACE.replace("LAYERS", str(layers)).replace("SIDE", str(side)))
    code = main(["check", "imgs"])
    out, err = capsys.readouterr()
    assert (code, verdict in (out if code == 0 else err)) == (0 if verdict == "builds" else 2, True), out + err


def test_an_edited_file_or_another_folders_file_of_the_same_name_is_read_afresh(tmp_path: Path, monkeypatch):
    from experiments.data.loading import raw_data
    from experiments.data.raw import file_version

    def save(folder: Path, rows: int) -> UserData:
        folder.mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        x = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
        np.savez("d.npz", x_train=x, y_train=np.arange(rows) % 2, x_test=x[:4], y_test=np.arange(4) % 2)
        return UserData(Path("d.npz"), version=file_version(Path("d.npz")))  # as a space names it: relative

    assert len(raw_data(save(tmp_path / "a", 10)).arrays["y_train"]) == 10
    assert len(raw_data(save(tmp_path / "b", 12)).arrays["y_train"]) == 12  # another project's d.npz
    assert len(raw_data(save(tmp_path / "b", 14)).arrays["y_train"]) == 14  # the same file, edited


@pytest.mark.slow
def test_the_python_api_finds_data_of_yours_in_the_project_folder_from_anywhere(project: Path, monkeypatch):
    import sweeps

    digits_npz(project / "mine.npz")
    (project / "search_spaces" / "mine.yaml").write_text(
        "dataset: {path: mine.npz}\nmodel: mlp\ntrain: {epochs: 1}\nparams:\n  units: {type: int, low: 8, high: 16}\n")
    elsewhere = project / "notebooks"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a notebook beside the project, as a user runs it
    best = sweeps.run("mine", trials=1, quick=True, root=project)
    assert best is not None and best.test_accuracy is not None and Path.cwd() == elsewhere
    assert sweeps.report(root=project).is_file()
