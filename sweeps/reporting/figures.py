"""Seaborn figures shared by the MLflow artifacts and the report (matplotlib's Agg backend, no display)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import LogFormatterSciNotation, MaxNLocator

sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
SPLIT_COLOURS = {"train": sns.color_palette("colorblind")[0], "validation": sns.color_palette("colorblind")[1]}


def learning_curves(history: pd.DataFrame, title: str, best_epoch: int | None = None,
                    overfit_epoch: int | None = None) -> plt.Figure:
    """Train vs validation loss and accuracy (a regression's: mean absolute error) per epoch, with the best epoch and
    the overfitting onset marked.

    ``history`` has an ``epoch`` column and Keras' log keys (loss, accuracy or mae, and their ``val_`` ones).
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("loss", "mae" if "mae" in history else "accuracy"), strict=True):
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
        if overfit_epoch is not None:
            ax.axvline(overfit_epoch, color="#b00020", linestyle=":", label=f"overfitting from {overfit_epoch}")
        ax.legend()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.legend()
    fig.tight_layout()
    return fig


def pareto_front(trials: pd.DataFrame, front: list[int], metric: str, secondary: str) -> plt.Figure:
    """Every completed trial by its two objectives; the trials no other beats on both are marked and joined."""
    done = trials.dropna(subset=["value", "secondary"]).assign(front=lambda t: t["number"].isin(front))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.scatterplot(data=done, x="secondary", y="value", hue="front", hue_order=[False, True], ax=ax)
    best = done[done["front"]].sort_values("secondary")
    ax.plot(best["secondary"], best["value"], color="C1", lw=1)
    ax.set_xlabel(secondary)
    ax.set_ylabel(metric)
    ax.legend(title="on the front")
    fig.tight_layout()
    return fig


MIN_TRIALS_FOR_TRENDS = 10  # a trend line or an importance from fewer completed trials is mostly noise


def param_effects(trials: pd.DataFrame, params: list[str], metric: str, log_scale: set[str],
                  categorical: set[str]) -> plt.Figure:
    """The objective value against each param: a scatter (log x for log-scaled params; a dashed linear trend
    from MIN_TRIALS_FOR_TRENDS completed trials on) for numeric params, a strip plot for ``categorical`` ones
    and any param with few values."""
    cols = min(3, max(1, len(params)))
    rows = -(-len(params) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    done = trials.dropna(subset=["value"])
    for ax, param in zip(axes.flat, params, strict=False):  # more axes than params: the rest stay empty
        data = done.dropna(subset=[param])
        numeric = pd.api.types.is_numeric_dtype(data[param]) and param not in categorical
        if numeric and data[param].nunique() > 5:
            log = param in log_scale
            trend = len(data) >= MIN_TRIALS_FOR_TRENDS
            sns.regplot(data=data, x=param, y="value", ax=ax, ci=None, logx=log and trend, fit_reg=trend,
                        line_kws={"color": "grey", "linestyle": "--"})
            if log:
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(LogFormatterSciNotation())
            ax.tick_params(axis="x", labelrotation=30)
        else:
            values = data[param].map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
            order = sorted(values.unique(), key=lambda v: (not _is_number(v), float(v) if _is_number(v) else 0, v))
            sns.stripplot(x=values, y=data["value"], order=order, ax=ax, size=6)
            ax.set_xlabel(param)
        ax.set_ylabel(metric)
    for ax in list(axes.flat)[len(params):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def intermediate_values(values: dict[int, dict[int, float]], states: dict[int, str], metric: str) -> plt.Figure:
    """What the pruner saw: each trial's per-epoch objective (its first repeat), pruned trials drawn apart."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    colours = {"PRUNED": "#b00020", "COMPLETE": sns.color_palette("colorblind")[0]}
    seen = set()
    for number, steps in sorted(values.items()):
        state = states.get(number, "")
        label = state.lower() if state not in seen else None
        seen.add(state)
        ax.plot(list(steps), list(steps.values()), marker="o", ms=3, lw=1, alpha=0.7,
                color=colours.get(state, "grey"), label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    fig.tight_layout()
    return fig


def importance(values: dict[str, float], evaluator: str) -> plt.Figure:
    """Horizontal bars of each param's importance for the objective."""
    frame = pd.DataFrame({"param": list(values), "importance": list(values.values())})
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(frame) + 1.2))
    sns.barplot(data=frame, y="param", x="importance", ax=ax, color=sns.color_palette("colorblind")[0])
    ax.set_title(f"param importance ({evaluator})")
    fig.tight_layout()
    return fig


