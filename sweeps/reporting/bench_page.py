"""The report's benchmark section: what ``make bench`` measured (reports/bench.json), with its targets."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd

from sweeps.next_command import next_command
from sweeps.reporting import figures
from sweeps.reporting.efficiency_page import efficiency_section
from sweeps.reporting.html import esc, image, table, verdict

OVERHEAD_TARGET = 1.05  # framework s/epoch over plain Keras s/epoch
EPOCHS_SAVED_TARGET = 0.40  # pruning: at least this share of epochs saved ...
SAME_ACCURACY_POINTS = 0.3  # ... for a best val accuracy within this many points
BAR_WITHIN_S = 45  # the first trial meeting the bar finishes this soon after the sweep command starts
BUDGET_SLACK_S = 60  # a sweep ends within its budget plus this (start-up, the capped trial, the report)
CHECKPOINTS_MIN = (10, 30, 60)  # ours must be ahead of Keras Tuner at each of these minutes (within the budget)
MEMORY_GROWTH_TARGET = 0.10  # peak RSS from trial 10 to the last of a long quick sweep
ENGINES = {"optuna": "Optuna, the space as shipped", "optuna_no_baselines": "Optuna without the space's baselines",
           "optuna_tpe_pruned": "Optuna TPE + pruning",
           "random_search": "random search (no pruning, no baselines)", "kerastuner_hyperband": "Keras Tuner Hyperband"}
PRUNING = {"with_pruner": "with the pruner", "without_pruner": "without"}


def load_bench(path: Path) -> dict | None:
    """The last benchmark's raw numbers, or None when ``make bench`` has not been run."""
    return json.loads(path.read_text()) if path.is_file() else None


def _times(values: list[float]) -> str:
    """Median [min–max] of the epochs after the first (which includes tracing), and how many."""
    timed = values[1:]
    return f"{statistics.median(timed):.3g} s [{min(timed):.3g}–{max(timed):.3g}], n = {len(timed)} epochs"


def _overhead(o: dict) -> str:
    ratio = o["ratio"]
    config = ", ".join(f"{k}={v}" for k, v in o["config"].items())
    return (f"<h3>1. Framework overhead</h3><p>The blog's CNN ({esc(o['space'])}, {esc(config)}, seed "
            f"{o['seed']}) trained {o['epochs']} epochs by a plain Keras script and as one trial of the "
            f"framework (MLflow logging, checkpointing, callbacks on). Seconds per epoch, first epoch excluded:</p>"
            f"<ul><li>plain Keras: {_times(o['plain_epoch_s'])}</li>"
            f"<li>framework: {_times(o['framework_epoch_s'])}</li></ul>"
            f"<p>Ratio of the medians: <b>{ratio:.3f}×</b> (target ≤ {OVERHEAD_TARGET}×: "
            f"{verdict(ratio <= OVERHEAD_TARGET)}).</p>")


def _score(row: dict, name: str) -> str:
    """A best-trial score with its seed count and, with more than one seed, its standard deviation."""
    if row.get(name) is None:
        return ""
    std, seeds = row.get(f"{name}_std"), row["seeds"]
    return f"{row[name]:.4f}" + (f" ± {std:.4f} sd" if std is not None and seeds > 1 else "") + f" (n = {seeds})"


def bench_rows(rows: dict[str, dict], names: dict[str, str]) -> pd.DataFrame:
    """One display row per sweep of the benchmark (the report's tables and the printed ones)."""
    return pd.DataFrame([{
        "run": names[key], "trials": r["trials"], "pruned": r["pruned"], "epochs trained": r["epochs"],
        "wall (min)": f"{r['wall_s'] / 60:.1f}", "best validation accuracy": _score(r, "best_val"),
        "its test accuracy": _score(r, "its_test_accuracy"),
        "its test loss": _score(r, "its_test_loss"),
        "first model meeting the bar": "never" if r["first_meeting_bar_s"] is None else _duration(r["first_meeting_bar_s"]),
        "peak RSS per trial (MiB)": _rss(r.get("peak_rss_mb")),
    } for key, r in rows.items() if key in names])


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _rss(values: list[float] | None) -> str:
    """First → last trial's peak RSS (the sweep's process grows if memory leaks from trial to trial)."""
    return "" if not values else f"{values[0]:.0f} → {values[-1]:.0f} (n = {len(values)})"


def _about(results: dict, part: str) -> dict:
    """Where and when a part was measured (each part may come from its own ``make bench`` run)."""
    return results[part]["about"]


def _run_line(about: dict) -> str:
    subset = about.get("subset")
    data = f"a {subset}-image training sample" if subset else "the full training split"
    return (f"<p class='muted'>Run {esc(about['when'])} on {esc(about['space'])}, {data}, "
            f"{esc(about.get('machine', 'this machine'))}.</p>")


