"""``make bench``: what the framework costs per epoch and what it finds per CPU-minute, side by side. Not a test.

Every run goes to its own throw-away project under ``.sweeps/bench/`` (own studies, own MLflow store), on the
same data sample and seeds; the raw numbers land in ``reports/bench.json``.
"""

from __future__ import annotations

import inspect
import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import optuna
import pandas as pd
import yaml
from optuna.samplers import TPESampler
from rich.console import Console
from rich.table import Table

from experiments.data.loading import load_dataset
from experiments.models import build_model
from experiments.train import compile_model
from sweeps.bench.measure import machine, peak_rss_per_trial, sweep_command
from sweeps.execution.launch import start_sweep
from sweeps.reporting.bench_page import ENGINES, OVERHEAD_TARGET, PRUNING, bench_rows
from sweeps.reporting.output import write_file
from sweeps.results.read import collect
from sweeps.results.study_results import meets_target
from sweeps.search.options import SweepOptions
from sweeps.space.space import TRAIN_KEYS, Space, parse_space
from sweeps.store.keys import CONFIRMS, QUICK, TRIAL_RUN
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.tracking import Tracker, tracking_uri


def _sweep(space: Space, root: Path, options: SweepOptions, console: Console) -> dict:
    """Run one sweep in its own project folder and summarise it from its stores."""
    root.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    start_sweep(space, root, options, Console(quiet=True))
    wall = time.monotonic() - start
    (result,) = collect(open_storage(default_storage(root)), tracking_uri(root))
    row = _summary(result, wall)
    reach = result.time_to_target()
    row["first_meeting_bar_s"] = None if reach is None else round(reach, 1)
    console.print(f"  {root.name}: {row}", highlight=False)
    return row


@dataclass
class Command:
    """A ``sweep run`` started by the benchmark in its own project folder."""

    space: Space
    root: Path
    budget_s: float | None
    process: subprocess.Popen
    started: pd.Timestamp
    start: float
    ended: float | None = None  # time.monotonic() when it was seen to end

    def poll(self) -> bool:
        """Whether it has ended (its end time is noted the first time it is seen)."""
        if self.ended is None and self.process.poll() is not None:
            self.ended = time.monotonic()
        return self.ended is not None


def start_command(space: Space, root: Path, budget_s: float | None, subset: int | None, engine: str,
                  trials: int = 10_000, quick: bool = False, confirm: int | None = None, report: bool = True) -> Command:
    """Start ``sweep run`` as a user would (a fresh interpreter, imports and data loading timed) in its own project
    folder, its output in ``sweep.log`` there; ``confirm``: its confirmation seeds (None: the space's); ``report``:
    whether it builds its report at the end."""
    (root / "search_spaces").mkdir(parents=True, exist_ok=True)
    (root / "search_spaces" / space.path.name).write_text(space.text)
    argv = [*sweep_command("run", space.name), "--trials", str(trials), "--engine", engine,
            *(["--timeout", f"{budget_s:g}"] if budget_s else []), *(["--subset", str(subset)] if subset else []),
            *(["--quick"] if quick else []), *(["--confirm", str(confirm)] if confirm is not None else []),
            *([] if report else ["--no-report"])]
    with open(root / "sweep.log", "w") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(argv, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "SWEEPS_SPACES_DIR": str(root / "search_spaces")})
    return Command(space, root, budget_s, process, pd.Timestamp.now(), time.monotonic())


def finish_command(command: Command, console: Console) -> dict:
    """Wait for a started command and summarise its sweep from its stores; the time to the bar and the best so far
    count from the command's start."""
    code = command.process.wait()
    wall = (command.ended or time.monotonic()) - command.start
    root, space = command.root, command.space
    (result,) = collect(open_storage(default_storage(root)), tracking_uri(root))
    row = _summary(result, wall)
    bar = result.trials[result.trials["state"] == "COMPLETE"]
    bar = bar[[meets_target(r, space.spec.target) is True for _, r in bar.iterrows()]]
    row["first_meeting_bar_s"] = None if bar.empty else round((bar["datetime_complete"].min() - command.started).total_seconds(), 1)
    row.update(exit_status=code, budget_s=command.budget_s, peak_rss_mb=peak_rss_per_trial(tracking_uri(root), result.name),
               stop_reasons=result.trials["stop_reason"].fillna("").tolist() if "stop_reason" in result.trials else [],
               best_so_far=best_so_far(result.trials, command.started, result.maximise),
               best_by_origin=best_by_origin(result.trials, result.maximise),
               search_wall_s=round(_search_seconds(root, result.name, command.started, wall), 1))
    console.print(f"  {root.name}: { {k: v for k, v in row.items() if k != 'best_so_far'} }", highlight=False)
    return row


