"""Every error of the sweep commands, and the one place foreign errors become ours.

Each error ends a command with one ``error:`` line, no traceback, and its exit status by one rule:
2 when the user's input is wrong (a space file, an option, a data path, a study that does not exist yet),
1 when the environment failed (a store that cannot be reached or read, a server that did not start) or the
sweep stopped itself (repeated failures, a diverged refit). Ctrl-C and SIGTERM are not errors: 130 and 143.
"""

from __future__ import annotations

import optuna
import sqlalchemy

from experiments.errors import DataError, ModelError

INPUT_ERROR = 2
ENVIRONMENT_ERROR = 1


class SweepsError(Exception):
    """Ends a command with ``error: <message>`` and :attr:`exit_status`."""

    exit_status = ENVIRONMENT_ERROR


# The user's input (exit status 2).
class UsageError(SweepsError):
    """A bad command-line value, or a command asked of something that does not exist yet."""

    exit_status = INPUT_ERROR


class SpaceError(UsageError):
    """A search-space file (or name) is invalid; the message is one line naming the file and field."""

    def __init__(self, message: str):
        # Keys and values quoted from the file may hold line breaks or other control characters: escape them.
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in message))


class DataMissing(UsageError):
    """A dataset's files are missing, corrupt or not the expected ones (``experiments``' DataError, mapped)."""


class BadModel(UsageError):
    """The space's model builder cannot be imported, raises, or returns no fitting Keras model (ModelError, mapped)."""


# The environment (exit status 1).
class StoreError(SweepsError):
    """A study or MLflow store cannot be reached, read or written; finished trials are saved."""


class MissingCheckpoint(StoreError):
    """A run's checkpoint is gone from the artifact store, or is not a Keras file."""


class ServerFailed(SweepsError):
    """A local server (PostgreSQL, MLflow) did not start."""


class ClusterError(SweepsError):
    """The Ray cluster cannot be reached, or a worker's task failed on its node (not a trial's failure)."""


# The sweep stopped itself (exit status 1).
class SweepStopped(SweepsError):
    """The sweep stopped itself because the same failure kept repeating."""


class TrainingFailed(SweepStopped):
    """A training that has no sweep to go on with failed (a refit's NaN loss)."""


class BenchFailed(SweepStopped):
    """A sweep that a benchmark ran failed."""


# Not a command's error: what ends one trial while the sweep goes on.
class TrialFailed(Exception):
    """A trial could not produce a result (NaN loss, a builder or training error); Optuna records it FAILED."""


class TrialTakenOver(Exception):
    """Another process ended the trial this one trains (taking it for dead) and queued its retry: this attempt
    stops writing at once; the run and the resume points are the retry's."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def as_sweeps_error(exc: BaseException) -> SweepsError | None:
    """Ours for a foreign exception that has a meaning for the user (None: a bug, left to its traceback)."""
    if isinstance(exc, SweepsError):
        return exc
    if isinstance(exc, DataError):  # experiments/ knows nothing of the sweep commands
        return DataMissing(str(exc))
    if isinstance(exc, ModelError):
        return BadModel(str(exc))
    if isinstance(exc, sqlalchemy.exc.DBAPIError | optuna.exceptions.StorageInternalError):  # the store went away
        cause = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc.__cause__
        return StoreError(f"lost the study store ({one_line(cause or exc)}); finished trials are saved: run the same "
                          "command to continue")
    return None
