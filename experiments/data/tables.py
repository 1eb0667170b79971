"""A user's table (``.csv`` or ``.parquet``) as arrays a model takes: one row of numbers per example.

Numeric columns stay as they are (the model standardises them with statistics of the training part: see
:class:`TableFront`); text columns become codes into a vocabulary of the values outside the test part (0: a value
it never saw), which the model one-hot encodes, taking a value the training part lacks as unknown too. Class
labels become indices into their sorted names; a regression's target stays a number. Every mistake is a DataError
naming the file (and column) and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.data.fingerprint import fingerprint
from experiments.errors import DataError

TABLE_SUFFIXES = (".csv", ".parquet")
TEST_SPLIT_SEED = 0  # the test part is held out once, the same way for every sweep of the file
MAX_VOCABULARY = 1000  # distinct values of a text column one-hot encoded; more is an identifier, not a category


@dataclass(frozen=True)
class Column:
    """A feature column: its name, and the vocabulary of a text column (None: a number): the values of the file
    but its test part, so that the one-hot width is known before the validation split."""

    name: str
    vocabulary: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TableSchema:
    """How a table's rows become model inputs: its feature columns in order, and its label column."""

    columns: tuple[Column, ...]
    target: str

    @property
    def numeric(self) -> list[int]:
        """The indices of the number columns."""
        return [i for i, c in enumerate(self.columns) if c.vocabulary is None]

    @property
    def text(self) -> list[int]:
        """The indices of the text columns."""
        return [i for i, c in enumerate(self.columns) if c.vocabulary is not None]

    @property
    def width(self) -> int:
        """How many features a row becomes: one per number, a one-hot (the vocabulary and an unknown) per text."""
        return sum(1 if c.vocabulary is None else len(c.vocabulary) + 1 for c in self.columns)

    def encode(self, frame: pd.DataFrame, where: str) -> np.ndarray:
        """The rows of ``frame`` as a float32 matrix, one column per feature (text as vocabulary codes)."""
        missing = [c.name for c in self.columns if c.name not in frame.columns]
        if missing:
            raise DataError(f"{where}: missing column {missing[0]!r} (the table's features: "
                            f"{', '.join(c.name for c in self.columns)})")
        encoded = np.empty((len(frame), len(self.columns)), dtype=np.float32)
        for i, column in enumerate(self.columns):
            values = frame[column.name]
            _check_complete(values, where)
            if column.vocabulary is None:
                if not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                    raise DataError(f"{where}: column {column.name!r} must be numbers, as in the training data")
                encoded[:, i] = values.to_numpy(dtype=np.float32)
            else:  # pandas' codes count from 0 and give -1 to a value outside the vocabulary: 0 is ours
                encoded[:, i] = pd.Categorical(values.astype(str), categories=column.vocabulary).codes + 1
        return encoded


@dataclass(frozen=True)
class TableFront:
    """What the model puts in front of a builder's network for a table: standardise the numeric columns with the
    training part's mean and variance, one-hot encode each text column's codes (the vocabulary and an unknown),
    a code the training part lacks as the unknown."""

    schema: TableSchema
    mean: tuple[float, ...]  # of each numeric column, in order
    variance: tuple[float, ...]
    known: tuple[tuple[int, ...], ...]  # of each text column, in order: the codes the training part has

    @property
    def categories(self) -> list[tuple[int, int]]:
        """(column index, one-hot width) of each text column."""
        return [(i, len(c.vocabulary) + 1) for i, c in enumerate(self.schema.columns) if c.vocabulary is not None]

    @classmethod
    def fit(cls, schema: TableSchema, x_train: np.ndarray) -> TableFront:
        """The front of ``schema`` fitted on the training part's rows alone."""
        numeric = x_train[:, schema.numeric].astype(np.float64)
        known = tuple(tuple(np.unique(x_train[:, i]).astype(int).tolist()) for i in schema.text)
        return cls(schema, tuple(numeric.mean(axis=0).tolist()), tuple(numeric.var(axis=0).tolist()), known)


def _check_complete(values: pd.Series, where: str) -> None:
    empty = values.isna()
    if empty.any():
        rows = ", ".join(str(r + 2) for r in np.flatnonzero(empty.to_numpy())[:3])  # +2: the header and 1-based
        raise DataError(f"{where}: column {values.name!r} has {int(empty.sum())} empty values (line {rows}…); "
                        "fill or drop them")


