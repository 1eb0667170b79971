"""The line ``sweep run`` ends with: the study's best trial, who found it, and its scores over all its seeds."""

from __future__ import annotations

from sweeps.next_command import next_command
from sweeps.reporting.spread import ci
from sweeps.results.study_results import StudyResults
from sweeps.store.keys import SPACE


def winner_line(result: StudyResults) -> str:
    """``best of S: trial N (found by X): metric m ± ci (n=k); test …`` or what is missing."""
    best = result.best()
    if best is None:
        return f"best of {result.name}: no completed trial yet"
    extra = int(best.get("confirmation_seeds") or 0)
    found = f" (found by {best['found_by']})" if isinstance(best.get("found_by"), str) else ""
    if extra:
        spread = (f"mean ± 95% CI over its {extra} confirmation seed(s) alone; the seed the search chose it on scored "
                  f"{best['search_value']:.4f}")
    elif result.space.spec.validation == "kfold":  # each repeat held out its own fold: the spread is the folds'
        spread = f"mean ± 95% CI over {int(best['n_repeats'])} folds"
    elif best["n_repeats"] > 1:
        spread = "mean ± 95% CI over seeds"
    else:
        confirm = next_command("run", result.attrs.get(SPACE, result.name), confirm="N", quick=result.quick,
                               engine=result.engine)
        spread = f"one seed, no spread: `{confirm}` confirms it on N more seeds"
    return (f"best of {result.name}: trial {int(best['number'])}{found}: {result.metric} {ci(best, 'value')}, "
            f"{result.test_metric} {ci(best, result.test_metric)}, test_loss {ci(best, 'test_loss')} ({spread})")