def command_row(space: Space, root: Path, budget_s: float | None, subset: int | None, engine: str,
                console: Console, trials: int = 10_000, quick: bool = False, confirm: int | None = None) -> dict:
    """Run ``sweep run`` to its end in its own project folder (see :func:`start_command`) and summarise it."""
    return finish_command(start_command(space, root, budget_s, subset, engine, trials, quick, confirm), console)


def _search_seconds(root: Path, study: str, started: pd.Timestamp, wall: float) -> float:
    """Seconds from the command's start to the end of its search: to the start of its confirmation, when it ran one."""
    trials = optuna.load_study(study_name=study, storage=open_storage(default_storage(root))).get_trials(deepcopy=False)
    begun = [t.datetime_start for t in trials if CONFIRMS in t.user_attrs and t.datetime_start is not None]
    return min((pd.Timestamp(min(begun)) - started).total_seconds(), wall) if begun else wall


def completed(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials (a study's frame) that completed with a value: the ones a search can hold as its model."""
    return trials[(trials["state"] == "COMPLETE") & trials["value"].notna()]


def mean_test_accuracy(row: pd.Series) -> float | None:
    """A trial's test accuracy, the mean over its seeds (None when it has none)."""
    test = row.get("test_accuracy_mean")
    return None if pd.isna(test) else float(test)


def best_so_far(trials: pd.DataFrame, started: pd.Timestamp, maximise: bool) -> list[dict]:
    """Each time a completed trial beat the best before it: the minutes since the command started, its validation
    score, its test accuracy (mean over its seeds) and the seed count."""
    steps: list[dict] = []
    for _, row in completed(trials).sort_values("datetime_complete").iterrows():
        if steps and (row["value"] <= steps[-1]["val"] if maximise else row["value"] >= steps[-1]["val"]):
            continue
        steps.append({"minutes": round((row["datetime_complete"] - started).total_seconds() / 60, 2),
                      "val": float(row["value"]), "test": mean_test_accuracy(row),
                      "seeds": int(row["n_repeats"]) if pd.notna(row.get("n_repeats")) else 0,
                      "trial": int(row["number"]), "found_by": row.get("found_by")})
    return steps


def best_by_origin(trials: pd.DataFrame, maximise: bool) -> dict[str, dict]:
    """The best completed trial the space's baselines gave and the best the sampler chose: its number, validation
    score, test accuracy (mean over its seeds) and seed count."""
    done = completed(trials)
    origin = done["found_by"].fillna("").map(lambda by: "baselines" if by.startswith("baseline") else by)
    best = {}
    for name in ("baselines", "sampler"):
        mine = done[origin == name].sort_values("value", ascending=not maximise)
        if not mine.empty:
            row = mine.iloc[0]
            best[name] = {"trial": int(row["number"]), "val": float(row["value"]), "test": mean_test_accuracy(row),
                          "seeds": int(row["n_repeats"])}
    return best


def _summary(result, wall: float) -> dict:
    best = result.best()
    row = {"trials": len(result.trials), "pruned": result.count("PRUNED"), "epochs": int(result.repeats["epochs"].sum()),
           "wall_s": round(wall, 1), "seeds": None if best is None else int(best["n_repeats"])}
    for name, column in (("best_val", "value"), ("its_test_accuracy", "test_accuracy"), ("its_test_loss", "test_loss")):
        row[name] = None if best is None else float(best[f"{column}_mean"])
        row[f"{name}_std"] = None if best is None or pd.isna(best[f"{column}_std"]) else float(best[f"{column}_std"])
    return row


def _tpe_startup_trials(space: Space) -> int | None:
    """How many first trials TPE samples at random (then it is random search with the same seed)."""
    sampler = space.spec.sweep.sampler
    if sampler.name != "tpe":
        return None
    return sampler.options.get("n_startup_trials", inspect.signature(TPESampler).parameters["n_startup_trials"].default)


def _plain_epoch_times(space: Space, params: dict, data, epochs: int) -> list[float]:
    """Seconds per epoch of the same model trained by a plain Keras script: no tracking, no checkpoints (compiled
    alike, so the ratio is what the framework adds)."""
    model_params, settings = space.resolve(params)
    keras.backend.clear_session()
    keras.utils.set_random_seed(space.spec.sweep.seed)
    model = build_model(space.spec.model, model_params, data.input_shape, data.num_classes)
    compile_model(model, settings, len(data.y_train))
    starts: list[float] = []
    times: list[float] = []
    timer = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: starts.append(time.perf_counter()),
                                           on_epoch_end=lambda e, logs: times.append(time.perf_counter() - starts[-1]))
    model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=epochs,
              batch_size=settings.batch_size, callbacks=[timer], verbose=0)
    return times


