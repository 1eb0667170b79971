"""What ``sweep init`` writes into a new project folder: a space file for a kind of data, the model builders, a
README, a .gitignore for the stores and, for data other than the built-in images, the data itself (made from a
dataset scikit-learn ships, so nothing downloads). Every ``sweep`` command then works there, with its stores,
caches and reports in it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sweeps.errors import UsageError

KINDS = ("images", "table", "regression", "arrays")
# Where each file of the starter goes in the project (the space file: the one of the kind asked for).
FILES = {"models.py": "models.py", "README.md": "README.md", "gitignore": ".gitignore"}
SPACE = "search_spaces/example.yaml"
DATA = {"images": None, "table": "data.csv", "regression": "data.csv", "arrays": "arrays.npz"}


def write_project(folder: Path, kind: str = "images") -> list[Path]:
    """Write the starter for ``kind`` of data into ``folder`` (made if missing); refused, with nothing written,
    when any of its files exists there already. The paths written."""
    targets = {f"spaces/{kind}.yaml": folder / SPACE} | {name: folder / place for name, place in FILES.items()}
    data = DATA[kind]
    if data is not None:
        targets[data] = folder / data
    present = [str(path.relative_to(folder)) for path in targets.values() if path.exists()]
    if present:
        raise UsageError(f"sweep init: {folder} already has {', '.join(present)}; nothing written (init a new folder, "
                         "or remove them)")
    starter = resources.files(__name__)
    for name, path in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == data:
            _write_data(kind, path)
        else:
            path.write_text(starter.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8")
    return list(targets.values())


def _write_data(kind: str, path: Path) -> None:
    """The starter's data, from scikit-learn's bundled datasets."""
    import numpy as np
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    if kind == "arrays":
        digits = datasets.load_digits()
        x = (digits.images / 16.0).astype(np.float32)  # 8x8 in [0, 1]
        x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.2, random_state=0,
                                                            stratify=digits.target)
        np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        return
    if kind == "table":
        cancer = datasets.load_breast_cancer(as_frame=True)
        frame = cancer.frame.drop(columns="target")
        frame["diagnosis"] = [str(cancer.target_names[i]) for i in cancer.target]
    else:
        diabetes = datasets.load_diabetes(as_frame=True, scaled=False)
        frame = diabetes.frame.rename(columns={"target": "progression"})
    frame.to_csv(path, index=False)
