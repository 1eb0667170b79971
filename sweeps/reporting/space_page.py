"""One space's report page, reports/<study>.html: every section is computed from the stores."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from experiments.evaluate import RegressionScores
from experiments.settings import base_name
from sweeps.next_command import next_command
from sweeps.reporting import figures, model_figures
from sweeps.reporting.html import esc, fragment, image, render, short, table, value_text, verdict, warning
from sweeps.reporting.significance import label, versus_best
from sweeps.reporting.spread import ci
from sweeps.results.hints import hints
from sweeps.results.study_results import TOP_K, StudyResults, meets_target, ranked, target_text
from sweeps.space.schema import CategoricalParam
from sweeps.stats import overfitting_onset, spread
from sweeps.store.keys import MLFLOW_RUN_ID, SPACE, SPACE_YAML

if TYPE_CHECKING:
    from sweeps.results.best_scores import BestModelScores

def run_link(result: StudyResults, run_id: object) -> str:
    """A link to the run in the MLflow UI, or its id when no UI address is known."""
    if not isinstance(run_id, str):
        return ""
    if result.mlflow_ui is None or result.experiment_id is None:
        return f"<code>{esc(run_id)}</code>"
    return f'<a href="{esc(result.mlflow_ui)}/#/experiments/{result.experiment_id}/runs/{run_id}">{run_id[:8]}</a>'


def honesty(result: StudyResults) -> str:
    spec = result.space.spec
    size = f"{spec.val_size:.0%} of the" if spec.val_size < 1 else f"{int(spec.val_size):,}"
    what = "images" if isinstance(spec.dataset, str) else f"examples of {spec.dataset.path} (or its own x_val, if any)"
    holdout = "the last" if isinstance(spec.dataset, str) else "a seeded, class-stratified share fixed by the file:"
    selected = {"holdout": f"{holdout} {size} training {what} (held out of training)",
                "stratified": f"a seeded, class-balanced {size} training {what} (held out)",
                "test": "the test set",
                "kfold": f"{spec.folds}-fold cross-validation of the training {what}, folds stratified by class and "
                         "fixed by the file: each trial trains once per fold with that fold held out, its value the "
                         "mean over the folds"}[spec.validation]
    parts = [f"<p>Selection (EarlyStopping, ModelCheckpoint, pruning, the objective) used {selected}; "
             f"scoring used the test set, once per trial, on its restored best checkpoint. "
             f"{_repeats(spec)}"
             f"{_confirm_note(spec.sweep.confirm)}.</p>"]
    if spec.validation == "test":
        parts.append(warning("<b>Warning:</b> this space selects on the <b>test set</b> (as the blog did): its test "
                             "numbers are optimistic, not an estimate of accuracy on new images."))
    if result.quick:
        parts.append(warning("Quick smoke run: a small data subset and at most 2 epochs; not real results."))
    return "".join(parts)


def _repeats(spec) -> str:
    """How many times a trial trains: once per seed, or once per fold (each its own seed)."""
    seeds = f"{spec.sweep.seed}…{spec.sweep.seed + spec.sweep.repeats - 1}"
    if spec.validation == "kfold":
        return f"Folds per trial: {spec.folds} (fold i trained with seed {spec.sweep.seed} + i: seeds {seeds})"
    return f"Repeats per trial: {spec.sweep.repeats} (seeds {seeds})"


def _confirm_note(count: int) -> str:
    return f"; the search's winner trained again on {count} new seed(s) after it (sweep.confirm)" if count else ""


LEADERBOARD_ROWS = 200  # a page lists the best trials; every trial is in trials.csv (a page stays small at any size)


def _bar_verdict(best: pd.Series, target: dict) -> str:
    if not target:
        return "No target bar set."
    return f"Target bar ({esc(target_text(target))}, on the mean over seeds): {verdict(meets_target(best, target))}."


def leaderboard(result: StudyResults, rows: int | None = None) -> pd.DataFrame:
    """One row per trial (the best ``rows`` when given), best first: its params, the target verdict, each score's
    mean ± 95 % CI (min and max when some trial has several seeds) and, with several seeds, whether the best is
    better than it."""
    t = result.trials.head(rows) if rows else result.trials
    frame = pd.DataFrame({"trial": t["number"], "state": t["state"]})
    kept_out = _kept_out(t)
    if kept_out.any():  # excluded and infeasible trials: struck through, with why they cannot win
        frame["trial"] = [f'<s title="cannot win">{n}</s>' if out else n for n, out in zip(t["number"], kept_out, strict=True)]
        frame["kept out of best"] = [_why_out(r) for _, r in t.iterrows()]
    if result.space.spec.target:  # no bar, no verdict column
        frame["target"] = [verdict(meets_target(r, result.space.spec.target)) if r["state"] == "COMPLETE" else ""
                           for _, r in t.iterrows()]
    if "found_by" in t:
        frame.insert(1, "found by", t["found_by"])
    for col in result.params:  # values from the space file: escaped, as the table is not
        frame[col.removeprefix("params_")] = t[col].map(lambda v: esc(value_text(v)))
    seeds = bool((t["n_repeats"] > 1).any())
    over = "n folds" if result.space.spec.validation == "kfold" else "n"  # the spread is over folds, not seeds
    frame[f"{result.metric} mean ± 95% CI ({over})"] = [ci(r, "value") for _, r in t.iterrows()]
    if seeds:
        frame["min"], frame["max"] = t["value_min"], t["value_max"]
    differences = versus_best(result)
    if differences:  # configs the seeds cannot tell from the best are marked
        frame["best − this [95% CI]"] = [label(differences.get(int(n))) for n in t["number"]]
    if "secondary" in t:
        frame[result.space.spec.objective.secondary] = t["secondary"]
    test = result.test_metric
    frame[result.test_label] = [ci(r, test) for _, r in t.iterrows()]
    if seeds:
        frame["test min"], frame["test max"] = t[f"{test}_min"], t[f"{test}_max"]
    frame["test loss"] = [ci(r, "test_loss") for _, r in t.iterrows()]
    frame["epochs"] = t["epochs"].astype("Int64")
    frame["stopped"] = t["stop_reason"]
    frame["time (s)"] = t["duration_s"].round(0)
    frame["MLflow run"] = [run_link(result, r) for r in t[MLFLOW_RUN_ID]]
    return frame


def _kept_out(trials: pd.DataFrame) -> pd.Series:
    """The completed trials that cannot win: excluded by hand, or infeasible."""
    return (trials["state"] == "COMPLETE") & ~ranked(trials)


def _why_out(row: pd.Series) -> str:
    if isinstance(row.get("excluded"), str):
        return f"<s>excluded</s>: {esc(row['excluded'])}"
    return "infeasible (broke the space's constraints)" if bool(row.get("infeasible", False)) else ""


def best_config(result: StudyResults) -> str:
    best = result.best()
    if best is None:
        return "<p>No completed trial yet.</p>"
    params = pd.DataFrame({"param": [p.removeprefix("params_") for p in result.params if pd.notna(best[p])],
                           "value": [short(best[p]) for p in result.params if pd.notna(best[p])]})
    reproduce = next_command("reproduce", result.attrs.get(SPACE, result.name), trial=int(best["number"]),
                             quick=result.quick, engine=result.engine)
    test = result.test_metric
    low_high = f" (min {short(best[test + '_min'])}, max {short(best[test + '_max'])})" if best["n_repeats"] > 1 else ""
    return f"""<p>Trial <b>#{int(best['number'])}</b>{_origin(result, best)}: {result.metric} {ci(best, 'value')};
{result.test_label} {ci(best, test)}{low_high};
test loss {ci(best, 'test_loss')}. {_bar_verdict(best, result.space.spec.target)}
{_confirmed(best)}MLflow run {run_link(result, best[MLFLOW_RUN_ID])}.</p>
<p>Reproduce it: <code>{esc(reproduce)}</code>
(trains these params again with the same seeds and compares).</p>{table(params, sortable=False)}{refit_comparison(result, best)}"""


def _origin(result: StudyResults, best: pd.Series) -> str:
    """Who found the best trial: one of the space file's baselines (written by hand) or the search."""
    origin = best.get("found_by")
    if not isinstance(origin, str):
        return ""
    if origin.startswith("baseline"):
        return f" ({esc(origin)} of the space file: a configuration written by hand, not found by the search)"
    if origin == "sampler":
        return f" (chosen by the {esc(result.space.spec.sweep.sampler.name.upper())} sampler)"
    if origin == "queued by hand":
        return " (queued by hand with <code>sweep enqueue</code>: a configuration of yours, not found by the search)"
    return f" (chosen by {esc(origin)})"


