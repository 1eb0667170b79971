"""Command line: ``sweep run|status|report|bench|predict|reproduce|refit|list|check|enqueue|exclude|include``
(``sweep -h``; the Makefile wraps each).

Errors end with one ``error:`` line: exit status 2 for the user's input, 1 for the environment or a stopped sweep
(the rule is in :mod:`sweeps.errors`); Ctrl-C leaves a study that the same command continues.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import optuna
from rich.console import Console

from sweeps import commands, signals
from sweeps.console import tensorflow_start
from sweeps.errors import as_sweeps_error
from sweeps.store.keys import ENGINES

LOG_WIDTH = 200  # columns of what the command prints when it is not on a terminal
tensorflow_start.install()  # before TensorFlow is imported, here and in the workers' template and processes


def whole_number(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0 (also as SWEEPS_TRIALS_PER_PROCESS), got {text!r}")
    return int(text)


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return int(text)


def _number(text: str, low: float, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > low if strict else value >= low):
        raise argparse.ArgumentTypeError(f"expected a number {'>' if strict else '≥'} {low:g}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    return _number(text, 0, strict=True)


def seed_count(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of seeds ≥ 0, got {text!r}")
    return int(text)


def non_negative_float(text: str) -> float:
    return _number(text, 0, strict=False)


def _add_run(run: argparse.ArgumentParser) -> None:
    """The options of ``sweep run``."""
    run.add_argument("space", help="name of a file in search_spaces/, without .yaml")
    run.add_argument("--trials", type=positive_int, help="total finished trials the study should have")
    run.add_argument("--timeout", help="wall-clock budget of this invocation: seconds, or 30m, 2h")
    run.add_argument("--quick", action="store_true", help="smoke run: small subset, ≤2 epochs, 2 trials, own study")
    run.add_argument("--no-report", action="store_true", help="skip rebuilding reports/ at the end")
    run.add_argument("--keras-log", action="store_true", help="Keras's own epoch lines on a terminal too (the live "
                                                              "progress line replaces them there)")
    run.add_argument("--confirm", type=seed_count, help="after the search, train the winner's params on this many "
                     "new seeds (default: the space's sweep.confirm); the report counts them as the winner's repeats")
    run.add_argument("--refit", action="store_true", help="at the end, refit the best config on training + "
                                                          "validation images (as `sweep refit`)")
    run.add_argument("--workers", type=positive_int, default=1, help="worker processes (on this machine, or placed by "
                     "the cluster), one study")
    run.add_argument("--cluster", choices=("ray",), default=os.environ.get("SWEEPS_CLUSTER") or None,
                     help="place the workers on a Ray cluster: $RAY_ADDRESS, else this machine's (`ray start`), else "
                     "one started for the sweep")
    run.add_argument("--cpus-per-trial", type=positive_float, help="CPUs of one worker (default: the space's "
                     "sweep.resources.cpus, 1)")
    run.add_argument("--gpus-per-trial", type=non_negative_float, help="GPUs of one worker, 0.5: two share one "
                     "(default: the space's sweep.resources.gpus, 0)")
    run.add_argument("--subset", type=positive_int, help="train on a seeded, stratified sample of this many images "
                     "(or rows); a study keeps the sample it began with")
    run.add_argument("--extensions", metavar="MODULE:FUNCTION",
                     help="plug in a training function and after-trial callbacks: a function of the space returning "
                          "sweeps.execution.worker_loop.Extensions (the benchmarks' simulated trials use it)")
    run.add_argument("--trials-per-process", type=whole_number, default=os.environ.get("SWEEPS_TRIALS_PER_PROCESS", "10"),
                     help="trials a worker process runs before a fresh one takes over (memory stays flat, a crash "
                          "fails one trial); 0 runs every trial in this process (default: 10)")
    run.add_argument("--engine", choices=ENGINES, default="optuna", help="who picks the params")
    run.add_argument("--notify", metavar="URL", default=os.environ.get("SWEEPS_NOTIFY_URL") or None,
                     help="post a JSON message to this http(s) address when the sweep ends, fails or finds a new best "
                          "(default: $SWEEPS_NOTIFY_URL)")
    run.add_argument("--tuner", choices=("hyperband", "bayesian", "random"), default="hyperband",
                     help="the Keras Tuner search (with --engine kerastuner)")


def _add_benches(sub: Any) -> None:
    """The benchmarks' sub-commands: ``bench`` and ``bench-scale``."""
    bench = sub.add_parser("bench", help="measure overhead, pruning and search quality (writes reports/bench.json)")
    bench.add_argument("space", nargs="?", default="fashion_mlp")
    bench.add_argument("--budget", default="60s", help="wall-clock budget of each search (e.g. 30m for real numbers)")
    bench.add_argument("--trials", type=positive_int, default=8, help="trials of the pruning comparison")
    bench.add_argument("--subset", type=int, default=6000, help="training images (0: all)")
    bench.add_argument("--parts", default="overhead,pruning,search,memory", help="which measurements, comma-separated "
                       "(efficiency: R★ and the anytime table, in runs of the space's baseline)")
    bench.add_argument("--searches", default="optuna,random_search,kerastuner_hyperband",
                       help="the searches of the search part: optuna (the space as shipped), optuna_no_baselines "
                            "(the sampler from the first trial), random_search, kerastuner_hyperband")
    bench.add_argument("--together", action="store_true",
                       help="run the searches at the same time, sharing the cores (a busy machine), not one after the other")
    bench.add_argument("--confirm", type=seed_count, help="confirmation seeds of each Optuna search's winner (default: "
                       "the space's sweep.confirm; 0 ends each search at its budget)")
    bench.add_argument("--seeds", type=positive_int, default=3, help="efficiency: search seeds per engine (the baseline "
                       "gets as many, at least 2)")
    bench.add_argument("--baseline", type=positive_int, default=1, help="efficiency: which of sweep.baselines (1: the first)")
    bench.add_argument("--quick", action="store_true", help="efficiency: one seed on a small training sample, to check "
                       "that it works (not numbers to quote)")
    scale = sub.add_parser("bench-scale", help="how the framework's own costs grow with trials and workers, nothing "
                                               "trained (writes reports/bench_scale.json)")
    scale.add_argument("--sizes", default="100,300,1000", help="study sizes to grow through, comma-separated")
    scale.add_argument("--workers", default="1,4", help="worker process counts, comma-separated")
    scale.add_argument("--cluster", choices=("ray",), help="workers as tasks of a multi-node Ray cluster started "
                       "on this machine (with --servers)")
    scale.add_argument("--full", action="store_true", help="also grow to 3000 trials")
    scale.add_argument("--servers", action="store_true", help="on a PostgreSQL and an MLflow server started on "
                                                              "127.0.0.1 for the run (needs PostgreSQL installed)")


