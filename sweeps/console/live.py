"""A live progress line while a sweep trains (rich): trials finished of the target, the budget's time and an
estimate of the rest, the running trial's epoch and validation score, the best so far. On a terminal it stays
at the bottom while the per-trial lines scroll above it; elsewhere (CI, a log file) nothing is drawn and the
per-trial lines and Keras's epoch lines are the record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial
from rich.console import Console
from rich.live import Live
from rich.text import Text

from sweeps.store.trials import ReadPerTrial, StudyTrials


def clock(seconds: float) -> str:
    """``1:02:03`` or ``12:34``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class SweepProgress:
    """What the line shows; updated after each epoch and each trial."""

    metric: str
    target: int
    deadline: float | None = None  # time.monotonic() at which the budget ends
    budget_s: float | None = None
    finished: int = 0
    best: str = ""
    trial_times: list[float] = field(default_factory=list)
    running: str = ""
    started: float = field(default_factory=time.monotonic)

    def line(self) -> Text:
        """The progress line as it stands now."""
        now = time.monotonic()
        parts = [f"trials {self.finished}/{self.target}"]
        if self.deadline is not None and self.budget_s:
            left = self.deadline - now
            parts.append(f"{clock(self.budget_s - left)} of {clock(self.budget_s)}")
        else:
            parts.append(f"{clock(now - self.started)} elapsed")
        remaining = max(0, self.target - self.finished)
        if self.trial_times and remaining:
            eta = sum(self.trial_times) / len(self.trial_times) * remaining
            if self.deadline is not None:
                eta = min(eta, max(0.0, self.deadline - now))
            parts.append(f"ETA ~{clock(eta)}")
        if self.best:
            parts.append(self.best)
        if self.running:
            parts.append(self.running)
        return Text(" · ".join(parts), style="bold")

    def epoch(self, trial: int, seed: int, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        """A repeat of ``trial`` finished ``epoch`` of ``epochs``."""
        score = metrics.get(self.metric)
        shown = f" {self.metric} {score:.4f}" if score is not None else ""
        self.running = f"trial {trial} seed {seed}: epoch {epoch}/{epochs}{shown}"

    def trial_done(self, study: optuna.Study, trial: FrozenTrial, now: StudyTrials | None = None) -> None:
        """After each trial: counts, the best so far, how long trials take (``now``: the study's trials as just
        read; else read here)."""
        now = StudyTrials(study) if now is None else now
        self.finished = now.finished
        top = now.best
        self.best = "" if top is None else f"best {top.values[0]:.4f} (#{top.number})"
        if trial.datetime_start and trial.datetime_complete:
            self.trial_times.append((trial.datetime_complete - trial.datetime_start).total_seconds())
        self.running = ""


class LiveLine:
    """Draws a :class:`SweepProgress` at the bottom of a terminal (a no-op elsewhere); an Optuna callback. ``reads``:
    the study's trials as read once after each trial, shared with the other after-trial callbacks."""

    def __init__(self, console: Console, progress: SweepProgress, reads: ReadPerTrial | None = None):
        self.progress, self.reads = progress, reads or ReadPerTrial()
        self.live = Live(get_renderable=progress.line, console=console, transient=True, refresh_per_second=2,
                         redirect_stdout=True, redirect_stderr=True) if console.is_terminal else None

    def __enter__(self) -> LiveLine:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.progress.trial_done(study, trial, self.reads.of(study, trial))
