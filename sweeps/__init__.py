"""Hyperparameter sweeps of Keras models with Optuna, tracked in MLflow, compared in a static report.

From Python: ``sweeps.run("example", trials=10)`` runs a space of the project folder and returns its best trial;
``sweeps.enqueue``, ``sweeps.exclude`` and ``sweeps.include`` curate a study; ``sweeps.report()`` rebuilds the report
(see :mod:`sweeps.api`). The command line is ``sweep``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["best", "enqueue", "exclude", "include", "report", "run"]


def __getattr__(name: str) -> Any:
    # Imported on first use: every `import sweeps.<module>` runs this file, and the API's imports are heavy.
    if name in __all__:
        from sweeps import api

        return getattr(api, name)
    raise AttributeError(f"module 'sweeps' has no attribute {name!r}")