def _add_curation(sub: Any) -> None:
    """``enqueue``, ``exclude`` and ``include``: manual trials and curation of a study."""
    enqueue = sub.add_parser("enqueue", help="queue a configuration into a space's study (the params not set are "
                                             "sampled): the next trial to start trains it")
    exclude = sub.add_parser("exclude", help="keep a completed trial out of best (report, registry, refit); its "
                                             "record stays")
    include = sub.add_parser("include", help="let an excluded trial compete for best again")
    enqueue.add_argument("--set", action="append", metavar="NAME=VALUE", help="a param's value (repeat for each)")
    exclude.add_argument("--reason", help="why (shown beside the trial in the report)")
    for parser in (enqueue, exclude, include):
        parser.add_argument("space")
        if parser is not enqueue:
            parser.add_argument("--trial", type=int, required=True, help="the trial's number")
        parser.add_argument("--quick", action="store_true", help="the quick smoke-run study")
        parser.add_argument("--engine", choices=ENGINES, default="optuna", help="the study of this engine")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweep", description="Hyperparameter sweeps of Keras models with Optuna and MLflow.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {importlib.metadata.version('sweeps')}")
    parser.add_argument("--spaces-dir", type=Path, default=Path(os.environ.get("SWEEPS_SPACES_DIR", "search_spaces")),
                        help="folder of space files (default: search_spaces/)")
    storage_help = ("Optuna storage: a journal file path or a database URL (default: $SWEEPS_STORAGE, $OPTUNA_STORAGE, "
                    "else optuna.journal in the project folder)")
    parser.add_argument("--storage", default=os.environ.get("SWEEPS_STORAGE") or os.environ.get("OPTUNA_STORAGE") or None,
                        help=storage_help)
    anywhere = argparse.ArgumentParser(add_help=False)  # --storage also after the sub-command, as Optuna's CLI takes it
    anywhere.add_argument("--storage", default=argparse.SUPPRESS, help=storage_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser = sub.add_parser
    sub.add_parser = lambda name, **kw: add_parser(name, parents=[anywhere], **kw)  # type: ignore[method-assign]
    _add_run(sub.add_parser("run", help="run (or continue) the sweep of a space"))
    status = sub.add_parser("status", help="trials by state, MLflow runs by status, and any mismatch")
    status.add_argument("space")
    status.add_argument("--quick", action="store_true", help="the quick smoke-run study")
    status.add_argument("--engine", choices=ENGINES, default="optuna", help="the study of this engine")
    sub.add_parser("worker")  # no help, so not listed: a worker process of `sweep run`, its spec in $SWEEPS_WORKER
    sub.add_parser("report", help="rebuild reports/summary.html from the stores, without training")
    _add_benches(sub)
    predict = sub.add_parser("predict", help="predict with the best model of a space: an image, a CSV of rows, a test example")
    predict.add_argument("space")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="a PNG/JPG of any size (image data)")
    source.add_argument("--rows", type=Path, help="a CSV of table rows (a table's data): predictions written to --out")
    source.add_argument("--from-test", type=int, metavar="N", help="test example N (shows its true class or value)")
    predict.add_argument("--out", type=Path, help="where --rows' predictions go (default: ROWS.predictions.csv here)")
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
    dashboard = sub.add_parser("dashboard", help="optuna-dashboard over this project's studies (a database password "
                                                 "stays off the command line)")
    dashboard.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to expose it deliberately")
    dashboard.add_argument("--port", type=int, default=8080)
    sub.add_parser("list", help="list the space files and whether they are valid")
    init = sub.add_parser("init", help="start a project: search_spaces/example.yaml, models.py, a README (and data)")
    init.add_argument("folder", nargs="?", type=Path, default=Path("."), help="where (default: this folder)")
    init.add_argument("--data", choices=("images", "table", "regression", "arrays"), default="images",
                      help="the starter's kind of data: Fashion-MNIST images with a CNN (default), or an MLP on a CSV "
                           "table, a CSV regression or arrays in an .npz (each made from a dataset scikit-learn ships)")
    check = sub.add_parser("check", help="validate a space file; with a finished study of it, hints to change it")
    check.add_argument("space")
    _add_curation(sub)
    return parser


