"""``make bench PARTS=efficiency``: what a search costs, counted in runs of the space's hand-written baseline.

The baseline (``sweep.baselines[N]``) is trained on several seeds by ``sweep run`` as a user runs it: its test
accuracies set the bar (their mean less the 95 % CI half-width) and the median seconds of one seeded run (build,
fit, test score: the run's ``wall_time_s``) the unit. Then each engine searches the space with no baselines queued,
one ``sweep run`` per search seed, one after the other, stopped by the bench (the last anytime point + 1) baseline
runs after its first trial started. A search's clock starts when its first trial starts (the interpreter's start,
imports and data loading are left out, as they are of the baseline's unit); from its best-so-far steps
(validation-selected, their test accuracy) come R★, the baseline runs until the model it holds reaches the bar,
and its best so far at each anytime point. The numbers are computed in :mod:`.curves`.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

from sweeps.bench.curves import ANYTIME_POINTS, bar_of, engine_summary, in_runs
from sweeps.bench.measure import machine
from sweeps.bench.quality import Command, best_so_far, completed, mean_test_accuracy, start_command, variant_file
from sweeps.bench.table_data import TABLE_PATH, write_table
from sweeps.errors import UsageError
from sweeps.results.read import collect
from sweeps.space.space import Space, parse_space
from sweeps.store.storage import JOURNAL, default_storage, open_storage
from sweeps.store.tracking import tracking_uri

# The searches compared, each with what it changes in the space's sweep section (never a baseline queued).
ENGINES: dict[str, tuple[str, dict]] = {
    "optuna": ("optuna", {"baselines": []}),  # TPE and the pruner as the space configures them
    "kerastuner_hyperband": ("kerastuner", {"baselines": []}),
    "random_search": ("optuna", {"sampler": {"name": "random"}, "pruner": {"name": "none"}, "baselines": []}),
}
QUICK_SUBSET = 2000  # training rows of a quick run (QUICK=1): a check that it works, not numbers to quote
# The sweep's own budget, in baseline runs: far past the last point, so no trial is fitted to it (the sweep fits a
# trial's epochs to its time left at the pace of its slowest epoch so far, the first's tracing included, and ends
# once it cut one); the bench stops the search itself once the measured span has passed.
SWEEP_BUDGET_RUNS = 50


@dataclass(frozen=True)
class EfficiencyOptions:
    """How much to measure: search seeds per engine (the baseline gets at least 2, for its interval), which
    baseline (1: the space's first), the engines, and ``quick`` (one seed, a small training sample)."""

    seeds: int = 3
    baseline: int = 1
    engines: tuple[str, ...] = tuple(ENGINES)
    quick: bool = False

    @property
    def search_seeds(self) -> int:
        return 1 if self.quick else self.seeds

    @property
    def baseline_seeds(self) -> int:
        return max(2, self.search_seeds)

    def subset(self, given: int | None) -> int | None:
        return min(given or QUICK_SUBSET, QUICK_SUBSET) if self.quick else given


def run_efficiency(space: Space, root: Path, subset: int | None, options: EfficiencyOptions, console: Console) -> dict:
    """Train the baseline, run every engine's searches, and summarise them in baseline runs (bench.json's
    ``efficiency`` part), in a throw-away folder under ``root/.sweeps/bench/``."""
    bench_root = root / ".sweeps" / "bench" / time.strftime("%Y%m%d-%H%M%S-efficiency")
    subset = options.subset(subset)
    about = {"space": space.name, "when": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "folder": str(bench_root)}
    console.print(f"bench efficiency of {space.name} in {bench_root} (subset {subset})")
    space = _portable(space, root, bench_root, console)
    baseline = train_baseline(space, bench_root / "baseline", subset, options, console)
    unit, bar = baseline["run_s"], baseline["bar"]["bar"]
    budget_s = (max(ANYTIME_POINTS) + 1) * unit
    console.print(f"efficiency: one baseline run {unit:.1f} s, bar {bar:.4f}; each search {budget_s:.0f} s", highlight=False)
    engines = {}
    for name in options.engines:
        runs = [search_run(space, bench_root / f"{name}-{i + 1}", name, space.spec.sweep.seed + i, budget_s, subset,
                           unit, console) for i in range(options.search_seeds)]
        engines[name] = engine_summary(runs, bar)
    return {"about": {**about, "subset": subset, "quick": options.quick, "points": list(ANYTIME_POINTS),
                      "budget_runs": max(ANYTIME_POINTS) + 1, "search_seeds": options.search_seeds},
            "baseline": baseline, "engines": engines}


def train_baseline(space: Space, root: Path, subset: int | None, options: EfficiencyOptions, console: Console) -> dict:
    """The chosen baseline alone, one trial on ``options.baseline_seeds`` seeds, by ``sweep run``: its test
    accuracy per seed, the bar, and the seconds of one run (the median; each seed's beside it)."""
    baselines = space.spec.sweep.baselines
    if not 1 <= options.baseline <= len(baselines):
        raise UsageError(f"bench --parts efficiency: {space.name} has {len(baselines)} baselines in sweep.baselines, "
                         f"so no baseline {options.baseline} (the search is measured against a hand-written one)")
    chosen = baselines[options.baseline - 1]
    alone = variant_file(space, root, {"baselines": [chosen.model_dump(exclude_defaults=True)], "confirm": 0,
                                       "repeats": options.baseline_seeds, "sampler": {"name": "random"},
                                       "pruner": {"name": "none"}, "warm_start": None})
    command = start_command(alone, root, None, subset, "optuna", trials=1, confirm=0, report=False)
    code = command.process.wait()
    (result,) = collect(open_storage(default_storage(root)), tracking_uri(root))
    seeds = result.repeats.sort_values("seed")
    if code != 0 or len(seeds) < options.baseline_seeds or seeds["test_accuracy"].isna().any():
        raise UsageError(f"bench --parts efficiency: the baseline did not train (exit status {code}); see {root / 'sweep.log'}")
    tests, walls = seeds["test_accuracy"].astype(float).tolist(), seeds["wall_time_s"].astype(float).tolist()
    row = {"index": options.baseline, "params": chosen.params, "epochs": seeds["epochs"].astype(int).tolist(),
           "seeds": seeds["seed"].astype(int).tolist(), "test_accuracy": tests,
           "run_s": round(statistics.median(walls), 2), "run_s_each": [round(w, 2) for w in walls],
           "bar": bar_of(tests)}
    console.print(f"  baseline {options.baseline}: {row}", highlight=False)
    return row


def search_run(space: Space, root: Path, engine: str, seed: int, budget_s: float, subset: int | None, unit_s: float,
               console: Console) -> dict:
    """One search of ``engine`` with search seed ``seed`` for ``budget_s``: its best-so-far steps in baseline runs
    (``unit_s`` seconds each) from its first trial's start, with the epochs trained by then."""
    name, change = ENGINES[engine]
    searched = variant_file(space, root, {**change, "seed": seed, "confirm": 0, "warm_start": None})
    command = start_command(searched, root, SWEEP_BUDGET_RUNS * unit_s, subset, name, confirm=0, report=False)
    stop_after_first_trial(command, budget_s)
    row = _summarise(command, seed, unit_s, console)
    row["steps"] = [step for step in row["steps"] if step["seconds"] <= budget_s]  # one ending as it was stopped: past
    return row


def stop_after_first_trial(command: Command, seconds: float) -> None:
    """Ask the search to stop (SIGTERM, as Ctrl-C: its trial in flight is left unfinished) ``seconds`` after its
    first trial started; wait for it to end."""
    first: float | None = None  # time.monotonic() at the first trial's start
    while command.process.poll() is None:
        time.sleep(1)
        started = _first_start(command.root) if first is None else None
        if started is not None:
            first = time.monotonic() - (datetime.now() - started).total_seconds()
        if first is not None and time.monotonic() - first > seconds:
            command.process.terminate()
            command.process.wait()


def _first_start(root: Path) -> datetime | None:
    """When the first trial of the project's study started (naive local time, as Optuna stamps it); None: none yet."""
    if not (root / JOURNAL).is_file():
        return None
    storage = open_storage(default_storage(root))
    starts = [t.datetime_start for summary in optuna.get_all_study_summaries(storage)
              for t in optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
              if t.datetime_start is not None]
    return min(starts) if starts else None


def _summarise(command: Command, seed: int, unit_s: float, console: Console) -> dict:
    code = command.process.wait()
    wall = time.monotonic() - command.start
    (result,) = collect(open_storage(default_storage(command.root)), tracking_uri(command.root))
    trials = result.trials
    first = trials["datetime_start"].min() if not trials.empty else command.started
    steps = best_so_far(trials, first, result.maximise)
    ended = trials.set_index("number")["datetime_complete"]
    for step in steps:  # its seconds unrounded (a step's minutes are rounded to 0.6 s: 3 % of a 20-s run)
        step["seconds"] = round((ended[step["trial"]] - first).total_seconds(), 2)
        step["epochs"] = epochs_by(trials, result.repeats, ended[step["trial"]])
    row = {"seed": seed, "exit_status": code, "trials": len(trials), "pruned": result.count("PRUNED"),
           "epochs": int(result.repeats["epochs"].sum()) if not result.repeats.empty else 0, "wall_s": round(wall, 1),
           "startup_s": round((first - command.started).total_seconds(), 1), "steps": in_runs(steps, unit_s),
           "picks": completed_picks(trials, unit_s)}
    console.print(f"  {command.root.name}: {row['trials']} trials ({row['pruned']} pruned), {row['epochs']} epochs, "
                  f"first trial {row['startup_s']} s after the start, exit {code}", highlight=False)
    return row


def completed_picks(trials: pd.DataFrame, unit_s: float) -> list[dict]:
    """Each completed trial: its number, its test accuracy (mean over its seeds) and what it cost, start to end, in
    baseline runs of ``unit_s`` seconds."""
    done = completed(trials).sort_values("number")
    return [{"trial": int(row["number"]), "runs": round((row["datetime_complete"] - row["datetime_start"]).total_seconds() / unit_s, 3),
             "test": mean_test_accuracy(row)} for _, row in done.iterrows()]


def epochs_by(trials: pd.DataFrame, repeats: pd.DataFrame, when: pd.Timestamp) -> int:
    """Epochs trained by every trial that had ended at ``when`` (that one included), pruned ones too: compute spent."""
    if repeats.empty:
        return 0
    ended = trials.loc[trials["datetime_complete"].notna() & (trials["datetime_complete"] <= when), "number"]
    return int(repeats.loc[repeats["trial"].isin(set(ended)), "epochs"].sum())


def _portable(space: Space, project: Path, bench_root: Path, console: Console) -> Space:
    """The space with its data file's path made absolute (each search runs in a folder of its own); the bench's
    own table written first when it is the one named and missing."""
    dataset = yaml.safe_load(space.text).get("dataset")
    if not isinstance(dataset, dict):
        return space
    path = project / dataset["path"]
    if not path.exists() and dataset["path"] == TABLE_PATH:
        console.print(f"efficiency: writing the bench's table to {write_table(path)}")
    data = yaml.safe_load(space.text)
    data["dataset"] = {**dataset, "path": str(path.resolve())}
    if dataset.get("test"):
        data["dataset"]["test"] = str((project / dataset["test"]).resolve())
    out = bench_root / "space" / space.path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return parse_space(out.read_text(), out)


def picks_text(engine: dict) -> str:
    """An engine's completed trials at the bar, of how many, and what one cost (older results have none)."""
    picks = engine.get("picks")
    if not picks or not picks["of"]:
        return "—"
    return f"{picks['reached']} of {picks['of']}, {picks['median_runs']:g} runs each (median)"


def print_efficiency(part: dict, console: Console) -> None:
    """R★ and the anytime table, one row per engine."""
    bar = part["baseline"]["bar"]
    table = Table(title=f"efficiency: baseline runs of {part['baseline']['run_s']} s; bar {bar['bar']:.4f} "
                        f"({bar['mean']:.4f} − {bar['ci95']:.4f}, n = {bar['n']})")
    table.add_column("engine", justify="left")
    table.add_column("R★ (median)", justify="right")
    for point in part["about"]["points"]:
        table.add_column(f"at {point:g}", justify="right")
    table.add_column("completed trials at the bar", justify="right")
    for name, engine in part["engines"].items():
        r_star = "not reached" if engine["r_star"] is None else f"{engine['r_star']:.2f}"
        cells = [f"{a['mean']:.4f} (n = {a['n']})" if a["n"] else "nothing yet" for a in engine["anytime"]]
        table.add_row(name, f"{r_star} ({engine['reached']}/{len(engine['r_star_seeds'])})", *cells, picks_text(engine))
    console.print(table)
