"""The benchmark page's efficiency part: R★ and the anytime table of ``make bench PARTS=efficiency``, and the
three searches' curves in runs of the baseline."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sweeps.reporting.html import esc, image, table, verdict  # html imports figures: matplotlib's Agg backend

R_STAR_GOAL = 1.5  # the goal: the search matches the baseline within 1.5 of its runs
NAMES = {"optuna": "Optuna (the space's sampler and pruner, no baselines)", "kerastuner_hyperband": "Keras Tuner Hyperband",
         "random_search": "random search (no pruning)"}


def held_test(steps: list[dict], grid: np.ndarray) -> np.ndarray:
    """The test accuracy of the model a search held at each point of ``grid`` (baseline runs); NaN before its
    first completed trial."""
    out = np.full(len(grid), np.nan)
    for step in steps:
        if step.get("test") is not None:
            out[grid >= step["runs"]] = step["test"]
    return out


def curves_figure(engines: dict[str, dict], bar: float, budget_runs: float) -> plt.Figure:
    """Each engine's held test accuracy against baseline runs: the mean over its seeds (a line) and their range
    (a band), with the bar and the anytime points."""
    grid = np.linspace(0, budget_runs, 400)
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for name, engine in engines.items():
        held = np.array([held_test(run["steps"], grid) for run in engine["runs"]])
        known = ~np.isnan(held).all(axis=0)
        if not known.any():
            continue
        line = ax.plot(grid[known], np.nanmean(held[:, known], axis=0), drawstyle="steps-post", label=f"{NAMES.get(name, name)} (n = {len(held)})")
        ax.fill_between(grid[known], np.nanmin(held[:, known], axis=0), np.nanmax(held[:, known], axis=0),
                        step="post", alpha=0.15, color=line[0].get_color())
    ax.axhline(bar, color="black", linestyle="--", linewidth=1, label=f"bar {bar:.4f}")
    ax.set_xlim(0, budget_runs)
    ax.set_xlabel("compute, in runs of the baseline")
    ax.set_ylabel("test accuracy of the model held")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def _r_star_text(engine: dict) -> str:
    seeds = ", ".join("not reached" if v is None else f"{v:.2f}" for v in engine["r_star_seeds"])
    median = "not reached" if engine["r_star"] is None else f"{engine['r_star']:.2f}"
    return f"{median} (seeds: {seeds})"


def _epochs(values: list[int | None]) -> str:
    return ", ".join("—" if v is None else str(v) for v in values) or "—"


def anytime_table(engines: dict[str, dict]) -> pd.DataFrame:
    """One row per engine: R★ and, at each anytime point, the mean [min–max] test accuracy held (n seeds)."""
    rows = []
    for name, engine in engines.items():
        row = {"search": NAMES.get(name, name), "R★ (median)": _r_star_text(engine)}
        for point in engine["anytime"]:
            row[f"at {point['runs']:g} runs"] = ("nothing yet" if not point["n"] else
                                                 f"{point['mean']:.4f} [{point['min']:.4f}–{point['max']:.4f}] (n = {point['n']})")
        rows.append(row)
    return pd.DataFrame(rows)


def ahead_everywhere(engines: dict[str, dict]) -> bool | None:
    """Whether Optuna's mean held test accuracy is above both others' at every anytime point (None: not all three
    were measured)."""
    if not {"optuna", "kerastuner_hyperband", "random_search"} <= set(engines):
        return None
    ours, others = engines["optuna"]["anytime"], [engines["kerastuner_hyperband"]["anytime"], engines["random_search"]["anytime"]]
    return all(mine["mean"] is not None and all(theirs[i]["mean"] is None or mine["mean"] > theirs[i]["mean"] for theirs in others)
               for i, mine in enumerate(ours))


def _random_picks(engine: dict | None) -> str:
    """What random search, which trains every pick in full, says of the space: how often a pick reaches the bar and
    what one costs (results from before it was recorded say nothing)."""
    picks = (engine or {}).get("picks")
    if not picks or not picks["of"]:
        return ""
    return (f"<p>Random search trains every pick in full: {picks['reached']} of its {picks['of']} picks reached the "
            f"bar, and one cost a median of {picks['median_runs']:g} baseline runs. A search that starts from random "
            f"picks holds a model at the bar only once it has trained a good one in full.</p>")


def efficiency_section(part: dict, run_line: str) -> str:
    """The part as HTML: what was measured, the baseline and its bar, R★ with its goal, the table, the figure."""
    base, about, engines = part["baseline"], part["about"], part["engines"]
    bar = base["bar"]
    ours = engines.get("optuna")
    goal = "" if ours is None else (f"<p>R★ of Optuna: <b>{_r_star_text(ours)}</b> (goal ≤ {R_STAR_GOAL}: "
                                    f"{verdict(ours['r_star'] is not None and ours['r_star'] <= R_STAR_GOAL)}); epochs "
                                    f"trained by then {_epochs(ours.get('r_star_epochs', []))}, against "
                                    f"{base['epochs']} in the baseline's runs.</p>")
    ahead = ahead_everywhere(engines)
    lead = "" if ahead is None else f"<p>Optuna ahead of both at every point: {verdict(ahead)}.</p>"
    lead += _random_picks(engines.get("random_search"))
    quick = "<p class='warn'>A quick run (QUICK=1): a check that it works, not numbers to quote.</p>" if about.get("quick") else ""
    return (f"<h3>5. Efficiency in baseline runs</h3>{run_line}{quick}<p>The space's baseline {base['index']} "
            f"({esc(', '.join(f'{k}={v}' for k, v in base['params'].items()))}) trained on seeds {base['seeds']}: test "
            f"accuracy {', '.join(f'{t:.4f}' for t in base['test_accuracy'])}, one run {base['run_s']} s (median of {base['run_s_each']}). The bar: "
            f"{bar['mean']:.4f} − {bar['ci95']:.4f} (95 % CI half-width, n = {bar['n']}) = <b>{bar['bar']:.4f}</b>. "
            f"Each engine then searched with no baseline queued, {about['search_seeds']} search seed(s) each, one "
            f"after the other, for {about['budget_runs']:g} baseline runs; its clock starts at its first trial. "
            f"R★: baseline runs until the model it holds (best on validation so far) reaches the bar on test.</p>"
            f"{goal}{lead}{table(anytime_table(engines), sortable=False)}"
            f"{image(curves_figure(engines, bar['bar'], about['budget_runs']), 'held test accuracy against baseline runs')}"
            f"<p class='muted'>Each line: the mean over the seeds that hold a model by then (it drops when a seed's "
            f"first, weaker model joins); each band: their range.</p>")
