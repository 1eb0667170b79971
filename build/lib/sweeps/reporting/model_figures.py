"""Figures of one trained model on the test set: confusion matrix, per-class accuracy, mistakes, robustness; a
regression's predicted-vs-true and residual plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from sweeps.reporting.figures import plt


def confusion(matrix: pd.DataFrame) -> plt.Figure:
    """Heatmap of counts, true class down, predicted class across."""
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax, annot_kws={"size": 7})
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig


def per_class(accuracy: pd.Series) -> plt.Figure:
    """Bars of each class's accuracy, worst first."""
    frame = accuracy.sort_values().rename_axis("class").reset_index(name="accuracy")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    sns.barplot(data=frame, y="class", x="accuracy", ax=ax, color=sns.color_palette("colorblind")[0])
    ax.set_xlim(max(0.0, frame["accuracy"].min() - 0.1), 1.0)
    fig.tight_layout()
    return fig


def mistakes(images: np.ndarray, table: pd.DataFrame, columns: int = 8) -> plt.Figure:
    """A grid of wrongly classified images titled true → predicted (confidence)."""
    rows = max(1, -(-len(table) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.45 * columns, 1.75 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, table.iterrows(), strict=False):
        ax.imshow(images[int(row["index"])].squeeze(), cmap="gray_r")
        ax.set_title(f"{row['true']}\n→ {row['predicted']} {row['confidence']:.0%}", fontsize=7)
    fig.tight_layout()
    return fig


def robustness(frame: pd.DataFrame) -> plt.Figure:
    """Test accuracy under each perturbation, one bar colour per space."""
    fig, ax = plt.subplots(figsize=(9, 0.45 * frame["perturbation"].nunique() * max(1, frame["space"].nunique()) + 1.5))
    sns.barplot(data=frame, y="perturbation", x="accuracy", hue="space", ax=ax)
    ax.set_xlim(0, 1)
    fig.tight_layout()
    return fig


def case(original: np.ndarray, moved: np.ndarray, move: str) -> plt.Figure:
    """The seed's case: a test image as it is and as moved."""
    fig, axes = plt.subplots(1, 2, figsize=(3.6, 2.0))
    for ax, image, title in zip(axes, (original, moved), ("as it is", move), strict=True):
        ax.imshow(image.squeeze(), cmap="gray_r")
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    return fig


def predicted_vs_true(y_true: np.ndarray, y_pred: np.ndarray) -> plt.Figure:
    """Each test example's prediction against its true value; the diagonal is a perfect prediction."""
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    sns.scatterplot(x=y_true, y=y_pred, s=14, alpha=0.6, ax=ax)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    fig.tight_layout()
    return fig


def residuals(y_true: np.ndarray, y_pred: np.ndarray) -> plt.Figure:
    """Residuals (predicted − true) against the prediction, and their distribution: a pattern or a skew is error
    the model leaves on the table."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    sns.scatterplot(x=y_pred, y=y_pred - y_true, s=14, alpha=0.6, ax=left)
    left.axhline(0, color="grey", linewidth=1, linestyle="--")
    left.set_xlabel("predicted")
    left.set_ylabel("predicted − true")
    sns.histplot(y_pred - y_true, ax=right, bins=30)
    right.set_xlabel("predicted − true")
    fig.tight_layout()
    return fig
