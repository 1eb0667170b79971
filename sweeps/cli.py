"""Command line: ``sweep run|status|report|bench|predict|reproduce|refit|list|check`` (``sweep -h``; the Makefile wraps each).

User mistakes end with one ``error:`` line and exit status 2 (see :mod:`sweeps.errors`); Ctrl-C leaves a study
that the same command continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, before it is imported
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from sweeps.errors import SweepsError, UsageError
from sweeps.search import stopping
from sweeps.store.records import ENGINES

USAGE_ERROR = 2


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m`` or ``2h``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"TIMEOUT={text!r}: expected a positive number of seconds, or e.g. 90s, 30m, 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def whole_number(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0 (also as SWEEPS_TRIALS_PER_PROCESS), got {text!r}")
    return int(text)


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweep", description="Hyperparameter sweeps of Keras models with Optuna and MLflow.")
    parser.add_argument("--spaces-dir", type=Path, default=Path(os.environ.get("SWEEPS_SPACES_DIR", "search_spaces")),
                        help="folder of space files (default: search_spaces/)")
    storage_help = ("Optuna storage: a journal file path or a database URL (default: $SWEEPS_STORAGE, $OPTUNA_STORAGE, "
                    "else optuna.journal in the project folder)")
    parser.add_argument("--storage", default=os.environ.get("SWEEPS_STORAGE") or os.environ.get("OPTUNA_STORAGE") or None,
                        help=storage_help)
    anywhere = argparse.ArgumentParser(add_help=False)  # --storage also after the sub-command, as Optuna's CLI takes it
    anywhere.add_argument("--storage", default=argparse.SUPPRESS, help=storage_help)
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser = sub.add_parser
    sub.add_parser = lambda name, **kw: add_parser(name, parents=[anywhere], **kw)  # type: ignore[method-assign]
    run = sub.add_parser("run", help="run (or continue) the sweep of a space")
    run.add_argument("space", help="name of a file in search_spaces/, without .yaml")
    run.add_argument("--trials", type=positive_int, help="total finished trials the study should have")
    run.add_argument("--timeout", help="wall-clock budget of this invocation: seconds, or 30m, 2h")
    run.add_argument("--quick", action="store_true", help="smoke run: small subset, ≤2 epochs, 2 trials, own study")
    run.add_argument("--no-report", action="store_true", help="skip rebuilding reports/ at the end")
    run.add_argument("--keras-log", action="store_true", help="Keras's own epoch lines on a terminal too (the live "
                                                              "progress line replaces them there)")
    run.add_argument("--refit", action="store_true", help="at the end, refit the best config on training + "
                                                          "validation images (as `sweep refit`)")
    run.add_argument("--workers", type=positive_int, default=1, help="worker processes on this machine, one study")
    run.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)  # set by --workers
    run.add_argument("--subset", type=positive_int, help=argparse.SUPPRESS)  # the benchmark's training sample
    run.add_argument("--simulate", action="store_true", help=argparse.SUPPRESS)  # bench-scale: nothing trained
    run.add_argument("--trials-per-process", type=whole_number, default=os.environ.get("SWEEPS_TRIALS_PER_PROCESS", "10"),
                     help="trials a worker process runs before a fresh one takes over (memory stays flat, a crash "
                          "fails one trial); 0 runs every trial in this process (default: 10)")
    run.add_argument("--sweep-run", help=argparse.SUPPRESS)  # set by the supervising process
    run.add_argument("--deadline-at", type=float, help=argparse.SUPPRESS)  # set by the supervising process
    run.add_argument("--engine", choices=ENGINES, default="optuna", help="who picks the params")
    run.add_argument("--tuner", choices=("hyperband", "bayesian", "random"), default="hyperband",
                     help="the Keras Tuner search (with --engine kerastuner)")
    status = sub.add_parser("status", help="trials by state, MLflow runs by status, and any mismatch")
    status.add_argument("space")
    status.add_argument("--quick", action="store_true", help="the quick smoke-run study")
    status.add_argument("--engine", choices=ENGINES, default="optuna", help="the study of this engine")
    sub.add_parser("report", help="rebuild reports/summary.html from the stores, without training")
    bench = sub.add_parser("bench", help="measure overhead, pruning and search quality (writes reports/bench.json)")
    bench.add_argument("space", nargs="?", default="fashion_mlp")
    bench.add_argument("--budget", default="60s", help="wall-clock budget of each search (e.g. 30m for real numbers)")
    bench.add_argument("--trials", type=positive_int, default=8, help="trials of the pruning comparison")
    bench.add_argument("--subset", type=int, default=6000, help="training images (0: all)")
    bench.add_argument("--parts", default="overhead,pruning,search,memory", help="which measurements, comma-separated")
    bench.add_argument("--searches", default="optuna,random_search,kerastuner_hyperband",
                       help="the searches of the search part: optuna (the space as shipped), random_search, kerastuner_hyperband")
    scale = sub.add_parser("bench-scale", help="how the framework's own costs grow with trials and workers, nothing "
                                               "trained (writes reports/bench_scale.json)")
    scale.add_argument("--sizes", default="100,300,1000", help="study sizes to grow through, comma-separated")
    scale.add_argument("--workers", default="1,4", help="worker process counts, comma-separated")
    scale.add_argument("--full", action="store_true", help="also grow to 3000 trials")
    predict = sub.add_parser("predict", help="classify an image with the best model of a space")
    predict.add_argument("space")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="a PNG/JPG of any size")
    source.add_argument("--from-test", type=int, metavar="N", help="test image number N (shows its true class)")
    predict.add_argument("--quick", action="store_true", help="use the quick smoke-run study")
    predict.add_argument("--engine", choices=ENGINES, default="optuna", help="the study of this engine")
    reproduce = sub.add_parser("reproduce", help="train a trial's params again with its seeds and compare")
    reproduce.add_argument("space")
    reproduce.add_argument("--trial", type=int, required=True)
    reproduce.add_argument("--quick", action="store_true", help="a trial of the quick smoke-run study")
    reproduce.add_argument("--engine", choices=ENGINES, default="optuna", help="a trial of this engine's study")
    refit = sub.add_parser("refit", help="train the best config again on training + validation images, score it on "
                                         "the test set, register it as a refit")
    refit.add_argument("space")
    refit.add_argument("--quick", action="store_true", help="the quick smoke-run study")
    refit.add_argument("--engine", choices=ENGINES, default="optuna", help="the study of this engine")
    sub.add_parser("list", help="list the space files and whether they are valid")
    check = sub.add_parser("check", help="validate a space file; with a finished study of it, hints to change it")
    check.add_argument("space")
    return parser


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


def _report(args: argparse.Namespace, root: Path, console) -> None:
    from sweeps.report.build import build_report

    _, storage, tracking = _stores(args, root)
    path = build_report(storage, tracking, root / "reports", root / ".sweeps" / "cache")
    console.print(f"report: {path}")


def _run(args: argparse.Namespace, root: Path, console) -> int:
    import optuna

    from sweeps.search.space import load_space
    from sweeps.search.study import SweepOptions, open_study
    from sweeps.search.supervisor import RECYCLE

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress line reports every trial, failures included
    logging.getLogger("mlflow").setLevel(logging.WARNING)
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

        url, storage, tracking = _stores(args, root)
        check_tracking(tracking)
        study = open_study(space, storage, args.quick, console)  # created once, before the workers race to them:
        Tracker(tracking, study.study_name)                      # the study, the MLflow store and its experiment
        argv = ["--spaces-dir", str(args.spaces_dir), *(["--storage", url] if args.storage else []), "run", args.space,
                "--no-report", *(["--trials", str(args.trials)] if args.trials else []),
                *(["--timeout", args.timeout] if args.timeout else []), *(["--quick"] if args.quick else []),
                *(["--simulate"] if args.simulate else [])]
        code = run_workers(argv, args.workers, console)
    else:
        options = SweepOptions(trials=args.trials, timeout=timeout, quick=args.quick, storage=args.storage,
                               worker_index=args.worker_index, engine=args.engine, tuner=args.tuner, subset=args.subset,
                               trials_per_process=args.trials_per_process or None, sweep_run=args.sweep_run,
                               deadline_at=args.deadline_at, keras_log=args.keras_log, simulate=args.simulate)
        if args.sweep_run:  # a worker of the supervisor below
            from sweeps.search.sweep import run_sweep

            return RECYCLE if run_sweep(space, root, options, console) else 0
        if _supervises(args):
            from sweeps.search.supervisor import supervise

            code = supervise(space, root, options, _worker_argv(args), console)
        else:  # Keras Tuner keeps its search state in this process
            from sweeps.search.sweep import run_sweep

            run_sweep(space, root, dataclasses.replace(options, trials_per_process=None), console)
    if args.refit and code == 0:
        _refit(args, root, console)
    if not args.no_report:
        _report(args, root, console)
    return code


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The ``sweep`` arguments of a worker process: the same run, no report (the supervisor builds it)."""
    return ["--spaces-dir", str(args.spaces_dir), *(["--storage", args.storage] if args.storage else []), "run",
            args.space, "--no-report", "--worker-index", str(args.worker_index),
            *(["--trials", str(args.trials)] if args.trials else []), *(["--quick"] if args.quick else []),
            *(["--subset", str(args.subset)] if args.subset else []), *(["--keras-log"] if args.keras_log else []),
            *(["--simulate"] if args.simulate else [])]


