"""The efficiency part's numbers, from plain data: the bar a baseline sets, a search's best-so-far steps in
baseline runs, R★ and the anytime points (no stores, no training: tests build the curves by hand)."""

from __future__ import annotations

import math
import statistics

from sweeps.stats import spread

ANYTIME_POINTS = (0.25, 0.5, 1.0, 2.0, 4.0)  # baseline runs at which every engine's best so far is compared


def bar_of(tests: list[float]) -> dict:
    """The bar a search must reach: the baseline's mean test accuracy over its seeds less the 95 % CI half-width
    (Student t), with the mean, the half-width, the standard deviation and the count."""
    s = spread(tests)
    if s.n < 2:
        raise ValueError(f"the bar needs the baseline on at least 2 seeds, got {s.n}")
    return {"bar": round(s.mean - s.ci95, 4), "mean": round(s.mean, 4), "ci95": round(s.ci95, 4), "sd": round(s.std, 4),
            "n": s.n}


def in_runs(steps: list[dict], unit_s: float) -> list[dict]:
    """Best-so-far steps (``seconds`` from the search's first trial) with ``runs``: the same time in runs of
    ``unit_s`` seconds."""
    return [{**step, "runs": round(step["seconds"] / unit_s, 3)} for step in steps]


def held_at(steps: list[dict], runs: float) -> dict | None:
    """The step a search held after ``runs`` baseline runs (None: no completed trial yet)."""
    reached = [step for step in steps if step["runs"] <= runs]
    return reached[-1] if reached else None


def r_star(steps: list[dict], bar: float) -> float | None:
    """Baseline runs until the model the search holds (its best on validation so far) has test accuracy ≥ ``bar``;
    None: not within the search."""
    return next((step["runs"] for step in steps if step.get("test") is not None and step["test"] >= bar), None)


def median_r_star(values: list[float | None]) -> float | None:
    """The median over search seeds, a seed that never reached the bar counted as later than any that did; None
    when the median itself did not reach it."""
    median = statistics.median([math.inf if v is None else v for v in values])
    return None if math.isinf(median) or math.isnan(median) else round(median, 3)


def anytime(curves: list[list[dict]], points: tuple[float, ...] = ANYTIME_POINTS) -> list[dict]:
    """At each point: the test accuracy of the model each seed's search held, their mean, standard deviation,
    min, max and how many seeds held one by then (``of``: how many searched)."""
    table = []
    for point in points:
        held = [held_at(steps, point) for steps in curves]
        tests = [step["test"] for step in held if step is not None and step.get("test") is not None]
        s = spread(tests)
        table.append({"runs": point, "mean": _round(s.mean), "sd": _round(s.std), "min": _round(s.low),
                      "max": _round(s.high), "n": s.n, "of": len(curves)})
    return table


def completed_at_the_bar(runs: list[dict], bar: float) -> dict:
    """Over every seed's completed trials (``picks``: each its test accuracy and its cost in baseline runs): how
    many reached the bar, of how many, and the median cost of one. For random search, which trains every pick in
    full (no pruner), it is the odds a random pick reaches the bar and what finding out costs: the floor of any
    search that starts from random picks. For the others it counts only the trials they let finish."""
    picks = [pick for run in runs for pick in run.get("picks", [])]
    reached = sum(pick["test"] is not None and pick["test"] >= bar for pick in picks)
    cost = statistics.median(pick["runs"] for pick in picks) if picks else None
    return {"reached": reached, "of": len(picks), "median_runs": None if cost is None else round(cost, 3)}


def engine_summary(runs: list[dict], bar: float) -> dict:
    """One engine over its search seeds (``runs``: each a search's row with its ``steps`` in baseline runs): R★ per
    seed, the epochs every trial had trained by then, their median, the range of those that reached the bar, the
    anytime table, its completed trials' odds of reaching the bar, and the rows."""
    seeds = [r_star(run["steps"], bar) for run in runs]
    reached = [v for v in seeds if v is not None]
    epochs = [None if v is None else (held_at(run["steps"], v) or {}).get("epochs") for v, run in zip(seeds, runs, strict=True)]
    return {"r_star": median_r_star(seeds), "r_star_seeds": seeds, "r_star_epochs": epochs, "reached": len(reached),
            "r_star_min": min(reached) if reached else None, "r_star_max": max(reached) if reached else None,
            "anytime": anytime([run["steps"] for run in runs]), "picks": completed_at_the_bar(runs, bar), "runs": runs}


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)