def _confirmed(best: pd.Series) -> str:
    """Which of the best trial's seeds chose it and which only confirmed it."""
    extra = int(best.get("confirmation_seeds") or 0)
    if not extra:
        return ""
    return (f"Its scores are those of the {extra} seed(s) trained after the search to confirm it (the same params, "
            f"new seeds); the seed the search chose it on scored {short(best['search_value'])}, kept apart: a winner's "
            "own seed is the best of many noisy draws. ")


def refit_comparison(result: StudyResults, best: pd.Series) -> str:
    """The best trial as selected beside its refit on training + validation images (``sweep refit``)."""
    refits = result.refits[result.refits["trial"] == best["number"]]
    if refits.empty:
        refit = next_command("refit", result.attrs.get(SPACE, result.name), quick=result.quick, engine=result.engine)
        return (f"<p>Not refit yet: <code>{esc(refit)}</code> trains this config on the training and "
                "validation images together and scores it once on the test set.</p>")
    selected = result.repeats[result.repeats["trial"] == best["number"]]
    rows = pd.DataFrame({
        "model": ["selected (trained on the training split, stopped on validation)",
                  "refit (training + validation images, fixed epochs)"],
        "epochs": [", ".join(str(int(e)) for e in selected["best_epoch"].dropna()),
                   ", ".join(str(int(e)) for e in refits["epochs"])],
        result.test_label: [str(spread(selected[result.test_metric].tolist())),
                            str(spread(refits[result.test_metric].tolist()))],
        "test loss": [str(spread(selected["test_loss"].tolist())), str(spread(refits["test_loss"].tolist()))],
    })
    size = pd.to_numeric(refits["train_size"], errors="coerce").dropna()
    images = f" ({int(size.iloc[0]):,} images)" if len(size) else ""
    return (f"<h3>Selected vs refit</h3><p>The refit trains the same config with the same seeds on the training and "
            f"validation images together{images}, for each seed's best epoch as selected (no data is left to stop "
            f"on). It has no validation "
            f"score of its own; its test score is measured once and is not used to choose between the two.</p>"
            f"{table(rows, sortable=False)}")


