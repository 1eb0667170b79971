"""Errors that end a command with one line and exit status 2 (the user can fix them)."""


class UsageError(Exception):
    """A bad command-line value, or a command asked of something that does not exist yet."""


class SweepStopped(Exception):
    """The sweep stopped itself because the same failure kept repeating (exit status 1)."""