def _pruning(results: dict) -> str:
    p, about = results["pruning"], _about(results, "pruning")
    on, off = p["with_pruner"], p["without_pruner"]
    saved = 1 - on["epochs"] / off["epochs"] if off["epochs"] else 0.0
    both = on["best_val"] is not None and off["best_val"] is not None
    points = (on["best_val"] - off["best_val"]) * 100 if both else None
    same = points is not None and abs(points) <= SAME_ACCURACY_POINTS
    return (f"<h3>2. Pruning</h3>{_run_line(about)}<p>{about['pruning_trials']} trials of the same space and sampler "
            f"seed, with the space's pruner ({esc(about['pruner'])}) and without.</p>"
            f"{table(bench_rows(p, PRUNING), sortable=False)}"
            f"<p>Epochs saved: <b>{saved:.0%}</b> (target ≥ {EPOCHS_SAVED_TARGET:.0%}); best validation accuracy "
            f"{'n/a' if points is None else f'{points:+.2f} points'} with the pruner (target within "
            f"±{SAME_ACCURACY_POINTS}): {verdict(saved >= EPOCHS_SAVED_TARGET and same)}.</p>")


def _search(results: dict) -> str:
    about = _about(results, "search_quality")
    order = "all at the same time, sharing the cores" if about.get("together") else "one after the other"
    return (f"<h3>3. Search quality on one budget</h3>{_run_line(about)}<p>Each engine searched the same space for "
            f"the same wall-clock budget ({about['budget_s'] / 60:.3g} min; the trial in flight is fitted to it), one "
            f"<code>sweep run</code> command each, {order}; wall and the time to the first trial meeting the "
            f"bar count from the command's start (imports and data loading included). The best trial is chosen "
            f"on validation accuracy and its test accuracy and loss reported.</p>"
            f"{table(bench_rows(results['search_quality'], ENGINES), sortable=False)}{_search_verdicts(results, about)}"
            f"{_race(results['search_quality'], about['budget_s'])}{_startup_note(results, about)}")


def best_at(steps: list[dict], minute: float) -> dict | None:
    """The best-so-far step a search had reached by ``minute`` (None: no completed trial yet)."""
    reached = [step for step in steps if step["minutes"] <= minute]
    return reached[-1] if reached else None


def _race(rows: dict, budget_s: float) -> str:
    """Best so far against minutes for every search, and whether ours led Keras Tuner at each checkpoint."""
    curves = {ENGINES[key]: row["best_so_far"] for key, row in rows.items() if key in ENGINES and "best_so_far" in row}
    if not curves:
        return ""
    ours, theirs = rows.get("optuna") or rows.get("optuna_tpe_pruned"), rows.get("kerastuner_hyperband")
    items = [] if ours is None or theirs is None else _checkpoints(ours, theirs, budget_s)
    listed = "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>" if items else ""
    return (f"<h4>Best so far against the clock</h4><p>The best validation accuracy each search had found by each "
            f"minute (the search's own score of that trial), and that trial's test accuracy as it stands now (mean over "
            f"all its seeds, confirmation seeds included); ahead means a higher best validation accuracy.</p>{image(figures.best_so_far(curves, budget_s / 60), 'best so far against minutes')}{listed}")


def _checkpoints(ours: dict, theirs: dict, budget_s: float) -> list[str]:
    """At each checkpoint minute within the budget: both searches' best so far, and whether ours led."""
    items = []
    for minute in [m for m in CHECKPOINTS_MIN if m <= budget_s / 60 + 1e-9]:
        a, b = best_at(ours.get("best_so_far", []), minute), best_at(theirs.get("best_so_far", []), minute)
        items.append(f"at {minute} min: ours {_step(a)} vs Keras Tuner {_step(b)}: "
                     f"{verdict(a is not None and (b is None or a['val'] > b['val']))}")
    return items


def _step(step: dict | None) -> str:
    if step is None:
        return "nothing yet"
    test = "" if step.get("test") is None else f", test {step['test']:.4f}"
    return f"{step['val']:.4f} (trial {step['trial']}{test}, n = {step.get('seeds', 1)})"


def _memory(results: dict) -> str:
    rss, about = results["memory"]["peak_rss_mb"], _about(results, "memory")
    if len(rss) < 10:
        return (f"<h3>4. Memory</h3><p>Fewer than 10 trials logged their peak memory: run <code>{_again(results)}</code> "
                "again.</p>")
    growth = rss[-1] / rss[9] - 1
    return (f"<h3>4. Memory</h3>{_run_line(about)}<p>{len(rss)} quick trials in one <code>sweep run</code> (worker "
            f"processes recycled as shipped). Peak RSS of the process that ran the trial: trial 10 {rss[9]:.0f} MiB, "
            f"trial {len(rss)} {rss[-1]:.0f} MiB, highest {max(rss):.0f} MiB: <b>{growth:+.1%}</b> (target &lt; "
            f"{MEMORY_GROWTH_TARGET:.0%}: {verdict(growth < MEMORY_GROWTH_TARGET)}).</p>")