def search_figures(result: StudyResults) -> str:
    done = result.trials.dropna(subset=["value"])
    if done.empty:
        return ""
    frame = result.trials.rename(columns=lambda c: c.removeprefix("params_"))
    names = [p.removeprefix("params_") for p in result.params]
    logs = {n for n, p in result.space.spec.params.items() if getattr(p, "log", False)}
    logs |= {n for n in names if base_name(n, result.space.spec.model) in logs}
    parts = [f"<h3>Optimisation history</h3>{image(figures.optimisation_history(result.trials, result.metric, result.maximise), 'optimisation history')}"]
    secondary = result.space.spec.objective.secondary
    if secondary:
        front = figures.pareto_front(result.trials, result.pareto_front, result.metric, secondary)
        parts.append(f"<h3>Pareto front: {result.metric} against {secondary}</h3><p>{len(result.pareto_front)} trials "
                     f"are not beaten on both at once.</p>{image(front, 'Pareto front')}")
    if result.intermediate and result.count("PRUNED"):
        states = dict(zip(result.trials["number"], result.trials["state"], strict=True))
        parts.append(f"<h3>What the pruner saw</h3><p>{result.metric} after each epoch of every trial's first "
                     f"repeat; {result.count('PRUNED')} trials were pruned where their line ends.</p>"
                     f"{image(figures.intermediate_values(result.intermediate, states, result.metric), 'intermediate values')}")
    if names:
        categorical = {n for n in names if isinstance(result.space.spec.params.get(base_name(n, result.space.spec.model)),
                                                      CategoricalParam)}
        effects = figures.param_effects(frame, names, result.metric, logs, categorical)
        few = len(done) < figures.MIN_TRIALS_FOR_TRENDS
        note = (f"<p>No trend lines: {len(done)} completed trials, fewer than {figures.MIN_TRIALS_FOR_TRENDS} "
                "(a line through a handful of points says little).</p>" if few else "")
        parts.append(f"<h3>{result.metric} against each param</h3>{note}{image(effects, 'param effects')}")
        parts.append(importance(result, len(done)))
        top = frame.loc[done.sort_values("value", ascending=not result.maximise).index[:15]]
        parts.append(f"<h3>Parallel coordinates of the top {len(top)} trials</h3>"
                     f"{image(figures.parallel_coordinates(top, names, result.metric), 'parallel coordinates')}")
    return "".join(parts)


