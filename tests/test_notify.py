"""Notifications (``sweep run --notify URL``): one JSON message when a sweep ends (why), fails (its error line) or
finds a new best (rate-limited, the latest winning), posted by the command that started it; a failed post is one
warning line and changes nothing else. Tested against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import optuna
import pytest
from optuna.distributions import FloatDistribution
from rich.console import Console

from sweeps.cli import main
from sweeps.console.notify import BestWatcher, Poster, SweepNotices
from sweeps.store.storage import default_storage, open_storage
from sweeps.store.trials import best_trial, count_finished


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []  # each server's own list (a subclass per server)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP server on 127.0.0.1 in a thread: its address and the JSON bodies it received."""
    handler = type("Hook", (_Hook,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler.received
    server.shutdown()


def _refusing_url() -> str:
    """An address where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def _study(values: list[float]) -> optuna.Study:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="maximize")
    for value in values:
        _add(study, value)
    return study


def _add(study: optuna.Study, value: float) -> None:
    study.add_trial(optuna.trial.create_trial(params={"d": 0.5}, distributions={"d": FloatDistribution(0, 1)},
                                              value=value))


def test_new_bests_are_rate_limited_and_the_latest_one_wins():
    study = _study([0.5])  # trial 0: a best from before the sweep, no news
    found: list[int] = []
    watcher = BestWatcher(lambda: study, lambda s, best: found.append(best.number), every_s=3600, poll_s=3600)
    watcher.check()
    _add(study, 0.6)  # trial 1: news, posted at once
    watcher.check()
    _add(study, 0.7)  # trial 2: within the hour after the last post: waits
    watcher.check()
    _add(study, 0.65)  # trial 3: not a best
    _add(study, 0.8)  # trial 4: replaces trial 2, still waiting
    watcher.check()
    assert found == [1]
    watcher.stop()  # the sweep ends: the one waiting goes out
    assert found == [1, 4]


def test_messages_reach_a_real_server_in_order(hook, tmp_path: Path):
    url, received = hook
    notices = SweepNotices(url, Console(file=io.StringIO()), "nosuch", "nosuch", "val_accuracy",
                           str(tmp_path / "optuna.journal"), poll_s=0.05)
    notices.failed("error: a store could not be reached")
    assert received == [{"event": "failed", "error": "error: a store could not be reached", "study": "nosuch",
                         "space": "nosuch", "metric": "val_accuracy", "finished": 0, "best_trial": None,
                         "best_value": None}]


def test_a_refused_post_is_one_warning_line_and_never_holds_the_sweep_up():
    out = io.StringIO()
    poster = Poster(_refusing_url(), Console(file=out, width=200))
    began = time.monotonic()
    for number in range(3):
        poster.post({"event": "new_best", "trial": number})
    assert time.monotonic() - began < 0.1  # posting only queues
    poster.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: a notification to 127.0.0.1:") and "refused" in lines[0]


def _sweep(capfd, *args: str) -> tuple[int, str]:
    """The command in this process (its workers forked from the template it keeps between tests): its exit status and
    what it and its workers wrote."""
    code = main(["run", "tiny", "--no-report", "--subset", "2000", *args])
    said = capfd.readouterr()
    return code, said.out + said.err


@pytest.mark.slow
@pytest.mark.parametrize("project", ["workers"], indirect=True)
def test_a_sweep_of_two_workers_posts_its_bests_once_and_its_end(tiny: Path, hook, capfd):
    url, received = hook
    code, said = _sweep(capfd, "--trials", "3", "--workers", "2", "--notify", url)
    assert code == 0, said
    study = optuna.load_study(study_name="tiny", storage=open_storage(default_storage(tiny)))
    best = best_trial(study)
    assert best is not None
    events = [m["event"] for m in received]
    assert events[-1] == "ended" and events.count("ended") == 1 and set(events[:-1]) == {"new_best"}, received
    bests = [m for m in received if m["event"] == "new_best"]
    assert len({m["trial"] for m in bests}) == len(bests)  # one place posts: no best twice
    assert (bests[-1]["trial"], bests[-1]["value"]) == (best.number, best.value)  # the latest best wins
    assert {k: received[-1][k] for k in ("study", "rule", "finished", "best_trial", "best_value")} == {
        "study": "tiny", "rule": "trials", "finished": 3, "best_trial": best.number, "best_value": best.value}
    assert received[-1]["why"].endswith("— ended: TRIALS reached (3)")

    code, said = _sweep(capfd, "--trials", "4", "--notify", _refusing_url())  # the server is gone: the sweep goes on
    assert code == 0, said
    assert said.count("warning: a notification to 127.0.0.1") == 1
    assert count_finished(study) == 4


def test_an_address_that_is_not_http_is_one_error_line_and_nothing_is_written(project: Path, capsys):
    (project / "search_spaces" / "tiny.yaml").write_text("dataset: fashion_mnist\nmodel: mlp\n"
                                                          "params: {units: {type: int, low: 16, high: 32}}\n")
    before = sorted(p.name for p in project.iterdir())
    assert main(["run", "tiny", "--no-report", "--subset", "2000", "--notify", "ftp://127.0.0.1/hook"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --notify (or $SWEEPS_NOTIFY_URL) 'ftp://127.0.0.1/hook': not an http:// or https:// address to post "
        "notifications to"]
    assert sorted(p.name for p in project.iterdir()) == before
