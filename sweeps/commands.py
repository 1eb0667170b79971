"""The ``sweep`` sub-commands, one function each: ``(args, root, console)`` in, an exit status (or None) out."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from pathlib import Path

from sweeps.errors import UsageError
from sweeps.store.records import ENGINES


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m`` or ``2h``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"TIMEOUT={text!r}: expected a positive number of seconds, or e.g. 90s, 30m, 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _stores(args: argparse.Namespace, root: Path):
    """The storage URL, the opened Optuna storage and the MLflow tracking URI."""
    from sweeps.store.storage import check_tracking, default_storage, open_storage
    from sweeps.store.tracking import tracking_uri

    url = args.storage or default_storage(root)
    tracking = tracking_uri(root)
    check_tracking(tracking)
    return url, open_storage(url), tracking


def _study_name(args: argparse.Namespace) -> str:
    from sweeps.store.records import study_name

    return study_name(args.space, args.quick, args.engine)


def report(args: argparse.Namespace, root: Path, console) -> None:
    """Rebuild reports/ from the stores."""
    from sweeps.report.build import build_report

    _, storage, tracking = _stores(args, root)
    path = build_report(storage, tracking, root / "reports", root / ".sweeps" / "cache")
    console.print(f"report: {path}")


def run(args: argparse.Namespace, root: Path, console) -> int:
    """Run or continue a space's sweep (in worker processes unless told otherwise); then the refit and report."""
    from sweeps.search.space import load_space
    from sweeps.search.study import SweepOptions, open_study
    from sweeps.search.supervisor import RECYCLE

    space = load_space(args.space, args.spaces_dir)
    timeout = parse_duration(args.timeout) if args.timeout else None
    if not args.no_report:
        from sweeps.report.output import check_writable

        check_writable(root / "reports")
    code = 0
    if args.workers > 1 and args.engine == "kerastuner":
        raise UsageError("--workers: the kerastuner engine runs in one process; use --engine optuna for workers")
    if args.workers > 1:
        from sweeps.search.workers import run_workers
        from sweeps.store.storage import check_tracking
        from sweeps.store.tracking import Tracker

        _, storage, tracking = _stores(args, root)
        check_tracking(tracking)
        study = open_study(space, storage, args.quick, console)  # created once, before the workers race to them:
        Tracker(tracking, study.study_name)                      # the study, the MLflow store and its experiment
        argv = ["--spaces-dir", str(args.spaces_dir), "run", args.space,
                "--no-report", *(["--trials", str(args.trials)] if args.trials else []),
                *(["--timeout", args.timeout] if args.timeout else []), *(["--quick"] if args.quick else []),
                *(["--simulate"] if args.simulate else [])]
        code = run_workers(argv, args.workers, console, args.storage)
    else:
        options = SweepOptions(trials=args.trials, timeout=timeout, quick=args.quick, storage=args.storage,
                               worker_index=args.worker_index, engine=args.engine, tuner=args.tuner, subset=args.subset,
                               trials_per_process=args.trials_per_process or None, sweep_run=args.sweep_run,
                               deadline_at=args.deadline_at, keras_log=args.keras_log, simulate=args.simulate)
        if args.sweep_run:  # a worker of the supervisor below
            from sweeps.search.sweep import run_sweep

            return RECYCLE if run_sweep(space, root, options, console) else 0
        if supervises(args):
            from sweeps.search.supervisor import supervise

            code = supervise(space, root, options, _worker_argv(args), console)
        else:  # Keras Tuner keeps its search state in this process
            from sweeps.search.sweep import run_sweep

            run_sweep(space, root, dataclasses.replace(options, trials_per_process=None), console)
    if args.refit and code == 0:
        refit(args, root, console)
    if not args.no_report:
        report(args, root, console)
    return code


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The ``sweep`` arguments of a worker process: the same run, no report (the supervisor builds it); the
    storage goes in its environment."""
    return ["--spaces-dir", str(args.spaces_dir), "run", args.space, "--no-report",
            "--worker-index", str(args.worker_index), *(["--trials", str(args.trials)] if args.trials else []),
            *(["--quick"] if args.quick else []),
            *(["--subset", str(args.subset)] if args.subset else []), *(["--keras-log"] if args.keras_log else []),
            *(["--simulate"] if args.simulate else [])]


def bench(args: argparse.Namespace, root: Path, console) -> None:
    """Measure overhead, pruning, search quality and memory; write reports/bench.json."""
    from sweeps.bench import PARTS, SEARCHES, print_bench, run_bench, save_bench
    from sweeps.search.space import load_space

    space, blog = load_space(args.space, args.spaces_dir), load_space("fashion_blog", args.spaces_dir)
    parts, searches = _choices(args.parts, PARTS, "--parts"), _choices(args.searches, tuple(SEARCHES), "--searches")
    results = run_bench(space, blog, root, parse_duration(args.budget), args.trials, args.subset or None, console,
                        parts, searches)
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
    from sweeps.search.space import load_space

    space = load_space(args.space, args.spaces_dir)
    console.print(f"{space.path}: ok")
    from sweeps.store.storage import default_storage

    if args.storage is None and not Path(default_storage(root)).is_file():
        return  # no study anywhere yet: nothing to read hints from (and no journal created by asking)
    import optuna

    from sweeps.report.read import collect_study
    from sweeps.search.hints import hints
    from sweeps.store.records import study_name

    _, storage, tracking = _stores(args, root)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    for name in (study_name(space.name, engine=engine) for engine in ENGINES):
        result = collect_study(storage, name, tracking) if name in names else None
        if result is not None:
            found = hints(result.space, result.trials, result.importances, result.maximise)
            console.print(f"study {name}: {len(found) or 'no'} hint{'' if len(found) == 1 else 's'}"
                          f" from {result.count('COMPLETE')} completed trials")
            for hint in found:
                console.print(f"  {hint}")


def status(args: argparse.Namespace, root: Path, console) -> int:
    """Trials by state, runs by status, and every mismatch between the stores (exit status 1 on one)."""
    from sweeps.search.study import existing_study
    from sweeps.store.status import print_status

    url, storage, tracking = _stores(args, root)
    study, _, tracker = existing_study(_study_name(args), storage, url, tracking)
    return 1 if print_status(study, tracker, console) else 0


def predict(args: argparse.Namespace, root: Path, console) -> None:
    """Classify an image with a study's best model."""
    from sweeps.reuse import predict

    url, storage, tracking = _stores(args, root)
    predict(_study_name(args), storage, url, tracking, root / ".sweeps" / "cache", console,
            image=args.image, test_index=args.from_test)


