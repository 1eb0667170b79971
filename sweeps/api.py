"""The Python API, for notebooks and scripts: run a space's sweep from a project folder and read its best trial;
queue a configuration, exclude a trial from best and include it again; rebuild the report. The same entry point
and stores as the ``sweep`` command."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from sweeps.errors import SweepStopped, UsageError
from sweeps.store.keys import TEST_ACCURACY_MEAN, TEST_MAE_MEAN, VALUE_STD, study_name


@dataclass(frozen=True)
class BestTrial:
    """A study's best completed trial: its params and its scores (means over its repeats)."""

    study: str
    number: int
    params: dict[str, Any]
    value: float  # the objective, mean over the repeats
    value_std: float | None
    test_accuracy: float | None  # a classifier's
    repeats: int
    test_mae: float | None = None  # a regression's


def run(space: str, trials: int | None = None, timeout: float | None = None, *, quick: bool = False,
        root: str | Path = ".", engine: str = "optuna", console: Console | None = None) -> BestTrial | None:
    """Run or continue the sweep of ``space`` (a file of ``root``/search_spaces) in this process until its study
    has ``trials`` finished trials or ``timeout`` seconds have passed (None: as the space file says); the study's
    best trial (None when no trial completed)."""
    from sweeps.execution.launch import start_sweep
    from sweeps.search.options import SweepOptions
    from sweeps.space.space import load_space

    folder = Path(root).resolve()
    if str(folder) not in sys.path:  # a space's model: module:function is imported from the project folder
        sys.path.insert(0, str(folder))
    loaded = load_space(space, folder / "search_spaces")
    options = SweepOptions(trials=trials, timeout=timeout, quick=quick, engine=engine)
    with in_project(folder):
        if start_sweep(loaded, folder, options, console or Console()) != 0:
            raise SweepStopped(f"the sweep of {space} did not finish")
    return best(space, root=folder, quick=quick, engine=engine)


def best(space: str, *, root: str | Path = ".", quick: bool = False, engine: str = "optuna") -> BestTrial | None:
    """The best completed trial of ``space``'s study in project ``root`` (None before any completed; excluded and
    infeasible trials never are)."""
    from sweeps.store.trials import best_trial

    study, space_file, _ = _existing(space, root, quick, engine)
    top = best_trial(study)
    if top is None:
        return None
    return BestTrial(study=study.study_name, number=top.number, params=dict(top.params), value=top.values[0],
                     value_std=top.user_attrs.get(VALUE_STD), test_accuracy=top.user_attrs.get(TEST_ACCURACY_MEAN),
                     repeats=space_file.spec.sweep.repeats, test_mae=top.user_attrs.get(TEST_MAE_MEAN))


def enqueue(space: str, params: dict[str, Any], *, root: str | Path = ".", quick: bool = False) -> None:
    """Queue ``params`` (values of the space file's params; those left out are sampled) into ``space``'s study, as
    ``sweep enqueue``: the next worker trains it. A UsageError for a value the param could not sample."""
    from sweeps.search.curation import check_params
    from sweeps.search.curation import enqueue as queue
    from sweeps.space.space import load_space

    checked = check_params(load_space(space, Path(root).resolve() / "search_spaces"), dict(params))
    queue(_existing(space, root, quick, "optuna")[0], checked)


def exclude(space: str, trial: int, reason: str, *, root: str | Path = ".", quick: bool = False,
            engine: str = "optuna") -> list[str]:
    """Keep completed ``trial`` out of best with ``reason``, as ``sweep exclude``; the lines it prints (the best
    now, where the registry's alias ``best`` points)."""
    from sweeps.search.curation import exclude as keep_out
    from sweeps.search.curation import standing

    study, _, tracker = _existing(space, root, quick, engine)
    keep_out(study, trial, reason)
    return standing(study, tracker.client)


def include(space: str, trial: int, *, root: str | Path = ".", quick: bool = False, engine: str = "optuna") -> list[str]:
    """Let excluded ``trial`` compete for best again, as ``sweep include``; the lines it prints."""
    from sweeps.search.curation import include as let_in
    from sweeps.search.curation import standing

    study, _, tracker = _existing(space, root, quick, engine)
    let_in(study, trial)
    return standing(study, tracker.client)


def _existing(space: str, root: str | Path, quick: bool, engine: str):
    """The study of ``space`` in project ``root``, its space file and its MLflow experiment."""
    from sweeps.search.study import existing_study
    from sweeps.store.storage import default_storage, open_storage
    from sweeps.store.tracking import tracking_uri

    folder = Path(root).resolve()
    url = default_storage(folder)
    return existing_study(study_name(space, quick, engine), open_storage(url), url, tracking_uri(folder))


def report(*, root: str | Path = ".") -> Path:
    """Rebuild ``root``/reports from the project's stores; the summary page's path."""
    from sweeps.reporting.build import build_report
    from sweeps.store.storage import default_storage, open_storage
    from sweeps.store.tracking import tracking_uri

    folder = Path(root).resolve()
    if not (folder / "search_spaces").is_dir():
        raise UsageError(f"{folder}: not a project folder (no search_spaces/; `sweep init` starts one)")
    with in_project(folder):
        return build_report(open_storage(default_storage(folder)), tracking_uri(folder), folder / "reports",
                            folder / ".sweeps" / "cache")


@contextmanager
def in_project(folder: Path) -> Iterator[None]:
    """Work from the project folder, as the ``sweep`` command does: a space's data paths are relative to it."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)