def importance(result: StudyResults, completed: int) -> str:
    if completed < figures.MIN_TRIALS_FOR_TRENDS:
        return (f"<h3>Param importance</h3><p>Not shown: {completed} completed trials, fewer than "
                f"{figures.MIN_TRIALS_FOR_TRENDS}; importance from so few is mostly noise.</p>")
    if not result.importances:
        return f"<h3>Param importance</h3><p>Not computable yet: {esc(result.importance_note)}.</p>"
    return f"<h3>Param importance</h3>{image(figures.importance(result.importances, 'Optuna PED-ANOVA'), 'param importance')}"


def space_hints(result: StudyResults) -> str:
    """Changes to the space file that the trials suggest (also printed by ``sweep check SPACE``)."""
    found = hints(result.space, result.trials, result.importances, result.maximise)
    if not found:
        return ""
    items = "".join(f"<li><code>params.{esc(h.param)}</code>: {esc(h.text)}</li>" for h in found)
    return f"<h3>Hints for the space file</h3><ul>{items}</ul>"


def learning_curves(result: StudyResults) -> str:
    parts = []
    done = result.trials[ranked(result.trials)].head(TOP_K)
    for rank, (_, trial) in enumerate(done.iterrows(), start=1):
        first = result.repeats[result.repeats["trial"] == trial["number"]].head(1)
        history = result.curves.get(int(trial["number"]))
        if first.empty or history is None or history.empty:
            continue
        first = first.iloc[0]
        onset = overfitting_onset(history["loss"].tolist(), history["val_loss"].tolist())
        if onset is not None:  # a warm-started trial's history begins after epoch 1
            onset += int(history["epoch"].iloc[0]) - 1
        title = f"#{rank}: trial {int(trial['number'])}, seed {int(first['seed'])}"
        note = f"overfitting from epoch {onset}" if onset else "no overfitting onset"
        parts.append(f"<p>{esc(title)} — best epoch {short(first['best_epoch'])}, {note}.</p>"
                     f"{image(figures.learning_curves(history, title, int(first['best_epoch']), onset), title)}")
    return f"<h3>Learning curves of the top {TOP_K} trials</h3>{''.join(parts)}" if parts else ""


