"""The workers' template's imports (multiprocessing's fork server imports the modules its preload names): the
command's and the worker loop's, TensorFlow included, with the garbage collector off and what they made frozen
(:func:`~sweeps.execution.forked.imports_frozen`). By name, as the preload is: the layers below the command never
import it."""

import importlib

from sweeps.execution.forked import imports_frozen

# Beside the code, what a worker would otherwise import after its fork, each time (1.0-1.2 s of CPU a worker here):
# MLflow's SQL stores (a file or database store's client, opened lazily), the pyfunc flavour its model registration
# loads, and scikit-learn's splits of the data loader.
_LAZY_IN_A_WORKER = ("mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
                     "mlflow.pyfunc", "sklearn.model_selection")

with imports_frozen():
    for _name in ("sweeps.cli", "sweeps.execution.worker_loop", *_LAZY_IN_A_WORKER):
        importlib.import_module(_name)
    _optuna = importlib.import_module("optuna")

# What is forked from here is part of a `sweep` command, which says what it does itself: a call in the template
# (the report's in-memory study of search trials, a model check's) logs as the command does, not at Optuna's INFO.
_optuna.logging.set_verbosity(_optuna.logging.ERROR)