def make_console() -> Console:
    """Where the command prints: off a terminal (a log, a pipe) rich would cut tables to 80 columns, so there it is
    wide enough for every column."""
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else LOG_WIDTH)


def _thread_error(hook: threading.ExceptHookArgs) -> None:
    """A background thread's error, such as Optuna's heartbeat thread when the database restarts under it: one line
    when it means something to the user (the command itself then goes on or says it once more), a traceback for a bug."""
    error = as_sweeps_error(hook.exc_value) if hook.exc_value is not None else None
    if error is None:
        threading.__excepthook__(hook)
    else:
        print(f"warning: a background thread stopped: {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sweep`` command."""
    args = _parser().parse_args(argv)
    threading.excepthook = _thread_error
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress line reports every trial, failures included
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # e.g. its INFO on creating a fresh store's tables
    # A polite kill ends like Ctrl-C: runs closed, study resumable. Processes that train stop at a batch boundary.
    signals.install(polite=commands.trains_here(args))
    if str(Path.cwd()) not in sys.path:  # the project folder: a space's model: module:function is imported from it
        sys.path.insert(0, str(Path.cwd()))
    console = make_console()
    run: dict[str, Callable[[argparse.Namespace, Path, Console], int | None]] = {
        "run": commands.run, "worker": commands.worker, "report": commands.report, "bench": commands.bench,
        "status": commands.status, "predict": commands.predict, "reproduce": commands.reproduce,
        "refit": commands.refit, "bench-scale": commands.bench_scale, "list": commands.list_spaces, "init": commands.init,
        "check": commands.check, "dashboard": commands.dashboard, "enqueue": commands.enqueue,
        "exclude": commands.curate, "include": commands.curate}
    try:
        return run[args.command](args, Path.cwd(), console) or 0
    except KeyboardInterrupt:
        if args.command != "worker":  # the command that started a worker says it, once
            print("interrupted: finished trials are saved; run the same command to continue", file=sys.stderr)
        return signals.exit_status()
    except Exception as exc:  # ours, or a foreign error with a meaning for the user: one line; a bug: its traceback
        error = as_sweeps_error(exc)
        if error is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_status


def command() -> None:
    """The ``sweep`` executable (and ``python -m sweeps.cli``): :func:`main`, then an exit without the interpreter's
    last garbage collection, which takes about 1 s once TensorFlow is loaded and frees nothing the exit does not.
    The workers' template ends with it at once. (Neither in :func:`main`: a process that calls it and goes on, a
    test or a notebook, keeps collecting and keeps its template for the next sweep.) Young collections every 50,000
    new objects, not 700, and full ones 100 times rarer: what a command imports as it runs (MLflow's stores, pandas:
    3 s of CPU) no longer has full collections walk all that was imported before it (0.45 s of the 3 s here)."""
    gc.set_threshold(50_000, 20, 100)
    from sweeps.execution.forked import stop_template

    code = main()
    stop_template()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    command()
