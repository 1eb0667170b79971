"""Build the report: reports/summary.html (all spaces), reports/<study>.html (one each), reports/<study>/trials.csv."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from optuna.storages import BaseStorage

from experiments.evaluate import TestScores
from sweeps.next_command import next_command
from sweeps.reporting import model_figures
from sweeps.reporting.bench_page import bench_section
from sweeps.reporting.html import esc, fragment, image, page, render, table, verdict
from sweeps.reporting.output import write_file
from sweeps.reporting.scale_page import scale_section
from sweeps.reporting.significance import seeds_section
from sweeps.reporting.space_page import space_page
from sweeps.reporting.spread import ci
from sweeps.results.best_scores import CASE, CASE_MOVE, BestModelScores, case_image
from sweeps.results.read import collect
from sweeps.results.study_results import StudyResults, meets_target, target_text
from sweeps.store.storage import open_storage


def overview(results: list[StudyResults]) -> pd.DataFrame:
    """One row per study: its best trial against the target bar, and what the search cost."""
    rows = []
    for r in results:
        best = r.best()
        reach = r.time_to_target()
        spec = r.space.spec
        bar = target_text(spec.target, ", ")
        rows.append({
            "space": f'<a href="{esc(r.name)}.html">{esc(r.name)}</a>',
            "model": spec.model,
            "objective": esc(f"{spec.objective.resolved_direction} {r.metric}"
                             + (f", {spec.objective.directions[1]} {spec.objective.secondary}" if spec.objective.secondary else "")),
            "selected on": "TEST SET (optimistic)" if spec.validation == "test" else f"{spec.validation} validation",
            "target bar": esc(bar),
            "best validation": "" if best is None else ci(best, "value"),
            "its test accuracy or MAE": "" if best is None else (
                ci(best, r.test_metric) + (" (MAE)" if r.test_metric == "test_mae" else "")),
            "its test loss": "" if best is None else ci(best, "test_loss"),
            "target": "no bar" if not spec.target else "" if best is None else verdict(meets_target(best, spec.target)),
            "complete": r.count("COMPLETE"), "pruned": r.count("PRUNED"), "failed": r.count("FAIL"),
            "epochs": int(r.trials["epochs"].sum()),
            "winner found by": "" if best is None else best.get("found_by", ""),
            "training wall time (min)": f"{r.trials['duration_s'].sum() / 60:.1f}",
            "first trial meeting the bar (min)": "never" if reach is None else f"{reach / 60:.1f}",
        })
    return pd.DataFrame(rows)


def robustness_comparison(scored: dict[str, BestModelScores]) -> str:
    """The best models of all spaces side by side on rotated and shifted test images."""
    if not scored:
        return ""
    frame = pd.concat([s.robustness.assign(space=name) for name, s in scored.items()])
    wide = frame.pivot(index="perturbation", columns="space", values="accuracy").reindex(frame["perturbation"].unique())
    wide.columns.name = None
    return (f"<h2>Robustness of each space's best model</h2><p>Test accuracy on all test images, as they are and "
            f"rotated or shifted (an MLP reads pixels where they are; a CNN's filters slide).</p>"
            f"{table(wide.reset_index(), sortable=False)}{image(model_figures.robustness(frame), 'robustness')}")


def _overview(results: list[StudyResults]) -> str:
    """Real studies first; quick smoke runs in their own table (their numbers are not results)."""
    if not results:
        return f"<p>No sweeps yet: run <code>{next_command('run', '…')}</code>.</p>"
    real, quick = [r for r in results if not r.quick], [r for r in results if r.quick]
    parts = [table(overview(real), escape=False)] if real else ["<p>No real sweeps yet (only quick smoke runs).</p>"]
    if quick:
        parts.append("<h2>Quick smoke runs</h2><p>Small data subsets and at most 2 epochs: they check that a space "
                     f"runs, not how good it is.</p>{table(overview(quick), escape=False)}")
    return "".join(parts)


def _seeds(results: list[StudyResults]) -> str:
    sections = "".join(seeds_section(r) for r in results)
    return f"<h2>Seeds: is the best better, or within the noise?</h2>{sections}" if sections else ""


def _case_row(r: StudyResults, case: np.ndarray, names: tuple[str, ...], truth: int) -> dict[str, str]:
    """How one space's best model read the moved case image."""
    return {"space": f'<a href="{esc(r.name)}.html">{esc(r.name)}</a>', "model": r.space.spec.model,
            "selected on": r.metric,
            "top 3 classes": " · ".join(f"{names[i]} {case[i]:.0%}" for i in np.argsort(-case)[:3]),
            "read right": "yes" if int(np.argmax(case)) == truth else "NO"}


def seed_case(results: list[StudyResults]) -> str:
    """The seed note's case for CNNs: one test image rotated 20° and shifted 3 px, read by each space's best model
    (28x28 grey images only)."""
    parts = []
    moved = {r.name: (r, r.best_model) for r in results if r.best_model is not None and r.best_model.case is not None}
    for dataset in sorted({r.space.data_label for r, _ in moved.values()}):
        scored = [(r, best) for r, best in moved.values() if r.space.data_label == dataset]
        first = scored[0][1]
        assert isinstance(first.scores, TestScores) and first.case_class is not None  # 28x28 grey images' classes only
        names, truth = first.scores.class_names, first.case_class
        rows = pd.DataFrame([_case_row(r, best.case, names, truth) for r, best in scored if best.case is not None])
        figure = model_figures.case(first.x_test[CASE], case_image(first.x_test), CASE_MOVE)
        parts.append(f"<h3>{esc(dataset)}: test image {CASE} ({esc(names[truth])}) {CASE_MOVE}</h3>"
                     f"{image(figure, 'the moved test image')}{table(rows, sortable=False, escape=False)}")
    if not parts:
        return ""
    return ("<h2>The seed's case: one image rotated 20° and shifted 3 px</h2><p>The seed notes show an MLP misreading "
            "a digit so moved: the case for CNNs. Each space's best model reads the same moved test image (its "
            "probabilities); a space selected on val_robust_accuracy chose its model for such moves.</p>"
            + "".join(parts))


def build_report(storage: str | BaseStorage, tracking: str, reports_dir: Path, cache_dir: Path) -> Path:
    """Rebuild every page and CSV from the stores (``storage``: opened, or its URL or journal path); return the
    path of summary.html."""
    results = collect(open_storage(storage) if isinstance(storage, str) else storage, tracking, cache_dir)
    for r in results:
        write_file(reports_dir / r.name / "trials.csv", r.trials.to_csv(index=False))
        write_file(reports_dir / f"{r.name}.html", page(r.name, space_page(r)))
    scored = {r.name: r.best_model for r in results if r.best_model is not None and not r.best_model.robustness.empty}
    body = render("summary.html", built=time.strftime("%Y-%m-%d %H:%M"), overview=fragment(_overview(results)),
                  seeds=fragment(_seeds(results)), robustness=fragment(robustness_comparison(scored)),
                  seed_case=fragment(seed_case(results)), bench=fragment(bench_section(reports_dir / "bench.json")),
                  scale=fragment(scale_section(reports_dir / "bench_scale.json")))
    out = reports_dir / "summary.html"
    write_file(out, page("Sweep report", body))
    return out
