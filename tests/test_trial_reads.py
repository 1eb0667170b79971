"""After each finished trial the study is read once, and that read is shared by every after-trial callback (the trial
line, the live line, dead-worker recovery, the stop rules); recovery that changes the study has the stop rules read
it again."""

from __future__ import annotations

import io
import socket

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from rich.console import Console

from sweeps.console.lines import TrialLine
from sweeps.console.live import LiveLine, SweepProgress
from sweeps.search.stop_rules import DeadWorkerRecovery, SweepStops
from sweeps.store.keys import WORKER
from sweeps.store.trials import ReadPerTrial, StudyTrials, best_trial, count_finished, count_running, target_reached

DEAD = f"{socket.gethostname()}:4194303:1.00"  # a pid past Linux's largest: no such process


def _study(values: list[float]) -> optuna.Study:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    for value in values:
        study.add_trial(optuna.trial.create_trial(params={"d": value / 2}, distributions={"d": FloatDistribution(0, 1)},
                                                  value=value))
    return study


def _counting_reads(study: optuna.Study) -> list[int]:
    reads: list[int] = []
    get_trials = study.get_trials

    def counted(*args, **kwargs):
        reads.append(1)
        return get_trials(*args, **kwargs)

    study.get_trials = counted  # type: ignore[method-assign]
    return reads


def _callbacks(reads: ReadPerTrial, study: optuna.Study, target: int) -> tuple[list, list[str]]:
    console, stopped = Console(file=io.StringIO()), []
    study.stop = lambda: stopped.append("stop")  # type: ignore[method-assign]
    stops = SweepStops(console, target, reads=reads)
    recovery = DeadWorkerRecovery(study._storage, reads=reads)
    return [LiveLine(console, SweepProgress("val_accuracy", target), reads), TrialLine(console, "val_accuracy", target, reads),
            recovery, stops], stopped


def test_every_after_trial_callback_shares_one_read_of_the_study():
    study = _study([0.91, 0.93, 0.92])
    reads = ReadPerTrial()
    callbacks, _ = _callbacks(reads, study, target=10)
    trials = study.get_trials()
    counted = _counting_reads(study)
    for trial in trials:  # three trials finishing in turn
        for callback in callbacks:
            callback(study, trial)
    assert len(counted) == 3  # one read per finished trial, not one per question
    assert reads.read is not None and reads.read.best.number == 1 and reads.read.finished == 3


def test_a_read_answers_as_the_study_does():
    study = _study([0.91, 0.93, 0.92])
    study.ask()  # running
    study.enqueue_trial({"d": 0.2})
    now = StudyTrials(study)
    assert now.best.number == best_trial(study).number == 1
    assert (now.finished, now.running) == (count_finished(study), count_running(study)) == (3, 1)
    assert [now.target_reached(n) for n in (3, 4, 5)] == [target_reached(study, n) for n in (3, 4, 5)] == [True, True, False]


def test_recovery_that_queues_a_retry_has_the_stop_rules_read_again():
    study = _study([0.91, 0.93])
    lost = study.ask({"d": FloatDistribution(0, 1)})
    lost.set_user_attr(WORKER, DEAD)  # its worker died mid-trial
    reads = ReadPerTrial()
    callbacks, stopped = _callbacks(reads, study, target=3)  # 2 finished + 1 running: the target, until it is lost
    finished = study.get_trials()[1]
    for callback in callbacks:
        callback(study, finished)
    states = [t.state for t in study.get_trials()]
    assert states[2] == TrialState.FAIL and states[3] == TrialState.WAITING  # failed and queued again
    assert stopped == []  # the queued retry is owed: the stop rules saw it, the study goes on


def test_without_recovery_the_same_study_stops():
    study = _study([0.91, 0.93])
    study.ask({"d": FloatDistribution(0, 1)})  # a live worker's trial: 2 finished + 1 running make the target
    reads = ReadPerTrial()
    callbacks, stopped = _callbacks(reads, study, target=3)
    for callback in callbacks:
        callback(study, study.get_trials()[1])
    assert stopped == ["stop"] and [t.state for t in study.get_trials()][2] == TrialState.RUNNING


def test_an_infeasible_or_excluded_trial_is_never_the_best_and_keeps_its_record():
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    for value, constraints in ((0.5, None), (0.9, (0.0, 3.0)), (0.8, None), (0.7, (-1.0, 0.0))):
        study.add_trial(optuna.trial.create_trial(  # 0.9 infeasible (a value > 0); 0.7 feasible (each <= 0)
            params={"d": value / 2}, distributions={"d": FloatDistribution(0, 1)}, value=value,
            system_attrs={"constraints": constraints} if constraints else None))
    assert best_trial(study).number == 2
    study.set_user_attr("excluded", {"2": "leaked test images"})  # 0.8: kept out by hand
    assert best_trial(study).number == 3 and len(study.get_trials()) == 4


def test_a_trial_pruned_across_folds_reads_after_which_fold_not_at_which_epoch():
    study = _study([0.9])
    study.add_trial(optuna.trial.create_trial(
        params={"d": 0.1}, distributions={"d": FloatDistribution(0, 1)}, state=TrialState.PRUNED,
        intermediate_values={0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5}, user_attrs={"folds_trained": 4}))
    out = io.StringIO()
    TrialLine(Console(file=out, width=200), "val_accuracy", 5)(study, study.get_trials()[-1])
    assert "PRUNED   pruned after fold 4 " in out.getvalue() and "epoch" not in out.getvalue()
