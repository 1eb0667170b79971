"""The worker contract and the driver's edges: a worker is one value that travels whole in its environment; every
MLflow run is closed with the status of how its block ended; plug-ins are named as module:function."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest

from sweeps.errors import UsageError
from sweeps.execution.spec import SPEC_ENV, WorkerSpec
from sweeps.execution.worker_loop import Extensions, load_extensions
from sweeps.search.options import SweepOptions
from sweeps.space.space import load_space
from sweeps.store.tracking import Tracker, closing_run

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"


def test_a_worker_spec_travels_whole_in_its_environment_and_nothing_on_its_command_line(monkeypatch):
    space = load_space("fashion_mlp", SPACES)
    options = SweepOptions(trials=5, quick=True, storage="postgresql://sweeps:secret@db/optuna", workers=2,
                           trials_per_process=10)
    spec = WorkerSpec.of(space, Path("/project"), options, worker_index=1, sweep_run="abc", deadline_at=1e9,
                         share=10, threads=1)
    env = spec.env()
    assert spec.command()[-2:] == ["sweeps.cli", "worker"] and "secret" not in " ".join(spec.command())
    assert env["TF_NUM_INTRAOP_THREADS"] == "1" and env["TF_NUM_INTEROP_THREADS"] == "1"
    monkeypatch.setenv(SPEC_ENV, env[SPEC_ENV])
    received = WorkerSpec.from_env()
    assert received == spec and received.space().sha == space.sha and received.space().spec == space.spec
    assert options.supervised and not SweepOptions(engine="kerastuner", workers=2).supervised
    monkeypatch.delenv(SPEC_ENV)
    with pytest.raises(UsageError, match=r"\$SWEEPS_WORKER is not set"):
        WorkerSpec.from_env()


def test_a_run_is_closed_with_the_status_of_how_its_block_ended(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "closing")
    statuses = {}
    for name, error in (("finished", None), ("failed", ValueError("boom")), ("killed", KeyboardInterrupt())):
        run_id = tracker.start_run(name)
        with pytest.raises(type(error)) if error else nullcontext(), closing_run(tracker, run_id):
            if error:
                raise error
        statuses[name] = tracker.client.get_run(run_id).info.status
    run_id = tracker.start_run("marked")
    seen = []
    with closing_run(tracker, run_id, before_close=seen.append) as end:
        end.fail()
    statuses["marked"] = tracker.client.get_run(run_id).info.status
    assert statuses == {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED", "marked": "FAILED"}
    assert seen == ["FAILED"]  # told the status before the run closed


def test_extensions_are_named_as_module_and_function():
    assert load_extensions(None, load_space("fashion_mlp", SPACES)) == Extensions()
    simulated = load_extensions("sweeps.bench.simulation:extensions", load_space("fashion_mlp", SPACES))
    assert simulated.register_best is False and simulated.train.__name__ == "train"
    with pytest.raises(UsageError, match="--extensions nosuch:thing: expected module:function"):
        load_extensions("nosuch:thing", load_space("fashion_mlp", SPACES))


def test_output_to_a_command_that_is_gone_stops_the_worker_politely_instead_of_failing_its_trial(monkeypatch):
    import os

    from sweeps import signals

    read_end, write_end = os.pipe()
    os.close(read_end)  # the command that read the worker's output was killed
    monkeypatch.setattr(signals, "_requested", [])
    out = signals._OrphanSafe(os.fdopen(write_end, "w", buffering=1))
    assert out.write("Epoch 3/6\n") == len("Epoch 3/6\n")  # no BrokenPipeError into the training loop
    out.flush()
    with pytest.raises(KeyboardInterrupt):
        signals.check()  # the next batch boundary stops the trial, which is then queued to go on
