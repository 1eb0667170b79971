"""The space's stop rules (``sweep.stop``): the sweep ends when a finished search trial meets the target bar, or when
the best has not improved by ``min_delta`` over the last N finished trials; the rule is kept in the study, so every
worker stops and a later ``sweep run`` says why it has nothing to do."""

from __future__ import annotations

import datetime
import io
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from rich.console import Console

from sweeps.cli import main
from sweeps.console.lines import end_line, nothing_to_do_line
from sweeps.search.stop_rules import EndRules, SweepStops
from sweeps.space.schema import Bound, Plateau, StopRules
from sweeps.store.keys import EXCLUDED
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.sweep_end import ended_by, go_on_past
from sweeps.store.trials import ReadPerTrial, StudyTrials, count_finished

BAR = {"test_accuracy": Bound(min=0.9)}


def _rules(on_target: bool = False, plateau: Plateau | None = None, scores: dict[int, float] | None = None) -> EndRules:
    """Rules whose trials' test accuracy is ``scores[number]`` (as their MLflow runs would say)."""
    return EndRules(StopRules(on_target=on_target, plateau=plateau), BAR,
                    lambda t: {"test_accuracy_mean": (scores or {}).get(t.number, 0.0)})


def _sweep(study: optuna.Study, values: list[float | None], stops: SweepStops, infeasible: tuple[int, ...] = ()) -> int | None:
    """Finish trials of ``values`` in turn (None: pruned) with ``stops`` watching; the number of the trial after which
    it stopped the study (None: it never did)."""
    stopped: list[int] = []
    study.stop = lambda: stopped.append(1)  # type: ignore[method-assign]
    for value in values:
        number = len(study.trials)
        state = TrialState.PRUNED if value is None else TrialState.COMPLETE
        study.add_trial(optuna.trial.create_trial(
            params={"d": 0.5}, distributions={"d": FloatDistribution(0, 1)}, state=state, value=value,
            system_attrs={"constraints": [1.0 if number in infeasible else 0.0]},
            intermediate_values={} if value is not None else {0: 0.1}))
        stops(study, study.trials[-1])
        if stopped:
            return number
    return None


def _stops(study: optuna.Study, ends: EndRules, target: int = 100) -> SweepStops:
    return SweepStops(Console(file=io.StringIO()), target, reads=ReadPerTrial(), ends=ends)


def _study(direction: str = "maximize") -> optuna.Study:
    return optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction=direction)


def test_a_plateau_ends_the_sweep_after_n_trials_without_a_gain_of_min_delta():
    study = _study()
    ends = _rules(plateau=Plateau(trials=3, min_delta=0.001))
    # 0.6 is the last gain (trial 1); 0.6005 gains less than min_delta; a pruned trial counts as finished.
    assert _sweep(study, [0.5, 0.6, 0.6005, None, 0.59, 0.7], _stops(study, ends)) == 4
    record = ended_by(study)
    assert record is not None and (record.rule, record.trial, record.finished, record.target) == ("plateau", 4, 5, 100)
    assert "the best (0.6, trial 1) has not improved by 0.001 over the last 3 finished trials" in record.why


def test_a_plateau_reads_the_direction_and_never_takes_an_infeasible_or_excluded_trial_for_the_best():
    study = _study("minimize")
    study.set_user_attr(EXCLUDED, {"3": "a leak in its data"})
    ends = _rules(plateau=Plateau(trials=2, min_delta=0.0))
    # Lower is better. Trials 2 (infeasible) and 3 (excluded) would be gains; they may not win, so they are not.
    assert _sweep(study, [0.5, 0.4, 0.1, 0.2, 0.45], _stops(study, ends), infeasible=(2,)) == 3
    assert "the best (0.4, trial 1)" in ended_by(study).why  # type: ignore[union-attr]


