"""Is the best configuration better than the others, or within the noise of its seeds? (Welch's t over the
seeded repeats of each trial, as the blog's five re-runs per config were meant to tell.)"""

from __future__ import annotations

import pandas as pd

from sweeps.reporting.html import esc, table, value_text
from sweeps.reporting.spread import ci
from sweeps.results.study_results import StudyResults, ranked
from sweeps.stats import Difference, compare

SHOWN = 10  # configs per table: the best and the next ones


def versus_best(result: StudyResults) -> dict[int, Difference]:
    """Trial number → the best trial's objective minus that trial's, over their seeds (completed trials with
    at least 2 seeds each; the best itself left out)."""
    best = result.best()
    column = result.metric
    if best is None or result.repeats.empty or column not in result.repeats:
        return {}
    scores = result.repeats.groupby("trial")[column].apply(list).to_dict()
    best_scores = scores.get(best["number"], [])
    done = result.trials[ranked(result.trials) & (result.trials["number"] != best["number"])]
    found = {int(n): compare(best_scores, scores.get(n, []), result.maximise) for n in done["number"]}
    return {n: d for n, d in found.items() if d is not None}


def label(difference: Difference | None) -> str:
    """``best − this [95 % CI]: verdict`` for a leaderboard cell."""
    return "" if difference is None else f"{difference}: {difference.verdict}"


def seeds_table(result: StudyResults) -> pd.DataFrame:
    """The best completed configs, best first: their searched params, objective over seeds and the verdict."""
    differences = versus_best(result)
    done = result.trials[ranked(result.trials)].head(SHOWN)
    rows = []
    for rank, (_, trial) in enumerate(done.iterrows()):
        number = int(trial["number"])
        params = {p.removeprefix("params_"): esc(value_text(trial[p])) for p in result.params if pd.notna(trial[p])}
        rows.append({"trial": number, **params, f"{result.metric} mean ± 95% CI (n)": ci(trial, "value"),
                     "best − this [95% CI]": "" if rank == 0 else str(differences.get(number, "")),
                     "verdict": "best" if rank == 0 else (differences[number].verdict if number in differences
                                                          else "one seed: not testable")})
    return pd.DataFrame(rows)


def seeds_section(result: StudyResults) -> str:
    """The summary's answer for one study whose configs ran with several seeds (empty when none did)."""
    if not versus_best(result):
        return ""
    rows = seeds_table(result)
    runner_up = rows.iloc[1]
    return (f"<h3>{esc(result.name)}: is the best config better than the next?</h3>"
            f"<p>Best minus each config, {result.metric} over seeds, with Welch's 95 % interval. The runner-up "
            f"(trial {runner_up['trial']}): <b>{esc(runner_up['verdict'])}</b>.</p>"
            f"{table(rows, sortable=False, escape=False)}")
