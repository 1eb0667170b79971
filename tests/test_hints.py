"""Hints to widen or narrow a space, from hand-made trials: edges of ranges, negligible importance."""

from __future__ import annotations

import textwrap

import pandas as pd

from sweeps.results.hints import hints
from sweeps.space.space import load_space, parse_space

from .conftest import SPACES


def _trials(best: dict, n: int = 6) -> pd.DataFrame:
    """``n`` completed trials of fashion_mlp; the first has the best value and the params ``best``."""
    rows = [{"number": 0, "state": "COMPLETE", "value": 0.90, **{f"params_{k}": v for k, v in best.items()}}]
    middle = {"hidden_layers": 2, "units_1": 256, "units_2": 256, "dropout": 0.25, "patience": 4, "learning_rate": 1e-3}
    rows += [{"number": i, "state": "COMPLETE", "value": 0.85, **{f"params_{k}": v for k, v in middle.items()}}
             for i in range(1, n)]
    return pd.DataFrame(rows)


def test_best_values_on_the_edge_get_the_change_to_the_space_file():
    space = load_space("fashion_mlp", SPACES)
    best = {"hidden_layers": 2, "units_1": 1000, "units_2": 128, "dropout": 0.25, "patience": 6, "learning_rate": 0.0095}
    found = {h.param: str(h) for h in hints(space, _trials(best), {}, maximise=True)}
    assert set(found) == {"units", "patience", "learning_rate"}
    assert "learning_rate = 0.0095 sits at the top of [0.0001, 0.01] (over 6 trials)" in found["learning_rate"]
    assert "try high: 0.03 (was 0.01)" in found["learning_rate"]
    assert "units_1 = 1000 sits at the top" in found["units"] and "try high: 3072 (was 1024)" in found["units"]
    assert "try high: 8 (was 6)" in found["patience"]


def test_an_edge_that_is_the_allowed_limit_suggests_fixing_instead_of_widening():
    space = load_space("fashion_mlp", SPACES)
    best = {"hidden_layers": 2, "units_1": 256, "units_2": 256, "dropout": 0.0, "patience": 4, "learning_rate": 1e-3}
    [hint] = hints(space, _trials(best), {}, maximise=True)
    assert hint.param == "dropout" and "the lowest value dropout may take" in hint.text


def test_negligible_importance_and_too_few_trials():
    space = load_space("fashion_mlp", SPACES)
    middle = {"hidden_layers": 2, "units_1": 256, "units_2": 256, "dropout": 0.25, "patience": 4, "learning_rate": 1e-3}
    [hint] = hints(space, _trials(middle, n=10), {"patience": 0.01, "learning_rate": 0.7}, maximise=True)
    assert str(hint).startswith("params.patience: patience barely matters (importance 0.010 over 10 trials)")
    assert "fix it at its best value 4 under `train:`" in hint.text
    assert hints(space, _trials(middle, n=6), {"patience": 0.01}, maximise=True) == []  # importance needs 10
    edge = {**middle, "learning_rate": 0.0099}
    assert hints(space, _trials(edge, n=4), {}, maximise=True) == []  # an edge needs 5 completed trials


def test_numeric_categorical_at_its_largest_choice_and_a_minimised_objective():
    text = (SPACES / "fashion_mlp.yaml").read_text().replace(
        "  units: {type: int, low: 64, high: 1024, log: true, per_layer: true}",
        "  units: {type: categorical, choices: [128, 256, 512], per_layer: true}")
    text += textwrap.dedent("""
        objective: {metric: val_loss}
        """)
    space = parse_space(text, SPACES / "fashion_mlp.yaml")
    trials = _trials({"hidden_layers": 2, "units_1": 512, "units_2": 256, "dropout": 0.25, "patience": 4, "learning_rate": 1e-3})
    trials["value"] = [0.25] + [0.40] * 5  # val_loss: the lowest is best
    [hint] = hints(space, trials, {}, maximise=False)
    assert "units_1 = 512 is the largest choice of [128, 256, 512]" in hint.text and "add a larger choice" in hint.text


def test_sweep_check_prints_the_hints_of_a_finished_study(tiny, capsys):
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution
    from rich.console import Console

    from sweeps.cli import main
    from sweeps.search.study import open_study
    from sweeps.store.storage import default_storage, open_storage

    assert main(["check", "tiny"]) == 0 and "no hint" not in capsys.readouterr().out  # no study yet: no store made
    assert not (tiny / "optuna.journal").exists()
    study = open_study(load_space("tiny", tiny / "search_spaces"), open_storage(default_storage(tiny)), False,
                       Console(quiet=True))
    distributions = {"units": IntDistribution(16, 128, log=True), "dropout": FloatDistribution(0.0, 0.3)}
    for value, units in [(0.9, 125), (0.8, 32), (0.8, 40), (0.81, 50), (0.79, 60), (0.8, 64)]:
        study.add_trial(optuna.trial.create_trial(params={"units": units, "dropout": 0.15}, distributions=distributions,
                                                  value=value))
    assert main(["check", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "study tiny: 1 hint from 6 completed trials" in out
    assert "params.units: the best trial's units = 125 sits at the top of [16, 128]" in out and "try high: 384" in out