def read_frame(path: Path) -> pd.DataFrame:
    """A .csv or .parquet file as a DataFrame; a DataError when it cannot be read."""
    if path.suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: a table must be a .csv or .parquet file")
    try:
        return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, pd.errors.ParserError, ImportError) as exc:
        raise DataError(f"{path}: not a readable {path.suffix[1:]} table ({type(exc).__name__}: {exc})".splitlines()[0]) from None


def _schema(frame: pd.DataFrame, target: str, where: str) -> TableSchema:
    """Feature columns in the file's order: numbers as they are, anything else as text with its vocabulary."""
    columns = []
    for name in frame.columns:
        if name == target:
            continue
        values = frame[name]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            columns.append(Column(str(name)))
            continue
        vocabulary = tuple(sorted(values.astype(str).unique()))
        if len(vocabulary) > MAX_VOCABULARY:
            raise DataError(f"{where}: text column {name!r} has {len(vocabulary):,} distinct values (at most "
                            f"{MAX_VOCABULARY} are one-hot encoded): drop it or turn it into numbers")
        columns.append(Column(str(name), vocabulary))
    if not columns:
        raise DataError(f"{where}: no feature columns besides the target {target!r}")
    return TableSchema(tuple(columns), target)


def _labels(frame: pd.DataFrame, target: str, regression: bool, where: str) -> pd.Series:
    if target not in frame.columns:
        raise DataError(f"{where}: no column {target!r} (dataset.target; columns: {', '.join(map(str, frame.columns[:12]))})")
    labels = frame[target]
    _check_complete(labels, where)
    if regression and not pd.api.types.is_numeric_dtype(labels):
        raise DataError(f"{where}: target {target!r} must be numbers for task: regression (got {labels.dtype})")
    if not regression and pd.api.types.is_float_dtype(labels) and not (labels == labels.round()).all():
        raise DataError(f"{where}: target {target!r} has fractional values; for a number to predict set task: regression")
    return labels


def _split_test(frame: pd.DataFrame, target: str, test_size: float, regression: bool,
                where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    stratify = None if regression else frame[target]
    if stratify is not None and stratify.value_counts().min() < 2:
        counts = stratify.value_counts()
        rare = counts.idxmin()
        rare = rare.item() if hasattr(rare, "item") else rare  # 171, not np.int64(171)
        number = (f"; {counts.size} distinct values in {len(stratify)} rows: for a number to predict set task: "
                  "regression" if pd.api.types.is_numeric_dtype(stratify) else "")
        raise DataError(f"{where}: class {rare!r} of {target!r} has one row only; a held-out test part needs two "
                        f"or more of each class (or give dataset.test){number}")
    try:
        return train_test_split(frame, test_size=test_size, stratify=stratify, random_state=TEST_SPLIT_SEED)
    except ValueError as exc:  # too few rows for the fraction
        raise DataError(f"{where}: cannot hold out test_size {test_size} of {len(frame)} rows ({exc})") from None


def read_table(path: Path, target: str | None, test: Path | None, test_size: float,
               regression: bool) -> tuple[dict[str, np.ndarray], tuple[str, ...], str, TableSchema]:
    """The arrays of a table (x_train, y_train, x_test, y_test), its class names (none for a regression), the
    md5 of its file(s) and its schema."""
    where = str(path)
    if target is None:
        raise DataError(f"{where}: a table needs dataset.target naming its label column")
    frame = read_frame(path)
    for name in frame.columns:  # before any split, so the line numbers are the file's
        _check_complete(frame[name], where)
    _labels(frame, target, regression, where)
    if test is not None:  # the validation split shuffles the training part (experiments.data)
        train, held_out = frame, read_frame(test)
        _labels(held_out, target, regression, str(test))
    else:
        train, held_out = _split_test(frame, target, test_size, regression, where)
    schema = _schema(train, target, where)
    arrays = {"x_train": schema.encode(train, where), "x_test": schema.encode(held_out, str(test or path))}
    digest = fingerprint([path.read_bytes(), test.read_bytes() if test else b""])
    if regression:
        arrays |= {"y_train": train[target].to_numpy(np.float32), "y_test": held_out[target].to_numpy(np.float32)}
        return arrays, (), digest, schema
    from experiments.data.files import class_indices

    class_names, labels = class_indices(where, {"y_train": train[target].to_numpy(), "y_test": held_out[target].to_numpy()})
    return arrays | labels, class_names, digest, schema
