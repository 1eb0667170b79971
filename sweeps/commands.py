"""The ``sweep`` sub-commands, one function each: ``(args, root, console)`` in, an exit status (or None) out.

Each command imports what it uses when it runs, so that a command, and every worker process, starts without the
imports of the others (scipy, pandas and the report's for a worker; TensorFlow for ``status``). Which modules
stay TensorFlow-free is not left to where an import line sits: an import contract in pyproject.toml checks it,
and lists the commands that do import it.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sweeps.errors import UsageError
from sweeps.store.keys import ENGINES, study_name

if TYPE_CHECKING:
    from sweeps.search.options import SweepOptions
    from sweeps.space.space import Space

MODEL_SIZE, BUILD_REPORT = "sweeps.objective.model_check:model_size", "sweeps.reporting.build:build_report"  # named: both import TensorFlow


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m`` or ``2h``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"TIMEOUT={text!r}: expected a positive number of seconds, or e.g. 90s, 30m, 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _store_addresses(args: argparse.Namespace, root: Path) -> tuple[str, str]:
    """The storage URL and the MLflow tracking URI of this project folder (outside one: one line, exit 2, and no
    journal or MLflow store created)."""
    from sweeps.space.space import available
    from sweeps.store.storage import check_tracking, default_storage
    from sweeps.store.tracking import tracking_uri

    available(args.spaces_dir)
    url, tracking = args.storage or default_storage(root), tracking_uri(root)
    check_tracking(tracking)
    return url, tracking


def _stores(args: argparse.Namespace, root: Path):
    """The storage URL, the opened Optuna storage and the MLflow tracking URI of this project folder."""
    from sweeps.store.storage import open_storage

    url, tracking = _store_addresses(args, root)
    return url, open_storage(url), tracking


def _study_name(args: argparse.Namespace) -> str:
    return study_name(args.space, args.quick, args.engine)


def report(args: argparse.Namespace, root: Path, console, in_template: bool = False) -> None:
    """Rebuild reports/ from the stores of this project folder (nothing is created in a folder that is not one);
    ``in_template``: in a process forked from the workers' template, which has imported TensorFlow already (scoring
    the best checkpoint needs it)."""
    url, tracking = _store_addresses(args, root)  # opened once, where the report is built (after this, TensorFlow)
    folders = (root / "reports", root / ".sweeps" / "cache")
    from sweeps.execution.forked import call_frozen, call_in_template

    path = (call_in_template if in_template else call_frozen)(BUILD_REPORT, url, tracking, *folders)
    console.print(f"report: {path}")


def dashboard(args: argparse.Namespace, root: Path, console) -> None:
    """optuna-dashboard over this project's studies; the storage URL (a password with it) stays in this process,
    off every command line."""
    import signal

    import optuna_dashboard

    from sweeps.store.storage import masked

    url, storage, _ = _stores(args, root)  # one line, exit 2, outside a project folder
    console.print(f"optuna-dashboard over {masked(url)} on http://{args.host}:{args.port} (Ctrl-C stops it)")
    for sig in (signal.SIGINT, signal.SIGTERM):  # it holds nothing to save: ended at once, even mid-request
        signal.signal(sig, signal.SIG_DFL)
    optuna_dashboard.run_server(storage, host=args.host, port=args.port)


def sweep_options(args: argparse.Namespace) -> SweepOptions:
    """What the user chose on the command line for ``sweep run``."""
    from sweeps.search.options import SweepOptions

    return SweepOptions(trials=args.trials, timeout=parse_duration(args.timeout) if args.timeout else None,
                        quick=args.quick, storage=args.storage, engine=args.engine, tuner=args.tuner,
                        workers=args.workers, trials_per_process=args.trials_per_process or None, subset=args.subset,
                        keras_log=args.keras_log, extensions=args.extensions, cluster=args.cluster,
                        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, confirm=args.confirm,
                        notify=args.notify)


def trains_here(args: argparse.Namespace) -> bool:
    """Whether this process trains (a worker, or ``sweep run`` without worker processes), so that a stop waits
    for a batch boundary; a supervisor only waits for its workers."""
    from sweeps.search.options import SweepOptions

    if args.command != "run":
        return args.command == "worker"
    return not SweepOptions(engine=args.engine, workers=args.workers, trials_per_process=args.trials_per_process,
                            cluster=args.cluster).supervised


def _check_builder(space: Space, console, forked: bool = False) -> None:
    """A builder of the user's, or a built-in family on data of the user's (a cnn given a table, a stack of convs
    too deep for small images), is built once before anything is written or trained; a built-in family on a
    built-in dataset is checked by the space file's rules. Where the sweep's workers are ``forked`` from a template,
    the template builds it: this process never imports TensorFlow, and the template's import serves both."""
    from experiments.data.loading import builder_inputs
    from experiments.settings import is_built_in
    from sweeps.errors import BadModel
    from sweeps.space.space import check_cnn_size

    if is_built_in(space.spec.model) and isinstance(space.data, str):
        return
    shape, classes = builder_inputs(space.data)
    if space.spec.model == "cnn" and len(shape) == 3:  # every net the space can sample must fit these images
        try:
            check_cnn_size(space.spec, min(shape[:2]))
        except ValueError as exc:
            raise BadModel(f"{space.path}: {exc}") from None
    if forked:
        from sweeps.execution.forked import call_in_template
        size = call_in_template(MODEL_SIZE, space, shape, classes)
    else:
        from sweeps.objective.model_check import model_size  # TensorFlow: for a builder or data of the user's only
        size = model_size(space, shape, classes)
    console.print(f"model {space.spec.model}: builds, {size:,} parameters")


