"""Workers forked from the template that imported TensorFlow once: each still runs as the command it stands for,
with its own environment, folder, session and output, and its status comes back."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.execution.forked import ForkedProcess, call_frozen, call_in_template, forking_is_safe, imports_frozen

REPO = Path(__file__).resolve().parents[1]


def _forked(tmp_path: Path, monkeypatch, *args: str) -> tuple[ForkedProcess, int]:
    monkeypatch.chdir(tmp_path)
    read, write = os.pipe()
    proc = ForkedProcess([sys.executable, "-m", "tests.forked_main", *args], {**os.environ, "PROBE": "mine"}, write)
    os.close(write)
    return proc, read


@pytest.mark.slow  # its template imports TensorFlow: 6 s of CPU
def test_a_forked_worker_runs_its_modules_main_with_its_own_environment_folder_session_and_output(tmp_path, monkeypatch):
    monkeypatch.delenv("PROBE", raising=False)
    proc, read = _forked(tmp_path, monkeypatch, "7", "more")
    assert proc.wait(120) == 7 and proc.poll() == 7
    with os.fdopen(read) as out:
        said = out.read()
    assert f"probe=mine cwd={tmp_path} own_session=True tensorflow_imported=True sql_store_imported=True argv=['7', 'more']" in said
    assert proc.worker().split(":")[1] == str(proc.pid)


@pytest.mark.slow
def test_a_forked_worker_stopped_by_a_signal_says_which(tmp_path, monkeypatch):
    proc, read = _forked(tmp_path, monkeypatch, "0", "hold")  # a SIGSTOP here once came after it had ended
    proc.kill()
    assert proc.wait(60) == -signal.SIGKILL
    os.close(read)


@pytest.mark.slow  # its template imports TensorFlow, if this process has none yet: 3.5 s of CPU
def test_the_template_imports_with_no_full_collection_and_its_forks_start_with_the_imports_frozen(monkeypatch):
    """A full collection during TensorFlow's import walks what it has made so far: 7 of them took a quarter of the
    template's 4.5 s of CPU here. None runs now, and a forked process finds the imports frozen and its collector on."""
    monkeypatch.chdir(REPO)  # tests.forked_main is imported from the project folder, as a builder of yours would be
    state = call_in_template("tests.forked_main:collector")
    assert state["full_collections"] == 0  # 70,000 new objects would be needed for one after the imports
    assert state["enabled"] and state["frozen"] > 400_000


def test_imports_in_the_block_run_uncollected_and_what_they_made_is_frozen():
    seen = []
    with imports_frozen():
        seen.append(gc.isenabled())
        made = [[] for _ in range(1000)]
    assert seen == [False] and gc.isenabled()
    assert not any(o is made for o in gc.get_objects())  # out of every generation: frozen


def test_sweep_report_imports_its_builder_as_a_worker_does(tmp_path, monkeypatch):
    """``call_frozen`` (how ``sweep report`` builds its report): the target's module imports uncollected, frozen."""
    (tmp_path / "frozen_probe.py").write_text("import gc\nENABLED = gc.isenabled()\nMADE = [[] for _ in range(100)]\n"
                                             "def answer(x):\n    return ENABLED, x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert call_frozen("frozen_probe:answer", 7) == (False, 7) and gc.isenabled()
    made = sys.modules["frozen_probe"].MADE
    assert not any(o is made for o in gc.get_objects())  # out of every generation: frozen


def test_workers_are_forked_only_where_no_gpu_can_be_touched_first():
    assert forking_is_safe([]) is (sys.platform == "linux")
    assert forking_is_safe(["0"]) is False


# In a fresh process (pytest's own may hold a template already): `sweep run` with start_sweep replaced by a probe of
# whether the fork server is running when the stores and the study are about to be opened.
PROBE_TEMPLATE = """\
import sys
from multiprocessing import forkserver
import sweeps.execution.launch as launch
launch.start_sweep = lambda *args: print("template running:", forkserver._forkserver._forkserver_pid is not None) or 0
from sweeps.cli import main
from sweeps.execution.forked import stop_template
code = main(sys.argv[1:])
stop_template()  # as the executable does: the template, still importing TensorFlow, ends with the probe
sys.exit(code)
"""


@pytest.mark.parametrize(("per_process", "running"), [("1", True), ("0", False)])
def test_a_sweep_of_forked_workers_starts_their_template_before_it_opens_its_stores(tiny: Path, per_process, running):
    done = subprocess.run([sys.executable, "-c", PROBE_TEMPLATE, "run", "tiny", "--trials-per-process", per_process,
                           "--no-report"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"template running: {running}" in done.stdout  # trials in this process (0): no template at all


def test_a_report_folder_that_cannot_be_written_is_refused_before_the_template_starts(tiny: Path):
    """An error found in the options ends the command at once: no template is left importing TensorFlow behind it
    (holding the pipe of whoever reads the command's output)."""
    (tiny / "reports").write_text("a file where the report's folder should be")
    says = ("import sys; from multiprocessing import forkserver; from sweeps.cli import main; code = main(sys.argv[1:]); "
            "print('template started:', forkserver._forkserver._forkserver_pid is not None); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", says, "run", "tiny", "--trials-per-process", "1"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "reports" in done.stderr, done.stderr[-2000:]
    assert "template started: False" in done.stdout
