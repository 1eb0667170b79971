"""The static report: reports/summary.html (self-contained, images embedded) and reports/<study>/trials.csv."""

from __future__ import annotations

import html
import math
import os
import time
from pathlib import Path

import pandas as pd

from sweeps import figures
from sweeps.results import StudyResults, collect, meets_target

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1.5rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;white-space:nowrap}th{background:#f3f3f3}
.scroll{overflow-x:auto}
td:first-child,th:first-child{text-align:left}
.warn{background:#fff3cd;border:1px solid #e0b000;padding:.6rem;border-radius:4px}
.pass{color:#17702a;font-weight:bold}.fail{color:#b00020;font-weight:bold}
img{max-width:100%}section{border-top:2px solid #ccc;margin-top:2rem}code{background:#f3f3f3;padding:0 .2rem}
"""


def spread(mean: float | None, std: float | None, n: int | float | None, digits: int = 4) -> str:
    """``mean ± std (n=…)``; an empty string when the value is unknown."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    std = 0.0 if std is None or math.isnan(std) else std
    return f"{mean:.{digits}f} ± {std:.{digits}f} (n={int(n or 0)})"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return "unknown"
    return '<span class="pass">PASS</span>' if ok else '<span class="fail">FAIL</span>'


def _target_text(result: StudyResults) -> str:
    if not result.space:
        return "?"
    parts = [f"{m} {'≥ ' + str(b.min) if b.min is not None else ''}{' ≤ ' + str(b.max) if b.max is not None else ''}"
             for m, b in result.space.spec.target.items()]
    return " and ".join(parts)


def leaderboard(result: StudyResults) -> pd.DataFrame:
    """The trials table as shown: one formatted row per trial, best first."""
    t = result.trials
    table = pd.DataFrame({
        "trial": t["number"], "state": t["state"],
        f"{result.metric} (mean ± std, seeds)": [spread(*r) for r in zip(t["value_mean"], t["value_std"], t["n_repeats"])],
        "test accuracy": [spread(*r) for r in zip(t["test_accuracy_mean"], t["test_accuracy_std"], t["n_repeats"])],
        "test loss": [spread(*r) for r in zip(t["test_loss_mean"], t["test_loss_std"], t["n_repeats"])],
        "epochs": t["epochs"].astype("Int64"), "stopped": t["stop_reason"],
    })
    for col in result.params:
        table[col.removeprefix("params_")] = t[col]
    table["time (s)"] = t["duration_s"].round(0)
    table["MLflow run"] = t["mlflow_run_id"]
    return table


def _best_section(result: StudyResults) -> str:
    best = result.best()
    if best is None:
        return "<p>No completed trial yet.</p>"
    params = "".join(f"<tr><td>{html.escape(c.removeprefix('params_'))}</td><td>{html.escape(_short(best[c]))}</td></tr>"
                     for c in result.params if pd.notna(best[c]))
    ok = meets_target(best, result.space.spec.target) if result.space else None
    return f"""
<p>Trial <b>#{int(best['number'])}</b>: {result.metric} {spread(best['value_mean'], best['value_std'], best['n_repeats'])},
test accuracy {spread(best['test_accuracy_mean'], best['test_accuracy_std'], best['n_repeats'])},
test loss {spread(best['test_loss_mean'], best['test_loss_std'], best['n_repeats'])}.
Target bar ({html.escape(_target_text(result))}, on the mean over seeds): {_verdict(ok)}.
MLflow run <code>{html.escape(str(best['mlflow_run_id']))}</code>.</p>
<table><tr><th>param</th><th>value</th></tr>{params}</table>"""


def _figures(result: StudyResults) -> str:
    parts = []
    done = result.trials.dropna(subset=["value"])
    if not done.empty:
        fig = figures.optimisation_history(result.trials, result.metric, result.maximise)
        parts.append(f'<h3>Optimisation history</h3><img alt="optimisation history" src="{figures.to_data_uri(fig)}">')
        if result.params:
            frame = result.trials.rename(columns=lambda c: c.removeprefix("params_"))
            names = [p.removeprefix("params_") for p in result.params]
            logs = {n for n, p in result.space.spec.params.items() if getattr(p, "log", False)} if result.space else set()
            logs |= {n for n in names if n.rpartition("_")[0] in logs}
            fig = figures.param_effects(frame, names, result.metric, logs)
            parts.append(f'<h3>{result.metric} against each param</h3><img alt="param effects" src="{figures.to_data_uri(fig)}">')
    best = result.best()
    if best is not None and result.tracker is not None:
        first = result.repeats[result.repeats["trial"] == best["number"]].iloc[0]
        history = result.tracker.metric_history(first["run_id"], ("loss", "accuracy", "val_loss", "val_accuracy"))
        title = f"best trial #{int(best['number'])}, seed {int(first['seed'])}"
        fig = figures.learning_curves(history, title, int(first["best_epoch"]))
        parts.append(f'<h3>Learning curves of the best trial</h3><img alt="learning curves" src="{figures.to_data_uri(fig)}">')
    return "\n".join(parts)


def _study_section(result: StudyResults) -> str:
    counts = result.trials["state"].value_counts()
    spec = result.space.spec if result.space else None
    notes = []
    if spec and spec.validation == "test":
        notes.append('<p class="warn"><b>Warning:</b> this space used the <b>test set as validation</b> (as the blog did): '
                     "the model was selected on the images that score it, so its test numbers are optimistic.</p>")
    if result.study.user_attrs.get("quick"):
        notes.append('<p class="warn">Quick smoke run: a small data subset and at most 2 epochs; not real results.</p>')
    split = f"selected on the {spec.validation} validation split, scored on the test set" if spec else ""
    about = f"{spec.description} · dataset {spec.dataset} · {spec.model} · {split}" if spec else ""
    return f"""
<section id="{html.escape(result.name)}"><h2>{html.escape(result.name)}</h2>
<p>{html.escape(about)}</p>{''.join(notes)}
<p>Trials: {', '.join(f'{n} {s.lower()}' for s, n in counts.items())}; {int(result.trials['epochs'].sum())} epochs trained;
repeats per trial: {spec.sweep.repeats if spec else '?'}.</p>
<h3>Best configuration</h3>{_best_section(result)}
<h3>Leaderboard</h3><div class="scroll">{leaderboard(result).to_html(index=False, na_rep="", float_format=_short)}</div>
{_figures(result)}
</section>"""


def overview(results: list[StudyResults]) -> pd.DataFrame:
    """One row per study: its best trial and how the sweep went."""
    rows = []
    for r in results:
        best, counts = r.best(), r.trials["state"].value_counts()
        rows.append({
            "space": r.name,
            "best trial": "" if best is None else int(best["number"]),
            f"best validation (mean ± std, seeds)": "" if best is None else spread(best["value_mean"], best["value_std"], best["n_repeats"]),
            "its test accuracy": "" if best is None else spread(best["test_accuracy_mean"], best["test_accuracy_std"], best["n_repeats"]),
            "its test loss": "" if best is None else spread(best["test_loss_mean"], best["test_loss_std"], best["n_repeats"]),
            "target": "" if best is None or not r.space else ("PASS" if meets_target(best, r.space.spec.target) else "FAIL"),
            **{s.lower(): int(counts.get(s, 0)) for s in ("COMPLETE", "PRUNED", "FAIL")},
            "epochs": int(r.trials["epochs"].sum()),
        })
    return pd.DataFrame(rows)


def _write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def build_report(storage: str, tracking: str, reports_dir: Path) -> Path:
    """Rebuild reports/summary.html and each study's trials.csv from the stores; return the HTML path."""
    results = collect(storage, tracking)
    for r in results:
        _write(reports_dir / r.name / "trials.csv", r.trials.to_csv(index=False))
    body = "\n".join(_study_section(r) for r in results) or "<p>No sweeps yet: run <code>make sweep SPACE=…</code>.</p>"
    page = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Sweep report</title>
<style>{CSS}</style></head><body><h1>Sweep report</h1>
<p>Built {time.strftime('%Y-%m-%d %H:%M')} from the Optuna study store and the MLflow runs. Every number is the mean ±
standard deviation over the seeded repeats of a trial (n = number of seeds). Models are selected on validation data
and scored once on the test set.</p>
{overview(results).to_html(index=False) if results else ''}
{body}</body></html>"""
    out = reports_dir / "summary.html"
    _write(out, page)
    return out