def run(args: argparse.Namespace, root: Path, console) -> int:
    """Run or continue a space's sweep (in worker processes unless told otherwise); then the refit and report."""
    from sweeps.execution.launch import start_sweep
    from sweeps.execution.local import start_template_if_forked
    from sweeps.reporting.output import check_writable
    from sweeps.space.space import load_space

    space = load_space(args.space, args.spaces_dir)
    options = sweep_options(args)
    if not args.no_report:
        check_writable(root / "reports")
    if args.workers > 1 and args.engine == "kerastuner":
        raise UsageError("--workers: the kerastuner engine runs in one process; use --engine optuna for workers")
    if args.cluster and args.engine == "kerastuner":
        raise UsageError("--cluster: the kerastuner engine runs in one process; use --engine optuna on a cluster")
    if space.spec.validation == "kfold" and args.engine == "kerastuner":
        raise UsageError(f"--engine kerastuner: {space.path.name} validates by kfold, which the optuna engine runs "
                         "(Keras Tuner's oracle scores a trial on one validation part); use --engine optuna")
    forked = start_template_if_forked(options)  # its imports (TensorFlow's) overlap this process's checks and stores
    _check_builder(space, console, forked)
    code = start_sweep(space, root, options, console)
    _print_winner(args, root, console)
    if args.refit and code == 0:
        refit(args, root, console)
    if not args.no_report:
        report(args, root, console, in_template=forked)
    return code


def _print_winner(args: argparse.Namespace, root: Path, console) -> None:
    """The sweep's last line: its best trial over all its seeds (confirmation seeds included)."""
    from sweeps.reporting.winner import winner_line
    from sweeps.results.read import collect_study

    _, storage, tracking = _stores(args, root)
    try:
        result = collect_study(storage, _study_name(args), tracking)
    except KeyError:  # no study: the sweep stopped before it began
        return
    if result is not None:
        console.print(winner_line(result), highlight=False)


def worker(args: argparse.Namespace, root: Path, console) -> int:
    """A worker process of ``sweep run``: the sweep its spec (in ``$SWEEPS_WORKER``) describes."""
    from sweeps import signals
    from sweeps.execution.forked import imports_frozen

    with imports_frozen():  # TensorFlow's, unless this worker was forked from the template that made them
        from sweeps.execution.spec import RECYCLE, WorkerSpec
        from sweeps.execution.worker_loop import run_worker
    signals.stop_with_parent()  # a worker never outlives the command that started it
    return RECYCLE if run_worker(WorkerSpec.from_env(), console) else 0


