"""The table problem of ``make bench PARTS=efficiency``: a covertype-like table made by scikit-learn's generator
(nothing downloads), written as CSV where ``search_spaces/table_mlp.yaml`` reads it. Deterministic: the same
file on every machine, so the bench's numbers compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TABLE_PATH = ".sweeps/data/covertype_like.csv"  # relative to the project folder, as the space file names it
ROWS, CLASSES, SOIL_TYPES = 10_000, 5, 8


def covertype_like() -> pd.DataFrame:
    """10,000 rows of 5 cover types: 18 numeric columns on their own scales (some pure noise, some redundant)
    and a text column (``soil``, 8 values) binned from an informative one, as in UCI covertype; ``cover`` is the
    label, with 3 % of them flipped."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=ROWS, n_features=19, n_informative=10, n_redundant=4, n_classes=CLASSES,
                               n_clusters_per_class=3, class_sep=1.0, flip_y=0.03, random_state=0)
    scales = np.random.default_rng(0).choice([1.0, 10.0, 100.0, 1000.0], size=x.shape[1] - 1)
    frame = pd.DataFrame(np.round(x[:, 1:] * scales, 3), columns=[f"x{i:02d}" for i in range(1, x.shape[1])])
    edges = np.quantile(x[:, 0], np.linspace(0, 1, SOIL_TYPES + 1)[1:-1])
    frame["soil"] = [f"soil_{chr(ord('a') + int(i))}" for i in np.searchsorted(edges, x[:, 0])]
    frame["cover"] = [f"type_{int(label) + 1}" for label in y]
    return frame


def write_table(path: Path) -> Path:
    """Write the table to ``path`` (its folder made); the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    covertype_like().to_csv(path, index=False)
    return path


if __name__ == "__main__":  # python -m sweeps.bench.table_data [PATH]
    import sys

    print(write_table(Path(sys.argv[1] if len(sys.argv) > 1 else TABLE_PATH)))
