"""The report's Scale section: what ``make bench-scale`` measured (reports/bench_scale.json), with its targets."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sweeps.next_command import next_command
from sweeps.reporting.html import esc, table, verdict

PER_TRIAL_GROWTH_TARGET = 2.0  # framework seconds per trial at the largest size over those at the smallest
REPORT_S_TARGET, REPORT_MB_TARGET = 60, 10  # a 1,000-trial study's report
STATUS_S_TARGET = 30  # `make status` on 1,000 trials
COLUMNS = {"trials": "trials", "finished": "finished", "sampler_s_per_trial": "sampler s / trial",
           "mlflow_s_per_trial": "MLflow s / trial", "trial_s": "trial s (all framework)",
           "trials_per_min_per_worker": "trials / min / worker", "status_s": "status s", "report_s": "report s",
           "summary_and_page_mb": "pages MB", "report_mb": "reports/ MB", "peak_rss_mb": "peak RSS MB"}


def verdicts(rows: list[dict]) -> dict[str, bool | None]:
    """Each target met (True), missed (False) or not measured at its size (None)."""
    if not rows:
        return {}
    first, last = rows[0], rows[-1]
    at_1000 = next((r for r in rows if r["trials"] == 1000), None)
    grows = (last["trial_s"] <= PER_TRIAL_GROWTH_TARGET * first["trial_s"]) if last["trials"] >= 10 * first["trials"] else None
    return {
        f"framework time per trial at {last['trials']} ≤ {PER_TRIAL_GROWTH_TARGET:g}× at {first['trials']}": grows,
        f"1,000-trial report ≤ {REPORT_S_TARGET} s and ≤ {REPORT_MB_TARGET} MB":
            None if at_1000 is None else at_1000["report_s"] <= REPORT_S_TARGET and at_1000["report_mb"] <= REPORT_MB_TARGET,
        f"status on 1,000 trials ≤ {STATUS_S_TARGET} s": None if at_1000 is None else at_1000["status_s"] <= STATUS_S_TARGET,
        "every size reached exactly, stores consistent (no lost or doubled run)":
            all(r["finished"] == r["trials"] and r["status_consistent"] and not r["duplicate_timings"] for r in rows),
    }


def scale_section(path: Path) -> str:
    """The Scale section, or nothing before ``make bench-scale`` has run."""
    try:
        setups = json.loads(path.read_text())["setups"]
    except (OSError, ValueError, KeyError):  # not measured yet, or written by an older version
        return ""
    parts = [f"<section><h2>Scale</h2><p>Measured by <code>{esc(next_command('bench-scale'))}</code>: one study of the fashion_cnn "
             "space grown through its sizes, nothing trained (a simulated repeat; the sampler, pruner, storages, "
             "MLflow logging, status and report are the real ones). Per-trial costs are means over the trials added "
             "since the previous size; the growth exponent k fits cost ∝ trials^k.</p>"]
    for key, part in setups.items():
        about, rows = part["about"], part["rows"]
        # As measured (already rounded to what the measurement resolves), not the report's 4-decimal accuracies.
        frame = (pd.DataFrame(rows).reindex(columns=list(COLUMNS)).rename(columns=COLUMNS)
                 .map(lambda v: "" if pd.isna(v) else f"{v:g}"))
        growth = ", ".join(f"{esc(cost)} {k:+.2f}" for cost, k in part["growth"].items() if k is not None)
        checks = "".join(f"<li>{esc(name)}: {verdict(ok) if ok is not None else 'not measured'}</li>"
                         for name, ok in verdicts(rows).items())
        parts.append(f"<h3>{esc(key)}</h3><p>{esc(about['date'])}, {esc(about['machine'])}.</p>"
                     f"{table(frame, sortable=False)}<p>Growth exponents: {growth or 'one size only'}.</p>"
                     f"<ul>{checks}</ul>")
    return "".join(parts) + "</section>"