def test_the_target_bar_ends_the_sweep_at_the_first_trial_that_meets_it_and_every_worker_stops():
    study = _study()
    ends = _rules(on_target=True, scores={0: 0.85, 1: 0.95, 2: 0.99})
    assert _sweep(study, [0.8, 0.9, 0.95], _stops(study, ends)) == 1
    record = ended_by(study)
    assert record is not None and (record.rule, record.trial) == ("on_target", 1)
    assert "trial 1 met the target bar (test_accuracy ≥ 0.9)" == record.why
    # Another worker: its own trial meets nothing (below the bar), yet it stops after it: the study says the sweep ended.
    other = _rules(on_target=True, scores={})
    assert _sweep(study, [0.7], _stops(study, other)) == 2
    assert ended_by(study).trial == 1  # type: ignore[union-attr]  # still the rule that fired first


def test_an_infeasible_trial_never_meets_the_target():
    study = _study()
    ends = _rules(on_target=True, scores={0: 0.95, 1: 0.95})
    assert _sweep(study, [0.9, 0.9], _stops(study, ends), infeasible=(0,)) == 1


def test_a_sweep_that_ended_by_a_rule_says_so_and_goes_on_past_it_only_with_more_trials():
    study = _study()
    ends = _rules(plateau=Plateau(trials=2))
    assert _sweep(study, [0.5, 0.4, 0.3], _stops(study, ends, target=10)) == 2
    started = datetime.datetime.now() - datetime.timedelta(minutes=1)
    assert end_line(study, 10, None, started, "--timeout").endswith(
        "3 finished trials of 10 — ended: sweep.stop.plateau: the best (0.5, trial 0) has not improved by 0 over the "
        "last 2 finished trials; --trials above 10 to go on")
    assert nothing_to_do_line(StudyTrials(study), 10).startswith("nothing to do: the sweep already ended by "
                                                                   "sweep.stop.plateau: the best (0.5, trial 0)")
    go_on_past(study, ended_by(study))  # type: ignore[arg-type]  # what `sweep run --trials 20` does
    assert ended_by(study) is None
    # The window counts from where it went on: two more trials without a gain, not one.
    assert _sweep(study, [0.45, 0.35, 0.2], _stops(study, ends, target=20)) == 4


def test_without_stop_rules_nothing_is_read_or_recorded():
    study = _study()
    assert _sweep(study, [0.5, 0.4, 0.3, 0.2], _stops(study, None)) is None  # type: ignore[arg-type]
    assert ended_by(study) is None


STOPPING = """\
dataset: fashion_mnist
model: mlp
train: {epochs: 1, batch_size: 256}
params:
  units: {type: int, low: 16, high: 64, log: true}
target: {test_accuracy: {min: 0.05}}  # any trained model meets it
sweep: {sampler: {name: random}, pruner: {name: none}, stop: {on_target: true}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("project", ["workers"], indirect=True)
def test_the_target_bar_ends_a_sweep_of_two_worker_processes(project: Path, capfd):
    (project / "search_spaces" / "stopping.yaml").write_text(textwrap.dedent(STOPPING))
    # The command in this process (its workers forked from the template it keeps between tests); their output too.
    command = ["run", "stopping", "--trials", "8", "--workers", "2", "--subset", "2000", "--no-report"]
    code, first = main(command), capfd.readouterr()
    assert code == 0, first.out + first.err
    study = optuna.load_study(study_name="stopping", storage=open_storage(default_storage(project)))
    finished = count_finished(study)
    assert 1 <= finished <= 3  # the first trial ended it; the other worker finished only the trial it had begun
    assert "sweep.stop.on_target: trial" in first.out and "met the target bar" in first.out, first.out + first.err
    assert f"{finished} finished trials of 8 — ended: sweep.stop.on_target: trial" in first.out
    code, again = main(command), capfd.readouterr()
    assert code == 0, again.out + again.err
    assert "nothing to do: the sweep already ended by sweep.stop.on_target" in again.out, again.out + again.err
    assert count_finished(study) == finished  # nothing trained