def _search_verdicts(results: dict, about: dict) -> str:
    """Ahead of Keras Tuner, the bar within BAR_WITHIN_S, the budget kept: each with what was measured."""
    rows, budget = results["search_quality"], about["budget_s"]
    ours = rows.get("optuna") or rows.get("optuna_tpe_pruned")
    if ours is None:
        return ""
    items = []
    tuner = rows.get("kerastuner_hyperband")
    if tuner is not None and ours["its_test_accuracy"] is not None:
        ahead = tuner["its_test_accuracy"] is None or ours["its_test_accuracy"] > tuner["its_test_accuracy"]
        theirs = "nothing" if tuner["its_test_accuracy"] is None else f"{tuner['its_test_accuracy']:.4f}"
        items.append(f"ahead of Keras Tuner Hyperband on test accuracy ({ours['its_test_accuracy']:.4f} vs {theirs}): "
                     f"{verdict(ahead)}")
    reach = ours["first_meeting_bar_s"]
    items.append(f"first trial meeting the bar finished {'never' if reach is None else _duration(reach)} after the "
                 f"command started (target ≤ {BAR_WITHIN_S} s): {verdict(reach is not None and reach <= BAR_WITHIN_S)}")
    items += _sampler_verdicts(rows)
    search_s = ours.get("search_wall_s", ours["wall_s"])
    after = (f"; its confirmation seeds took {_duration(ours['wall_s'] - search_s)} more"
             if ours["wall_s"] - search_s > 1 else "")
    items.append(f"wall clock of the search {_duration(search_s)} for a {_duration(budget)} budget (target ≤ budget + "
                 f"{BUDGET_SLACK_S} s): {verdict(search_s <= budget + BUDGET_SLACK_S)}{after}")
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _sampler_verdicts(rows: dict) -> list[str]:
    """For each search with both: whether the sampler's best trial beat the best baseline on validation."""
    items = []
    for key, row in rows.items():
        best = row.get("best_by_origin", {})
        if key in ENGINES and "baselines" in best and "sampler" in best:
            sampled, baseline = best["sampler"], best["baselines"]
            items.append(f"{esc(ENGINES[key])}: the sampler's best {_step(sampled)} vs the baselines' best "
                         f"{_step(baseline)}, above them on validation: {verdict(sampled['val'] > baseline['val'])}")
    return items


def _startup_note(results: dict, about: dict) -> str:
    """Say so when the budget ended before TPE stopped sampling at random: its model never chose a trial."""
    startup = about.get("tpe_startup_trials")
    tpe = results["search_quality"].get("optuna_tpe_pruned") or results["search_quality"].get("optuna")
    if startup is None or tpe is None or tpe["trials"] > startup:
        return ""
    return (f"<p>TPE samples its first {startup} trials at random (Optuna's <code>n_startup_trials</code>); it ran "
            f"{tpe['trials']} in this budget (the space's baselines included), so its model never chose a trial: what "
            f"it found came from the baselines, random picks and pruning. A longer budget lets the model-based search "
            f"start.</p>")


def _again(results: dict | None) -> str:
    """The command that measures again, as it runs where the user stands, on the space last measured."""
    spaces = [part["about"].get("space") for part in (results or {}).values() if isinstance(part, dict) and "about" in part]
    return esc(next_command("bench", next((s for s in spaces if s), "fashion_mlp")))


def bench_section(path: Path) -> str:
    """The benchmark as an HTML section; empty when ``make bench`` has not been run."""
    try:
        results = load_bench(path)
        if results is None:
            return ""
        if not any(part in results for part in ("overhead", "pruning", "search_quality", "memory", "efficiency")):
            raise KeyError("no part")
        return _section(results)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ("<section><h2>Benchmark</h2><p>reports/bench.json is incomplete or from an older version: "
                f"run <code>{_again(None)}</code> again.</p></section>")


def _section(results: dict) -> str:
    return (f"<section><h2>Benchmark (<code>{_again(results)}</code>)</h2><p>One sweep per row, so each row is a single "
            f"run (run it again to see the run-to-run spread); each part says when, on which space "
            f"and data it was measured. Raw numbers: <code>reports/bench.json</code>.</p>"
            f"{_overhead(results['overhead']) if 'overhead' in results else ''}"
            f"{_pruning(results) if 'pruning' in results else ''}"
            f"{_search(results) if 'search_quality' in results else ''}"
            f"{_memory(results) if 'memory' in results else ''}"
            f"{efficiency_section(results['efficiency'], _run_line(_about(results, 'efficiency'))) if 'efficiency' in results else ''}"
            "</section>")