def _fixed(space: Space, params: dict, epochs: int) -> Space:
    """The same space with ``params`` fixed and nothing left to search."""
    data = yaml.safe_load(space.text)
    for name, value in params.items():
        data.setdefault("train" if name in TRAIN_KEYS else "fixed", {})[name] = value
    data["params"] = {}
    data.setdefault("train", {})["epochs"] = epochs
    data.setdefault("sweep", {}).update(sampler={"name": "random"}, pruner={"name": "none"}, repeats=1)
    return parse_space(yaml.safe_dump(data), space.path)


def overhead(space: Space, params: dict, root: Path, subset: int | None, epochs: int, console: Console) -> dict:
    """Median seconds per epoch (first epoch excluded) of one config: plain Keras vs one trial of the framework
    (MLflow logging, checkpointing, pruning callback and all)."""
    fixed = _fixed(space, params, epochs)
    spec = fixed.spec
    data = load_dataset(fixed.data, spec.validation, spec.val_size, spec.sweep.seed, subset)
    plain = _plain_epoch_times(fixed, {}, data, epochs)
    _sweep(fixed, root / "overhead", SweepOptions(trials=1, subset=subset, confirm=0), console)
    tracker = Tracker(tracking_uri(root / "overhead"), fixed.name, create=False)
    run_id = tracker.runs(kind=TRIAL_RUN)["run_id"].iloc[0]
    framework = tracker.metric_history(run_id, ("epoch_time_s",))["epoch_time_s"].tolist()
    plain_s, framework_s = statistics.median(plain[1:]), statistics.median(framework[1:])
    return {"space": space.name, "config": params, "epochs": epochs, "seed": spec.sweep.seed,
            "plain_s_per_epoch": round(plain_s, 3), "framework_s_per_epoch": round(framework_s, 3),
            "ratio": round(framework_s / plain_s, 3), "plain_epoch_s": [round(t, 3) for t in plain],
            "framework_epoch_s": [round(t, 3) for t in framework]}


PARTS = ("overhead", "pruning", "search", "memory", "efficiency")  # efficiency: sweeps.bench.efficiency
MEMORY_TRIALS = 100  # quick trials of the memory part: peak RSS at trial 10 against trial 100
SEARCHES = {"optuna": "optuna", "optuna_no_baselines": "optuna", "kerastuner_hyperband": "kerastuner",
            "random_search": "optuna"}
# Searches of a changed copy of the space: what each changes in its sweep section.
VARIANTS: dict[str, dict] = {
    "random_search": {"sampler": {"name": "random"}, "pruner": {"name": "none"}, "baselines": []},
    "optuna_no_baselines": {"baselines": []},  # a user with no prior: the sampler from the first trial
}


