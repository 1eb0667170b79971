"""Constraints (``constraints:``): ``"filters_2 >= filters_1"``, ``"param_count <= 200000"``. Each is read by a
pattern, never evaluated as code: a name or a number, one of <=, >=, <, >, a name or a number. A constraint's value
is Optuna's: how far it is broken (<= 0: it holds)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("<=", ">=", "<", ">")
_SIDE = r"([A-Za-z_][A-Za-z0-9_]*|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
PATTERN = re.compile(rf"^\s*{_SIDE}\s*(<=|>=|<|>)\s*{_SIDE}\s*$")
# A strict comparison of equal sides is broken by this much (Optuna counts 0 as holding).
STRICT_MARGIN = 1e-9


@dataclass(frozen=True)
class Constraint:
    """One parsed constraint; a side is a name (a param or an outcome) or a number."""

    text: str
    left: str | float
    op: str
    right: str | float

    @property
    def names(self) -> list[str]:
        return [side for side in (self.left, self.right) if isinstance(side, str)]

    def value(self, known: Mapping[str, Any]) -> float | None:
        """How far the constraint is broken for the values ``known`` (<= 0: it holds); None when a side is unknown
        (a param not sampled, an outcome not measured)."""
        if any(name not in known for name in self.names):
            return None
        left, right = (known[s] if isinstance(s, str) else s for s in (self.left, self.right))
        gap = float(left - right) if self.op in ("<=", "<") else float(right - left)
        if self.op in ("<", ">") and gap == 0:
            return STRICT_MARGIN
        return gap


def parse_constraint(text: str) -> Constraint:
    """``text`` as a Constraint; a ValueError saying what is expected otherwise."""
    match = PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r}: expected NAME OP NAME or NAME OP NUMBER, OP one of {', '.join(OPERATORS)} "
                         "(e.g. \"filters_2 >= filters_1\", \"param_count <= 200000\")")
    left, op, right = (_side(match.group(1)), match.group(2), _side(match.group(3)))
    if not isinstance(left, str) and not isinstance(right, str):
        raise ValueError(f"{text!r}: compares two numbers; name a param or an outcome")
    return Constraint(text.strip(), left, op, right)


def _side(text: str) -> str | float:
    return text if text[0].isalpha() or text[0] == "_" else float(text)


def check_constraint(text: str) -> str:
    """A pydantic validator: the text, once it parses."""
    parse_constraint(text)
    return text


def check_feasible(constraint: Constraint, ranges: Mapping[str, tuple[float, float]], outcomes: set[str]) -> None:
    """Each name of ``constraint`` is a numeric param (``ranges``: its lowest and highest value) or an outcome; one
    on params alone can hold somewhere in their ranges. A ValueError saying why not otherwise."""
    for name in constraint.names:
        if name not in ranges and name not in outcomes:
            raise ValueError(f"{name!r} is neither a numeric param of this space nor an outcome (params: "
                             f"{', '.join(ranges) or 'none'}; outcomes: {', '.join(sorted(outcomes))})")
    if any(name in outcomes and name not in ranges for name in constraint.names):
        return
    left, right = (ranges[s] if isinstance(s, str) else (s, s) for s in (constraint.left, constraint.right))
    can_hold = {"<=": left[0] <= right[1], "<": left[0] < right[1], ">=": left[1] >= right[0], ">": left[1] > right[0]}
    if not can_hold[constraint.op]:
        raise ValueError(f"{constraint.text!r} holds nowhere in the params' ranges: no trial could train")


def on_params_only(constraint: Constraint, params: set[str]) -> bool:
    """Whether ``constraint`` names params alone (it is checked before training)."""
    return all(name in params for name in constraint.names)
