"""Notifications of a sweep (``sweep run --notify URL``, or ``$SWEEPS_NOTIFY_URL``; the address is checked with the
user's other choices, :attr:`sweeps.search.options.SweepOptions.notify_url`): one JSON message posted when it
ends (and why), fails (its error line), or finds a new best (at most one per ``every_s``, the latest winning).

They all come from one place, the command that started the sweep (:class:`SweepNotices`), however many workers train:
it watches the study for a new best. Posts go out from a background thread with a short timeout; a failed one is a
warning line, never an error, and never holds the sweep up.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import optuna
from rich.console import Console

from sweeps.store.storage import open_storage
from sweeps.store.trials import StudyTrials, count_finished

TIMEOUT_S = 5.0  # one post's; the sweep's end waits at most about this long for its last messages
BEST_EVERY_S = 60.0  # at most one new-best message per this many seconds
POLL_S = 2.0  # how often the command reads the study for a new best


class Poster:
    """Posts JSON messages to ``url`` in order from a daemon thread. The first failure is one warning line (naming
    the host only: a webhook's path is often its secret); later ones are silent."""

    def __init__(self, url: str, console: Console, timeout_s: float = TIMEOUT_S):
        self.url, self.console, self.timeout_s = url, console, timeout_s
        self.failed = 0
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._send_all, name="sweep-notify", daemon=True)
        self.thread.start()

    def post(self, message: dict[str, Any]) -> None:
        self.queue.put(message)

    def close(self) -> None:
        """Send what is queued, waiting at most about one post's timeout (a dead server never holds the end up)."""
        self.queue.put(None)
        self.thread.join(self.timeout_s + 1)

    def _send_all(self) -> None:
        while (message := self.queue.get()) is not None:
            request = urllib.request.Request(self.url, data=json.dumps(message).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
            except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, timed out, an HTTP error status
                self.failed += 1
                if self.failed == 1:
                    host = urlsplit(self.url).netloc.rpartition("@")[2]
                    self.console.print(f"warning: a notification to {host} failed ({exc}); the sweep goes on "
                                       "(later failures are not shown)", highlight=False)


class BestWatcher:
    """Reads the study every ``poll_s`` and calls ``found`` with each new best trial, at most once per ``every_s``:
    a best found sooner waits, replaced by any better one meanwhile. :meth:`stop` hands over the one still waiting.
    ``read``: the study (None while it does not exist yet)."""

    def __init__(self, read: Callable[[], optuna.Study | None], found: Callable[[optuna.Study, optuna.trial.FrozenTrial], None],
                 every_s: float = BEST_EVERY_S, poll_s: float = POLL_S):
        self.read, self.found, self.every_s, self.poll_s = read, found, every_s, poll_s
        self.seen = self._best_number()  # a best from before this sweep is no news
        self.last_post = -float("inf")
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="sweep-best", daemon=True)

    def start(self) -> BestWatcher:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()
        self.check(final=True)

    def check(self, final: bool = False) -> None:
        """Post the best when it is new and the last post is ``every_s`` old (or the sweep is over)."""
        study = self.read()
        best = None if study is None else StudyTrials(study).best
        if best is None or best.number == self.seen:
            return
        if final or time.monotonic() - self.last_post >= self.every_s:
            self.seen, self.last_post = best.number, time.monotonic()
            self.found(study, best)  # type: ignore[arg-type]

    def _best_number(self) -> int | None:
        study = self.read()
        best = None if study is None else StudyTrials(study).best
        return None if best is None else best.number

    def _watch(self) -> None:
        while not self.done.wait(self.poll_s):
            try:
                self.check()
            except Exception:  # a read that failed (a busy database) only delays the news: read again
                continue


class SweepNotices:
    """The messages of one ``sweep run``: a new best (watched from here), its end, its failure."""

    def __init__(self, url: str, console: Console, study_name: str, space: str, metric: str, storage_url: str,
                 every_s: float = BEST_EVERY_S, poll_s: float = POLL_S):
        self.poster = Poster(url, console)
        self.head = {"study": study_name, "space": space, "metric": metric}
        self.storage_url = storage_url
        self._study: optuna.Study | None = None
        self.watcher = BestWatcher(self._read, self._new_best, every_s, poll_s).start()

    def ended(self, rule: str, line: str) -> None:
        """The sweep ended by ``rule`` (``trials``, ``on_target``, ``plateau``, ``budget``, ``no_more_trials``,
        ``stopped_by_user``); ``line``: its last line."""
        self._end({"event": "ended", "rule": rule, "why": line})

    def failed(self, error: str) -> None:
        self._end({"event": "failed", "error": error})

    def _end(self, message: dict[str, Any]) -> None:
        try:
            self.watcher.stop()
            study = self._read()
        except Exception:  # the stores failed (the likely error being told): the message goes anyway
            study = None
        best = None if study is None else StudyTrials(study).best
        self.poster.post({**message, **self.head, "finished": 0 if study is None else count_finished(study),
                          "best_trial": None if best is None else best.number,
                          "best_value": None if best is None else best.values[0]})
        self.poster.close()

    def _new_best(self, study: optuna.Study, best: optuna.trial.FrozenTrial) -> None:
        self.poster.post({"event": "new_best", **self.head, "trial": best.number, "value": best.values[0],
                          "params": best.params, "finished": count_finished(study)})

    def _read(self) -> optuna.Study | None:
        """The study, loaded once it exists (the sweep creates it after this starts watching)."""
        if self._study is None:
            try:
                self._study = optuna.load_study(study_name=self.head["study"], storage=open_storage(self.storage_url))
            except KeyError:
                return None
        return self._study