def stopping(result: StudyResults) -> str:
    reps = result.repeats
    if reps.empty:
        return ""
    counts = reps["stop_reason"].value_counts().rename_axis("stopped").reset_index(name="repeats")
    pruned = reps[reps["stop_reason"] == "pruned"]["epochs"]
    budget = reps["max_epochs"].fillna(reps["epochs"]).sum()
    if not budget:
        return ""
    saved = budget - reps["epochs"].sum()
    pruned_text = f"pruned after {short(pruned.median())} epochs (median; range {int(pruned.min())}–{int(pruned.max())})" if len(pruned) else "nothing pruned"
    return f"""<h3>Pruning and early stopping</h3>
<p>{len(reps)} repeats trained {int(reps['epochs'].sum())} epochs of a possible {int(budget)} (every repeat to its max
epochs): {int(saved)} epochs ({saved / budget:.0%}) saved by early stopping and pruning; {pruned_text}.</p>
{table(counts, sortable=False)}{image(figures.stop_epochs(reps), 'epochs trained by stop reason')}"""


def best_regression(scores: BestModelScores, s: RegressionScores) -> str:
    """A regression's best model: its errors on the test set, predicted against true, and the residuals."""
    return f"""<h3>Best model on the test set</h3>
<p>Trial {scores.run.trial}, seed {scores.run.seed}, restored best checkpoint, on {scores.examples}:
mean absolute error {s.mae:.4g}, root mean squared error {s.rmse:.4g}, R² {s.r2:.3f}.</p>
<h4>Predicted vs true</h4>{image(model_figures.predicted_vs_true(s.y_true, s.y_pred), 'predicted vs true')}
<h4>Residuals</h4>{image(model_figures.residuals(s.y_true, s.y_pred), 'residuals')}"""


def best_model(scores: BestModelScores | None) -> str:
    if scores is None:
        return ""
    s = scores.scores
    if isinstance(s, RegressionScores):
        return best_regression(scores, s)
    mistakes = s.mistakes()
    shown = (image(model_figures.mistakes(scores.x_test, mistakes), 'misclassified test images') if scores.pictures
             else table(mistakes))
    robust = "" if scores.robustness.empty else (
        "<h4>Robustness: rotated and shifted test images</h4>"
        f"{table(scores.robustness.assign(accuracy=scores.robustness['accuracy'].round(4)), sortable=False)}")
    return f"""<h3>Best model on the test set</h3>
<p>Trial {scores.run.trial}, seed {scores.run.seed}, restored best checkpoint: accuracy {s.accuracy:.4f} on
{scores.examples}.</p>
<h4>Confusion matrix</h4>{image(model_figures.confusion(s.confusion()), 'confusion matrix')}
<h4>Accuracy per class</h4>{image(model_figures.per_class(s.per_class_accuracy()), 'per-class accuracy')}
{table(s.per_class_accuracy().round(4).rename_axis('class').reset_index(name='accuracy'))}
<h4>The {len(mistakes)} most confident mistakes</h4>{shown}{robust}"""


def space_page(result: StudyResults) -> str:
    """The body of one study's page (templates/space.html)."""
    counts = ", ".join(f"{n} {s.lower()}" for s, n in result.trials["state"].value_counts().items())
    failed = pd.DataFrame({"trial": list(result.failures), "reason": list(result.failures.values())})
    return render(
        "space.html", r=result, spec=result.space.spec, counts=counts, epochs=int(result.trials["epochs"].sum()),
        minutes=result.trials["duration_s"].sum() / 60, space_yaml=result.attrs.get(SPACE_YAML, ""),
        honesty=fragment(honesty(result)), best_config=fragment(best_config(result)),
        leaderboard=fragment(table(leaderboard(result, LEADERBOARD_ROWS), escape=False)),
        listed=min(len(result.trials), LEADERBOARD_ROWS), total=len(result.trials),
        failures=fragment(table(failed, sortable=False)) if result.failures else "",
        search_figures=fragment(search_figures(result)), hints=fragment(space_hints(result)),
        learning_curves=fragment(learning_curves(result)), stopping=fragment(stopping(result)),
        best_model=fragment(best_model(result.best_model)))