def parallel_coordinates(trials: pd.DataFrame, params: list[str], metric: str) -> plt.Figure:
    """One line per trial across its params (each axis scaled to 0-1; choices in order), coloured by the objective."""
    done = trials.dropna(subset=["value"])
    scaled = pd.DataFrame(index=done.index)
    ticks = {}
    for param in params:
        column = done[param]
        if pd.api.types.is_numeric_dtype(column):
            low, high = column.min(), column.max()
            scaled[param] = 0.5 if high == low else (column - low) / (high - low)
            ticks[param] = (f"{low:.3g}", f"{high:.3g}")
        else:
            order = sorted(column.dropna().astype(str).unique())
            scaled[param] = column.astype(str).map({v: i / max(1, len(order) - 1) for i, v in enumerate(order)})
            ticks[param] = (order[0], order[-1]) if order else ("", "")
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(params)), 4))
    norm = plt.Normalize(done["value"].min(), done["value"].max())
    cmap = plt.get_cmap("viridis")
    for idx, row in scaled.iterrows():
        ax.plot(range(len(params)), row.to_numpy(dtype=float), color=cmap(norm(done.loc[idx, "value"])), alpha=0.8)
    ax.set_xticks(range(len(params)), [f"{p}\n{ticks[p][0]} … {ticks[p][1]}" for p in params], fontsize=8)
    ax.set_yticks([])
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    fig.tight_layout()
    return fig


def stop_epochs(repeats: pd.DataFrame) -> plt.Figure:
    """How many epochs each repeat trained, stacked by why it stopped."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    sns.histplot(data=repeats, x="epochs", hue="stop_reason", multiple="stack", discrete=True, ax=ax)
    ax.set_xlabel("epochs trained")
    ax.set_ylabel("repeats")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


SCREEN_DPI = 90  # a figure inch on the page
MAX_SVG_MARKS = 3000  # more points than this (thousands of trials) draw as a PNG: an SVG grows with every point


def _marks(fig: plt.Figure) -> int:
    """Points drawn in ``fig``: scatter markers and line vertices."""
    scatter = sum(np.asarray(c.get_offsets()).shape[0] for ax in fig.axes for c in ax.collections)
    return int(scatter) + sum(np.asarray(line.get_xdata()).size for ax in fig.axes for line in ax.lines)


def to_data_uri(fig: plt.Figure) -> tuple[str, int]:
    """``fig`` as an embeddable data URI and its width on the page in CSS pixels; closes it. Plots are SVG (sharp
    at any zoom, text stays text); figures holding images (digits, clothes) or thousands of points are PNG at
    twice the page's pixels."""
    buffer = io.BytesIO()
    width = round(fig.get_size_inches()[0] * SCREEN_DPI)
    if any(ax.images for ax in fig.axes) or _marks(fig) > MAX_SVG_MARKS:
        fig.savefig(buffer, format="png", dpi=2 * SCREEN_DPI)
        kind = "png"
    else:
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "sweeps"}):  # same plot, same bytes
            fig.savefig(buffer, format="svg")
        kind = "svg+xml"
    plt.close(fig)
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode(), width


def best_so_far(curves: dict[str, list[dict]], budget_min: float) -> plt.Figure:
    """Best validation score so far, and that trial's test accuracy, against the minutes since each search's command
    started: one step line per search (``curves``: label → the bench's best-so-far steps)."""
    rows = [{"search": label, "minutes": step["minutes"], "best validation": step["val"], "its test accuracy": step["test"]}
            for label, steps in curves.items() if steps  # a search that completed no trial draws no line
            for step in [*steps, {**steps[-1], "minutes": budget_min}]]
    frame = pd.DataFrame(rows, columns=["search", "minutes", "best validation", "its test accuracy"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for ax, column in zip(axes, ("best validation", "its test accuracy"), strict=True):
        if not frame.empty:
            sns.lineplot(data=frame, x="minutes", y=column, hue="search", drawstyle="steps-post", marker="o", ax=ax)
        ax.set_xlim(0, budget_min)
        ax.set_xlabel("minutes since the command started")
    fig.tight_layout()
    return fig