def bench(args: argparse.Namespace, root: Path, console) -> None:
    """Measure overhead, pruning, search quality, memory and efficiency; write reports/bench.json."""
    from sweeps.bench.efficiency import EfficiencyOptions, print_efficiency, run_efficiency
    from sweeps.bench.quality import PARTS, SEARCHES, print_bench, run_bench, save_bench
    from sweeps.space.space import load_space

    space, blog = load_space(args.space, args.spaces_dir), load_space("fashion_blog", args.spaces_dir)
    parts, searches = _choices(args.parts, PARTS, "--parts"), _choices(args.searches, tuple(SEARCHES), "--searches")
    others = tuple(part for part in parts if part != "efficiency")
    results = run_bench(space, blog, root, parse_duration(args.budget), args.trials, args.subset or None, console,
                        others, searches, args.together, args.confirm) if others else {}
    if "efficiency" in parts:  # its searches never queue baselines: optuna_no_baselines is its optuna
        engines = tuple(dict.fromkeys("optuna" if s == "optuna_no_baselines" else s for s in searches))
        results["efficiency"] = run_efficiency(space, root, args.subset or None, EfficiencyOptions(
            seeds=args.seeds, baseline=args.baseline, engines=engines, quick=args.quick), console)
        print_efficiency(results["efficiency"], console)
    print_bench(results, console)
    console.print(f"raw numbers: {save_bench(results, root / 'reports')}")
    report(args, root, console)  # its benchmark section


