"""The errors of the base layer: bad data or a bad model builder. ``experiments`` knows nothing of the sweep
commands; ``sweeps.errors`` turns these into one-line command errors."""

from __future__ import annotations


class DataError(Exception):
    """A dataset file is missing, corrupt or not the expected one."""


class ModelError(Exception):
    """A model builder cannot be imported, raises, or returns something other than a fitting Keras model."""
