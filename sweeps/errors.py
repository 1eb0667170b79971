"""The one error base of the sweep commands: each error ends a command with one ``error:`` line, no traceback,
and its own exit status (2: the user can fix the input; 1: the sweep stopped itself)."""


class SweepsError(Exception):
    """Ends a command with ``error: <message>`` and :attr:`exit_status`."""

    exit_status = 2


class UsageError(SweepsError):
    """A bad command-line value, or a command asked of something that does not exist yet (exit status 2)."""


class SweepStopped(SweepsError):
    """The sweep stopped itself because the same failure kept repeating (exit status 1)."""

    exit_status = 1
