"""Seaborn figures shared by the MLflow artifacts and the report (matplotlib's Agg backend, no display)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
SPLIT_COLOURS = {"train": sns.color_palette("colorblind")[0], "validation": sns.color_palette("colorblind")[1]}


def learning_curves(history: pd.DataFrame, title: str, best_epoch: int | None = None) -> plt.Figure:
    """Train vs validation loss and accuracy per epoch; ``history`` has an ``epoch`` column and Keras' log keys."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        if metric not in history:
            ax.set_visible(False)
            continue
        long = pd.concat([
            pd.DataFrame({"epoch": history["epoch"], metric: history[metric], "split": "train"}),
            pd.DataFrame({"epoch": history["epoch"], metric: history.get(f"val_{metric}"), "split": "validation"}),
        ])
        sns.lineplot(data=long, x="epoch", y=metric, hue="split", marker="o", palette=SPLIT_COLOURS, ax=ax)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
            ax.legend()
        ax.set_title(metric)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def optimisation_history(trials: pd.DataFrame, metric: str, maximise: bool) -> plt.Figure:
    """Each finished trial's objective value and the best-so-far line (Optuna's history plot, in seaborn)."""
    done = trials.dropna(subset=["value"]).sort_values("number")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.scatterplot(data=done, x="number", y="value", hue="state", ax=ax, s=50)
    best = done["value"].cummax() if maximise else done["value"].cummin()
    ax.step(done["number"], best, where="post", color="black", label="best so far")
    ax.set_xlabel("trial")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(metric)
    ax.legend()
    fig.tight_layout()
    return fig


def param_effects(trials: pd.DataFrame, params: list[str], metric: str, log_scale: set[str]) -> plt.Figure:
    """The objective value against each param: scatter for real-valued params, strip plot for the rest."""
    cols = min(3, max(1, len(params)))
    rows = -(-len(params) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    done = trials.dropna(subset=["value"])
    for ax, param in zip(axes.flat, params):
        data = done.dropna(subset=[param])
        if pd.api.types.is_float_dtype(data[param]):
            sns.scatterplot(data=data, x=param, y="value", ax=ax)
            if param in log_scale:
                ax.set_xscale("log")
        else:
            order = sorted(data[param].unique(), key=lambda v: (isinstance(v, str), v))
            sns.stripplot(data=data, x=param, y="value", order=order, ax=ax, size=6)
        ax.set_ylabel(metric)
    for ax in list(axes.flat)[len(params):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def to_png(fig: plt.Figure) -> bytes:
    """Render ``fig`` as PNG bytes and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def to_data_uri(fig: plt.Figure) -> str:
    """``fig`` as an embeddable ``data:image/png;base64,…`` URI."""
    return "data:image/png;base64," + base64.b64encode(to_png(fig)).decode()
