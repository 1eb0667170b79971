"""Where workers run and with what: resources per trial, GPUs per local worker, and the data sent to a cluster's
nodes (checked by digest on arrival). No cluster needed."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from rich.console import Console

from sweeps.cli import main
from sweeps.errors import ClusterError, UsageError
from sweeps.execution.local import LocalPlacement
from sweeps.execution.shipping import pack, unpack
from sweeps.execution.spec import WorkerSpec
from sweeps.search.options import SweepOptions
from sweeps.space.space import parse_space

SPACE = """\
dataset: {path: data/rows.csv, target: label}
model: mlp
params:
  units: {type: int, low: 8, high: 16}
sweep: {resources: {cpus: 2, gpus: 0.5}}
"""


def _space(tmp_path: Path, text: str = SPACE):
    return parse_space(text, tmp_path / "search_spaces" / "rows.yaml")


def test_resources_come_from_the_space_unless_the_command_line_says(tmp_path):
    space = _space(tmp_path)
    assert SweepOptions().resources(space) == (2, 0.5)
    assert SweepOptions(cpus_per_trial=4, gpus_per_trial=0).resources(space) == (4, 0)


def test_a_bad_resources_value_is_one_line_naming_the_field(tmp_path, monkeypatch, capsys):
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "search_spaces" / "bad.yaml").write_text(SPACE.replace("cpus: 2", "cpus: 0"))
    monkeypatch.chdir(tmp_path)
    assert main(["check", "bad"]) == 2
    err = capsys.readouterr().err
    assert "sweep.resources.cpus" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_local_workers_each_get_their_own_gpu_with_memory_growth(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    space = _space(tmp_path)
    placement = LocalPlacement(SweepOptions(workers=3), Console(quiet=True))
    first = WorkerSpec.of(space, tmp_path, SweepOptions(workers=3))
    specs = [placement.spec(first, i) for i in range(3)]
    assert [s.devices for s in specs] == ["0", "1", "0"]  # round robin over the machine's GPUs
    assert [s.worker_index for s in specs] == [0, 1, 2]
    env = specs[1].env()
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    alone = LocalPlacement(SweepOptions(), Console(quiet=True)).spec(WorkerSpec.of(space, tmp_path, SweepOptions()), 0)
    assert alone.devices is None and "CUDA_VISIBLE_DEVICES" not in {k: v for k, v in alone.env().items()
                                                                    if v != os.environ.get(k)}


@pytest.mark.parametrize("fork", [True, False])
def test_a_worker_that_cannot_start_leaves_no_pipe_open(tmp_path, monkeypatch, fork):
    import sweeps.execution.local as local

    def refused(*args, **kwargs):
        raise OSError("no more processes")

    monkeypatch.setattr(local, "ForkedProcess" if fork else "ChildProcess", refused)
    spec = WorkerSpec.of(_space(tmp_path), tmp_path, SweepOptions(workers=2))
    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match="no more processes"):
        local.LocalProcess(spec, "[w0]", Console(quiet=True), fork)
    assert len(os.listdir("/proc/self/fd")) == open_before


def test_data_of_the_project_reaches_a_node_checked_and_lands_where_the_space_finds_it(tmp_path):
    project, node = tmp_path / "project", tmp_path / "node-copy"
    (project / "data").mkdir(parents=True)
    (project / "data" / "rows.csv").write_text("a,label\n1,x\n2,y\n")
    bundle = pack(_space(project), project)
    assert bundle is not None and list(bundle.files) == ["data/rows.csv"] and not bundle.built_in
    assert unpack(bundle, node) == {}
    assert (node / "data" / "rows.csv").read_text() == "a,label\n1,x\n2,y\n"
    damaged = dataclasses.replace(bundle, files={"data/rows.csv": b"a,label\n1,x\n"})
    with pytest.raises(ClusterError, match="arrived damaged"):
        unpack(damaged, tmp_path / "other-node")
    assert not (tmp_path / "other-node").exists()  # nothing written from damaged data


def test_a_built_in_dataset_is_sent_from_the_data_folder_and_found_there_on_the_node(tmp_path, data_dir):
    space = parse_space("dataset: fashion_mnist\nmodel: mlp\nparams:\n  units: {type: int, low: 8, high: 16}\n",
                        tmp_path / "s.yaml")
    bundle = pack(space, tmp_path)
    assert bundle is not None and bundle.built_in and len(bundle.files) == 4
    placed = unpack(bundle, tmp_path)
    assert sorted(p.name for p in Path(placed["SWEEPS_DATA_DIR"], "fashion-mnist").iterdir()) == sorted(
        name.split("/")[1] for name in bundle.files)


def test_data_outside_the_project_cannot_reach_a_cluster(tmp_path):
    space = _space(tmp_path, SPACE.replace("data/rows.csv", "/etc/hosts"))
    with pytest.raises(UsageError, match="outside the project folder"):
        pack(space, tmp_path)


def test_the_kerastuner_engine_is_refused_on_a_cluster(tmp_path, monkeypatch, capsys):
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "search_spaces" / "kt.yaml").write_text(
        "dataset: fashion_mnist\nmodel: mlp\nparams:\n  units: {type: int, low: 8, high: 16}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "kt", "--engine", "kerastuner", "--cluster", "ray", "--no-report"]) == 2
    assert "use --engine optuna on a cluster" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.journal")) and not (tmp_path / "mlflow.db").exists()  # nothing written


def test_a_ray_address_where_nothing_answers_is_one_line_at_once(tmp_path, monkeypatch, capsys, data_dir):
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "search_spaces" / "r.yaml").write_text(
        "dataset: fashion_mnist\nmodel: mlp\nparams:\n  units: {type: int, low: 8, high: 16}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # Ray's own client would retry for minutes
    assert main(["run", "r", "--cluster", "ray", "--no-report"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: RAY_ADDRESS=127.0.0.1:1: no Ray cluster answers there") and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("*.journal")) and not (tmp_path / "mlflow.db").exists()
