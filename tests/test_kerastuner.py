"""The Keras Tuner engine declares the space through Keras Tuner's public hypermodel hook, building no model."""

from __future__ import annotations

from pathlib import Path

import keras_tuner as kt

from sweeps.search.kerastuner import HPSuggester, SpaceHyperModel
from sweeps.search.space import load_space

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"


def test_the_oracle_gets_every_param_of_the_space_and_nothing_is_built(tmp_path):
    space = load_space("fashion_cnn", SPACES)
    tuner = kt.RandomSearch(hypermodel=SpaceHyperModel(space), objective="val_accuracy", max_trials=1,
                            directory=str(tmp_path), project_name="declared")
    declared = {hp.name for hp in tuner.oracle.get_space().space}
    expected = set(space.suggest(HPSuggester(kt.HyperParameters())))
    assert declared == expected and {"learning_rate", "dropout", "filters_1"} <= declared
    assert SpaceHyperModel(space).build(kt.HyperParameters()) is None