def _choices(text: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    chosen = tuple(c.strip() for c in text.split(",") if c.strip())
    wrong = [c for c in chosen if c not in allowed]
    if wrong or not chosen:
        raise UsageError(f"{option}={text!r}: expected a comma-separated list of {', '.join(allowed)}")
    return chosen


def check(args: argparse.Namespace, root: Path, console) -> None:
    """Validate a space file; with a study of it in the store, print hints to change it."""
    from sweeps.search.samplers import make_pruner, make_sampler
    from sweeps.space.space import load_space
    from sweeps.store.storage import default_storage

    space = load_space(args.space, args.spaces_dir)
    make_sampler(space), make_pruner(space)  # their options, checked as `sweep run` checks them
    _check_builder(space, console)  # data of the user's is read and verified there too
    console.print(f"{space.path}: ok")
    if args.storage is None and not Path(default_storage(root)).is_file():
        return  # no study anywhere yet: nothing to read hints from (and no journal created by asking)
    _print_hints(args, root, space.name, console)


def _print_hints(args: argparse.Namespace, root: Path, space: str, console) -> None:
    """The hints of each engine's study of ``space`` to change its file."""
    import optuna

    from sweeps.results.hints import hints
    from sweeps.results.read import collect_study

    _, storage, tracking = _stores(args, root)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    for name in (study_name(space, engine=engine) for engine in ENGINES):
        result = collect_study(storage, name, tracking) if name in names else None
        if result is not None:
            found = hints(result.space, result.trials, result.importances, result.maximise)
            console.print(f"study {name}: {len(found) or 'no'} hint{'' if len(found) == 1 else 's'}"
                          f" from {result.count('COMPLETE')} completed trials")
            for hint in found:
                console.print(f"  {hint}")


def status(args: argparse.Namespace, root: Path, console) -> int:
    """Trials by state, runs by status, and every mismatch between the stores (exit status 1 on one)."""
    from sweeps.search.curation import status_lines
    from sweeps.search.study import existing_study
    from sweeps.store.status import print_status

    url, storage, tracking = _stores(args, root)
    study, _, tracker = existing_study(_study_name(args), storage, url, tracking)
    found = print_status(study, tracker, console)
    for line in status_lines(study):  # curation by hand: excluded trials, queued ones, the best
        console.print(line, highlight=False, markup=False)
    return 1 if found else 0


def enqueue(args: argparse.Namespace, root: Path, console) -> None:
    """Queue a configuration (``--set NAME=VALUE``, the rest sampled) into the space's study: the next worker
    trains it."""
    from sweeps.next_command import next_command
    from sweeps.search.curation import enqueue, parse_assignments
    from sweeps.search.study import existing_study
    from sweeps.space.space import load_space

    if args.engine == "kerastuner":
        raise UsageError("sweep enqueue: Keras Tuner's oracle picks every trial itself and takes no queued "
                         "configuration; queue into the optuna engine's study (leave out --engine)")
    params = parse_assignments(load_space(args.space, args.spaces_dir), args.set or [])
    url, storage, tracking = _stores(args, root)
    enqueue(existing_study(_study_name(args), storage, url, tracking)[0], params)
    given = ", ".join(f"{k}={v}" for k, v in params.items())
    console.print(f"queued into {_study_name(args)}: {given} (the other params sampled); a running sweep trains it "
                  f"next, else `{next_command('run', args.space, quick=args.quick)}`",
                  highlight=False, markup=False)


def curate(args: argparse.Namespace, root: Path, console) -> None:
    """``sweep exclude``: keep a completed trial out of best (its record kept); ``sweep include``: undo it."""
    from sweeps.search.curation import exclude, include, standing
    from sweeps.search.study import existing_study

    url, storage, tracking = _stores(args, root)
    study, _, tracker = existing_study(_study_name(args), storage, url, tracking)
    if args.command == "exclude":
        exclude(study, args.trial, args.reason)
        lines = [f"trial {args.trial} excluded from best: {args.reason.strip()}"]
    else:
        lines = [f"trial {args.trial} included again (it was excluded: {include(study, args.trial)})"]
    for line in lines + standing(study, tracker.client):
        console.print(line, highlight=False, markup=False)  # a reason is the user's text, not rich markup


def predict(args: argparse.Namespace, root: Path, console) -> None:
    """Predict an image, a CSV of rows or a test example with a study's best model."""
    from sweeps.predict import predict

    url, storage, tracking = _stores(args, root)
    predict(_study_name(args), storage, url, tracking, root / ".sweeps" / "cache", console,
            image=args.image, test_index=args.from_test, rows=args.rows, out=args.out)


def bench_scale(args: argparse.Namespace, root: Path, console) -> None:
    """Grow simulated studies through the sizes and worker counts; write reports/bench_scale.json."""
    from sweeps.bench.scale import SPACE, print_scale, run_bench_scale, save_scale
    from sweeps.space.space import load_space

    load_space(SPACE, args.spaces_dir)  # the space it grows, here: one line, exit 2, outside this repository

    def numbers(text: str, flag: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            raise UsageError(f"{flag} {text!r}: expected whole numbers separated by commas, e.g. 100,300,1000") from None
        if not values or min(values) < 1 or list(values) != sorted(set(values)):
            raise UsageError(f"{flag} {text!r}: expected increasing whole numbers ≥ 1")
        return values

    sizes = numbers(args.sizes, "--sizes") + ((3000,) if args.full else ())
    if args.servers and (args.storage or os.environ.get("MLFLOW_TRACKING_URI")):
        raise UsageError("--servers starts its own PostgreSQL and MLflow server: leave out --storage and "
                         "MLFLOW_TRACKING_URI (or leave out --servers to use yours)")
    if args.cluster == "ray" and not args.servers and not (args.storage and os.environ.get("MLFLOW_TRACKING_URI")):
        raise UsageError("bench-scale --cluster ray: the nodes need a shared study and MLflow store: add --servers "
                         "(or give --storage postgresql://… and MLFLOW_TRACKING_URI=http://…)")
    results = run_bench_scale(root, tuple(sorted(set(sizes))), numbers(args.workers, "--workers"), console,
                              args.storage, args.servers, args.cluster == "ray")
    print_scale(results, console)
    console.print(f"results: {save_scale(results, root / 'reports')}")
    report(args, root, console)


def refit(args: argparse.Namespace, root: Path, console) -> None:
    """Train a study's best config again on training + validation images and register it."""
    from sweeps.refit import refit

    url, storage, tracking = _stores(args, root)
    with tempfile.TemporaryDirectory(prefix="refit-") as workdir:
        refit(_study_name(args), storage, url, tracking, Path(workdir), console)


def reproduce(args: argparse.Namespace, root: Path, console) -> None:
    """Train a trial's params again with its seeds and compare with what was logged."""
    from sweeps.reproduce import reproduce

    url, storage, tracking = _stores(args, root)
    with tempfile.TemporaryDirectory(prefix="reproduce-") as workdir:
        reproduce(_study_name(args), args.trial, storage, url, tracking, Path(workdir), console)


def list_spaces(args: argparse.Namespace, root: Path, console) -> None:
    """The space files and whether each is valid."""
    from sweeps.errors import SpaceError
    from sweeps.space.space import available, load_space

    for name in available(args.spaces_dir):
        try:
            space = load_space(name, args.spaces_dir)
            console.print(f"{name:<16} {space.spec.description}", highlight=False)
        except SpaceError as exc:
            console.print(f"{name:<16} [red]invalid[/]: {exc}", highlight=False)


def init(args: argparse.Namespace, root: Path, console) -> None:
    """Start a project folder: a space file, a model builder, a README; nothing overwritten."""
    from sweeps.starter import write_project

    folder = (root / args.folder).resolve()
    for path in write_project(folder, args.data):
        console.print(f"wrote {path}")
    console.print(f"next: cd {folder} && sweep check example && sweep run example --quick && "
                  "sweep status example --quick")