def bench_scale(args: argparse.Namespace, root: Path, console) -> None:
    """Grow simulated studies through the sizes and worker counts; write reports/bench_scale.json."""
    from sweeps.bench_scale import print_scale, run_bench_scale, save_scale

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
    results = run_bench_scale(root, tuple(sorted(set(sizes))), numbers(args.workers, "--workers"), console,
                              args.storage, args.servers)
    print_scale(results, console)
    console.print(f"results: {save_scale(results, root / 'reports')}")
    report(args, root, console)


def refit(args: argparse.Namespace, root: Path, console) -> None:
    """Train a study's best config again on training + validation images and register it."""
    import tempfile

    from sweeps.refit import refit

    url, storage, tracking = _stores(args, root)
    with tempfile.TemporaryDirectory(prefix="refit-") as workdir:
        refit(_study_name(args), storage, url, tracking, Path(workdir), console)


def reproduce(args: argparse.Namespace, root: Path, console) -> None:
    """Train a trial's params again with its seeds and compare with what was logged."""
    import tempfile

    from sweeps.reuse import reproduce

    url, storage, tracking = _stores(args, root)
    with tempfile.TemporaryDirectory(prefix="reproduce-") as workdir:
        reproduce(_study_name(args), args.trial, storage, url, tracking, Path(workdir), console)


def list_spaces(args: argparse.Namespace, root: Path, console) -> None:
    """The space files and whether each is valid."""
    from sweeps.search.space import SpaceError, available, load_space

    for name in available(args.spaces_dir):
        try:
            space = load_space(name, args.spaces_dir)
            console.print(f"{name:<16} {space.spec.description}", highlight=False)
        except SpaceError as exc:
            console.print(f"{name:<16} [red]invalid[/]: {exc}", highlight=False)


def supervises(args: argparse.Namespace) -> bool:
    """Whether ``sweep run`` leaves the training to worker processes (and only waits for them)."""
    return (args.command == "run" and not args.sweep_run and args.engine == "optuna"
            and (args.workers > 1 or args.trials_per_process > 0))
