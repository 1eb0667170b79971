"""Which stop rule of the space (``sweep.stop``) ended a sweep, kept in the study so that every worker process stops
and a later ``sweep run`` says why it has nothing to do; and where the rules count from once a sweep goes on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import optuna

ENDED_BY = "sweep_ended_by"  # study attribute: an EndRecord as a dict; {} once a sweep goes on past it
RULES_FROM = "stop_rules_from"  # study attribute: finished search trials before the rules count (plateau's window)


@dataclass(frozen=True)
class EndRecord:
    """A stop rule ended the sweep: which (``on_target``, ``plateau``), after which trial, with how many finished
    search trials of how many (TRIALS), and why in words."""

    rule: str
    trial: int
    finished: int
    target: int
    why: str


def ended_by(study: optuna.Study, attrs: dict[str, Any] | None = None) -> EndRecord | None:
    """The stop rule that ended the study's sweep; None when none did (or a sweep went on past it). ``attrs``: the
    study's user attributes as just read (else read here)."""
    record = (study.user_attrs if attrs is None else attrs).get(ENDED_BY)
    return EndRecord(**record) if record else None


def record_end(study: optuna.Study, record: EndRecord) -> None:
    """Keep ``record`` in the study: every worker's stop rules and every later ``sweep run`` read it."""
    study.set_user_attr(ENDED_BY, asdict(record))


def go_on_past(study: optuna.Study, record: EndRecord) -> None:
    """A sweep goes on past the rule that ended it (TRIALS raised): the record is cleared, and the plateau's window
    counts only trials finished from now on (the last ones had not improved, so it would end again at once)."""
    study.set_user_attr(RULES_FROM, record.finished)
    study.set_user_attr(ENDED_BY, {})


def rules_from(study: optuna.Study, attrs: dict[str, Any] | None = None) -> int:
    """Finished search trials before the stop rules count (0: all of them)."""
    return int((study.user_attrs if attrs is None else attrs).get(RULES_FROM, 0))