def run_bench(space: Space, blog: Space, root: Path, budget_s: float, trials: int, subset: int | None,
              console: Console, parts: tuple[str, ...] = PARTS, searches: tuple[str, ...] = tuple(SEARCHES),
              together: bool = False, confirm: int | None = None) -> dict:
    """The chosen measurements; returns (and the caller saves) the raw numbers. The overhead is measured on the
    blog's final CNN (``blog`` with dropout 0.3), the rest on ``space``. Each search is a ``sweep run`` command
    of its own with the same budget, run one after the other so none shares the cores (``together``: at once),
    its winner confirmed on ``confirm`` seeds (None: the space's)."""
    bench_root = root / ".sweeps" / "bench" / time.strftime("%Y%m%d-%H%M%S")
    if space.spec.sweep.warm_start:  # each run is a fresh project: no earlier study to copy from
        space = variant_file(space, bench_root, {"warm_start": None})
        console.print("bench: the space's sweep.warm_start is left out (every run starts cold in a project of its own)")
    console.print(f"bench of {space.name} in {bench_root} (subset {subset}, {trials} trials, {budget_s:.0f} s budget)")
    about = {"space": space.name, "subset": subset, "when": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
             "folder": str(bench_root)}
    results: dict = {}
    if "overhead" in parts:
        results["overhead"] = overhead(blog, {"dropout": 0.3}, bench_root, subset, epochs=5, console=console)
    if "pruning" in parts:
        fixed_trials = SweepOptions(trials=trials, subset=subset, timeout=None, confirm=0)
        results["pruning"] = {
            "about": {**about, "pruning_trials": trials, "pruner": space.spec.sweep.pruner.name},
            "with_pruner": _sweep(space, bench_root / "pruned", fixed_trials, console),
            # A space file of its own: the sweep's worker processes read the space from its file.
            "without_pruner": _sweep(variant_file(space, bench_root / "unpruned", {"pruner": {"name": "none"}}),
                                     bench_root / "unpruned", fixed_trials, console),
        }
    if "search" in parts:
        results["search_quality"] = {"about": {**about, "budget_s": budget_s, "together": together,
                                               "tpe_startup_trials": _tpe_startup_trials(space),
                                               "confirm": space.spec.sweep.confirm if confirm is None else confirm},
                                     **_searches(space, bench_root, budget_s, subset, searches, together, confirm, console)}
    if "memory" in parts:
        results["memory"] = {"about": {**about, "subset": QUICK["subset"]},
                             **command_row(space, bench_root / "memory", None, None, "optuna", console,
                                             trials=MEMORY_TRIALS, quick=True, confirm=0)}
    return results


def _searches(space: Space, bench_root: Path, budget_s: float, subset: int | None, searches: tuple[str, ...],
              together: bool, confirm: int | None, console: Console) -> dict[str, dict]:
    """Each search as a ``sweep run`` of its own: one after the other (none shares the cores), or all at once
    (sharing them, as on a busy machine)."""
    def start(name: str) -> Command:
        searched = variant_file(space, bench_root / name, VARIANTS[name]) if name in VARIANTS else space
        return start_command(searched, bench_root / name, budget_s, subset, SEARCHES[name], confirm=confirm)

    if together:
        started = {name: start(name) for name in searches}
        while not all([command.poll() for command in started.values()]):  # each one's end, as it happens
            time.sleep(0.5)
        return {name: finish_command(command, console) for name, command in started.items()}
    return {name: finish_command(start(name), console) for name in searches}


def variant_file(space: Space, root: Path, sweep: dict) -> Space:
    """The space with its sweep section changed by ``sweep``, as a space file of its own."""
    data = yaml.safe_load(space.text)
    data.setdefault("sweep", {}).update(sweep)
    path = root / "variant" / space.path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return parse_space(path.read_text(), path)


def print_bench(results: dict, console: Console) -> None:
    """The measurements that were run, as tables."""
    if "overhead" in results:
        o = results["overhead"]
        console.print(f"framework overhead: {o['framework_s_per_epoch']} s/epoch vs plain Keras {o['plain_s_per_epoch']} "
                      f"s/epoch = {o['ratio']}x (target ≤ {OVERHEAD_TARGET}x)")
    for title, key, names in (("pruning (same trials)", "pruning", PRUNING),
                              ("search quality (same budget)", "search_quality", ENGINES)):
        if key not in results:
            continue
        rows = results[key]
        frame = bench_rows(rows, names)
        table = Table(title=title)
        for column in frame.columns:
            table.add_column(column, justify="left" if column == "run" else "right")
        for row in frame.itertuples(index=False):
            table.add_row(*[str(v) for v in row])
        console.print(table)


def save_bench(results: dict, reports_dir: Path) -> Path:
    """Write the parts just measured into reports/bench.json, keeping the other parts of earlier runs."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    out = reports_dir / "bench.json"
    try:
        earlier = json.loads(out.read_text()) if out.is_file() else {}
    except ValueError:
        earlier = {}  # a half-written file: start again
    merged = {key: value for key, value in earlier.items() if key in ("overhead", "pruning", "search_quality", "memory", "efficiency")}
    write_file(out, json.dumps({**merged, **results}, indent=2, default=str))
    return out
