"""Samplers and pruners named in a space: each one builds, is seeded, and asks valid params."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import optuna
import pytest

from sweeps.errors import SpaceError
from sweeps.search.samplers import PRUNERS, make_pruner, make_sampler
from sweeps.space.schema import SAMPLERS
from sweeps.space.space import parse_space

from .conftest import SPACES

CNN = (SPACES / "fashion_cnn.yaml").read_text()


def with_sampler(sampler: str) -> str:
    """fashion_cnn's text with its ``sampler:`` line replaced (exactly one)."""
    text, count = re.subn(r"(?m)^  sampler: \{.*\}.*$", f"  sampler: {sampler}", CNN)
    assert count == 1
    return text


def space_with(sampler: str = "tpe", pruner: str = "median"):
    text, count = re.subn(r"(?m)^  pruner: \{.*\}.*$", f"  pruner: {{name: {pruner}}}", with_sampler(f"{{name: {sampler}}}"))
    assert count == 1
    return parse_space(text, Path("search_spaces/fashion_cnn.yaml"))


def suggestions(space, seed_offset: int = 0) -> list[dict]:
    study = optuna.create_study(sampler=make_sampler(space, seed_offset), direction="maximize")
    out = []
    for _ in range(5):
        trial = study.ask()
        params = space.suggest(trial)
        study.tell(trial, params["dropout"])
        out.append(params)
    return out


@pytest.mark.parametrize("name", [s for s in SAMPLERS if s not in ("grid", "gp")])
def test_each_sampler_is_seeded_and_stays_in_the_space(name):
    space = space_with(name)
    first = suggestions(space)
    assert first == suggestions(space)  # same seed, same suggestions
    assert first != suggestions(space, seed_offset=1)  # a resumed sweep or a second worker draws anew
    for params in first:
        assert 0.0 <= params["dropout"] <= 0.5 and 2 <= params["conv_layers"] <= 3
        assert all(params[f"filters_{i}"] in (32, 48, 64) for i in range(1, params["conv_layers"] + 1))


def test_gp_says_what_it_needs_when_pytorch_is_missing():
    if importlib.util.find_spec("torch") is not None:
        assert isinstance(make_sampler(space_with("gp")), optuna.samplers.GPSampler)
        return
    with pytest.raises(SpaceError, match="the gp sampler needs PyTorch"):
        make_sampler(space_with("gp"))


@pytest.mark.parametrize("name", list(PRUNERS))
def test_each_pruner_builds(name):
    if name == "threshold":
        with pytest.raises(SpaceError, match=r"sweep\.pruner\.options"):  # it needs its bound
            make_pruner(space_with(pruner=name))
        return
    if name == "wilcoxon":  # across folds only: built in tests/test_kfold.py
        with pytest.raises(SpaceError, match="needs validation: kfold"):
            space_with(pruner=name)
        return
    assert isinstance(make_pruner(space_with(pruner=name)), optuna.pruners.BasePruner)


def test_bad_sampler_options_are_one_line():
    text = with_sampler("{name: tpe, options: {n_startup: 3}}")
    with pytest.raises(SpaceError, match=r"sweep.sampler.options: .*n_startup"):
        make_sampler(parse_space(text, Path("search_spaces/fashion_cnn.yaml")))