def _bench(args: argparse.Namespace, root: Path, console) -> None:
    import optuna

    from sweeps.bench import PARTS, SEARCHES, print_bench, run_bench, save_bench
    from sweeps.search.space import load_space

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    space, blog = load_space(args.space, args.spaces_dir), load_space("fashion_blog", args.spaces_dir)
    parts, searches = _choices(args.parts, PARTS, "--parts"), _choices(args.searches, tuple(SEARCHES), "--searches")
    results = run_bench(space, blog, root, parse_duration(args.budget), args.trials, args.subset or None, console,
                        parts, searches)
    print_bench(results, console)
    console.print(f"raw numbers: {save_bench(results, root / 'reports')}")
    _report(args, root, console)  # its benchmark section


def _choices(text: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    chosen = tuple(c.strip() for c in text.split(",") if c.strip())
    wrong = [c for c in chosen if c not in allowed]
    if wrong or not chosen:
        raise UsageError(f"{option}={text!r}: expected a comma-separated list of {', '.join(allowed)}")
    return chosen


def _check(args: argparse.Namespace, root: Path, console) -> None:
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


def _status(args: argparse.Namespace, root: Path, console) -> int:
    from sweeps.reuse import open_study
    from sweeps.store.status import print_status

    url, storage, tracking = _stores(args, root)
    study, _, tracker = open_study(_study_name(args), storage, url, tracking)
    return 1 if print_status(study, tracker, console) else 0


def _predict(args: argparse.Namespace, root: Path, console) -> None:
    from sweeps.reuse import predict

    url, storage, tracking = _stores(args, root)
    predict(_study_name(args), storage, url, tracking, root / ".sweeps" / "cache", console,
            image=args.image, test_index=args.from_test)


def _bench_scale(args: argparse.Namespace, root: Path, console) -> None:
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
    results = run_bench_scale(root, tuple(sorted(set(sizes))), numbers(args.workers, "--workers"), console,
                              args.storage)
    print_scale(results, console)
    console.print(f"results: {save_scale(results, root / 'reports')}")
    _report(args, root, console)


def _refit(args: argparse.Namespace, root: Path, console) -> None:
    import tempfile

    from sweeps.refit import refit

    url, storage, tracking = _stores(args, root)
    with tempfile.TemporaryDirectory(prefix="refit-") as workdir:
        refit(_study_name(args), storage, url, tracking, Path(workdir), console)


def _reproduce(args: argparse.Namespace, root: Path, console) -> None:
    import tempfile

    from sweeps.reuse import reproduce

    url, storage, tracking = _stores(args, root)
    with tempfile.TemporaryDirectory(prefix="reproduce-") as workdir:
        reproduce(_study_name(args), args.trial, storage, url, tracking, Path(workdir), console)


def _list(args: argparse.Namespace, console) -> None:
    from sweeps.search.space import SpaceError, available, load_space

    for name in available(args.spaces_dir):
        try:
            space = load_space(name, args.spaces_dir)
            console.print(f"{name:<16} {space.spec.description}", highlight=False)
        except SpaceError as exc:
            console.print(f"{name:<16} [red]invalid[/]: {exc}", highlight=False)


def _supervises(args: argparse.Namespace) -> bool:
    """Whether ``sweep run`` leaves the training to worker processes (and only waits for them)."""
    return (args.command == "run" and not args.sweep_run and args.engine == "optuna"
            and (args.workers > 1 or args.trials_per_process > 0))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sweep`` command."""
    import optuna
    import sqlalchemy
    from rich.console import Console

    from experiments.idx import DataError

    args = _parser().parse_args(argv)
    # A polite kill ends like Ctrl-C: runs closed, study resumable. Processes that train stop at a batch boundary.
    stopping.install(polite=args.command == "run" and not _supervises(args))
    console = Console(highlight=False, soft_wrap=True)
    root = Path.cwd()
    commands = {"run": _run, "report": _report, "bench": _bench, "status": _status, "predict": _predict, "reproduce": _reproduce,
                "refit": _refit, "bench-scale": _bench_scale,
                "list": lambda a, r, c: _list(a, c),
                "check": _check}
    try:
        return commands[args.command](args, root, console) or 0
    except SweepsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except DataError as exc:  # experiments/ knows nothing of the sweep commands
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except (sqlalchemy.exc.DBAPIError, optuna.exceptions.StorageInternalError) as exc:  # the store went away
        cause = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc.__cause__
        reason = str(cause or exc).strip().splitlines()[0]
        print(f"error: lost the study store ({reason}); finished trials are saved: run the same command to continue",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished trials are saved; run the same command to continue", file=sys.stderr)
        return stopping.exit_status()


if __name__ == "__main__":
    sys.exit(main())
