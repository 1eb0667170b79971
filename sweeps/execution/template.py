"""The workers' template's imports (multiprocessing's fork server imports the modules its preload names): the
command's and the worker loop's, TensorFlow included, with the garbage collector off and what they made frozen
(:func:`~sweeps.execution.forked.imports_frozen`). By name, as the preload is: the layers below the command never
import it."""

import importlib

from sweeps.execution.forked import imports_frozen

with imports_frozen():
    for _name in ("sweeps.cli", "sweeps.execution.worker_loop"):
        importlib.import_module(_name)
    _optuna = importlib.import_module("optuna")

# What is forked from here is part of a `sweep` command, which says what it does itself: a call in the template
# (the report's in-memory study of search trials, a model check's) logs as the command does, not at Optuna's INFO.
_optuna.logging.set_verbosity(_optuna.logging.ERROR)
