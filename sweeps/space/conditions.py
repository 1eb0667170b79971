"""Conditional params (``when:``): the order a trial samples a space's params in, and whether a param's condition
holds for the values sampled before it. Checked once when the space file is read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sweeps.space.schema import CategoricalParam, IntParam, Param, SpaceFile

When = Mapping[str, Any]


def allowed(value: Any) -> list[Any]:
    """A ``when:`` value as the list of values it accepts (a single value, or a list: any of)."""
    return list(value) if isinstance(value, list) else [value]


def holds(when: When | None, values: Mapping[str, Any]) -> bool:
    """Whether every named param was sampled with one of its listed values (no condition: always)."""
    return not when or all(name in values and values[name] in allowed(value) for name, value in when.items())


def lineage(params: Mapping[str, Param], name: str) -> list[When]:
    """The conditions param ``name`` is sampled under, outermost first: its first parent's lineage, then its own
    ``when:`` (Keras Tuner nests a param's scope in its parent's, one parent per scope)."""
    when = params[name].when
    return [*lineage(params, next(iter(when))), when] if when else []


def sampling_order(params: Mapping[str, Param]) -> list[str]:
    """The params that are not per layer, each after the params its ``when:`` names; file order where that leaves a
    choice (so a space without ``when:`` samples as it always did). A ValueError naming the cycle if there is one."""
    pending = [name for name, param in params.items() if not param.per_layer]
    order: list[str] = []
    while pending:
        ready = next((name for name in pending if set(params[name].when or ()) <= set(order)), None)
        if ready is None:
            cycle = _cycle(params, pending)
            raise ValueError(f"params.{cycle[0]}.when: a cycle ({' → '.join(cycle)})")
        order.append(ready)
        pending.remove(ready)
    return order


def _cycle(params: Mapping[str, Param], pending: list[str]) -> list[str]:
    """The names round a cycle of ``when:`` among the ``pending`` params (none of which can be placed), found by
    following each one's first pending parent (each has one)."""
    path = [pending[0]]
    while True:
        parent = next(name for name in params[path[-1]].when or {} if name in pending)
        if parent in path:
            return [*path[path.index(parent):], parent]
        path.append(parent)


def check_conditions(spec: SpaceFile) -> None:
    """Every ``when:`` names a categorical or int param of the space, not per layer, with values it can take; the
    grid sampler takes none. A ValueError('params.<name>.when…: <why>') otherwise."""
    for name, param in spec.params.items():
        if not param.when:
            continue
        if param.per_layer:
            raise ValueError(f"params.{name}.when: a per-layer param cannot be conditional")
        if spec.sweep.sampler.name == "grid":
            raise ValueError(f"params.{name}.when: the grid sampler needs every param in every trial; use tpe or "
                             "random, or one space per condition")
        for parent, value in param.when.items():
            _check_parent(spec, f"params.{name}.when.{parent}", name, parent, allowed(value))
    sampling_order(spec.params)


def _check_parent(spec: SpaceFile, field: str, name: str, parent: str, values: list[Any]) -> None:
    given = spec.params.get(parent)
    if parent == name:
        raise ValueError(f"{field}: a param cannot be conditional on itself")
    if given is None:
        raise ValueError(f"{field}: not a param of this space (params: {', '.join(spec.params)})")
    if given.per_layer or not isinstance(given, (CategoricalParam, IntParam)):
        raise ValueError(f"{field}: a condition names a categorical or int param that is not per layer")
    if not values:
        raise ValueError(f"{field}: give a value or a list of values")
    choices = given.values()
    outside = [v for v in values if v not in choices or isinstance(v, bool) != isinstance(choices[0], bool)]
    if outside:
        raise ValueError(f"{field}: {outside[0]!r} is not one of its values {_shown(choices)}")


def _shown(choices: list[Any]) -> str:
    return str(choices) if len(choices) <= 12 else f"{choices[0]} to {choices[-1]}"
