"""The report pages, opened in a real headless Chromium; the best model registered, used and reproduced."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from experiments.data.builtin import DATASETS, load_raw
from sweeps.cli import main
from sweeps.store.tracking import tracking_uri

from .conftest import SPACES, real_data_dir
from .test_sweep import runs, study

pytestmark = pytest.mark.slow

TINY = """\
description: tiny MLP with two seeds per trial
dataset: fashion_mnist
model: mlp
train: {epochs: 2, batch_size: 256}
params:
  units: {type: categorical, choices: [32, 64]}
  dropout: {type: float, low: 0.0, high: 0.3}
sweep: {repeats: 2, sampler: {name: random}, pruner: {name: none}}
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Iterator[Path]:
    """A project with a quick CNN sweep and a two-seed MLP sweep, both in the supervised worker processes `sweep run`
    starts by default, and its report: in reports-no-ui/ as the CNN sweep built it (no MLflow UI address known), in
    reports/ rebuilt with the address of `make ui PORT=5077`. Trained once per pytest run: under ``-n``, the first
    xdist worker that needs it trains it in the run's shared temp folder while any other waits on a lock, then
    reads the same project (xdist's ``xdist_group`` does not group tests with pytest 9)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    root = shared / "report-project"
    with open(shared / "report-project.lock", "w") as lock, pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEEPS_DATA_DIR", str(real_data_dir()))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("SWEEPS_STORAGE", raising=False)
        mp.delenv("SWEEPS_TRIALS_PER_PROCESS", raising=False)  # the default: trials in worker processes
        mp.delenv("MLFLOW_UI_URL", raising=False)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (root / ".trained").exists():
                if root.exists():
                    pytest.fail(f"{root}: another xdist worker failed to train the report's project (see its error)")
                _train_project(root, mp)
                (root / ".trained").touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
        mp.chdir(root)
        mp.setenv("MLFLOW_UI_URL", "http://127.0.0.1:5077")  # as `make ui PORT=5077` would serve it
        yield root


def _train_project(root: Path, mp: pytest.MonkeyPatch) -> None:
    shutil.copytree(SPACES, root / "search_spaces")
    (root / "search_spaces" / "tiny.yaml").write_text(textwrap.dedent(TINY))
    mp.chdir(root)
    assert main(["run", "tiny", "--quick", "--trials", "3", "--no-report"]) == 0
    # Its first baseline alone (the test below trains the second as it resumes): also rebuilds the report.
    assert main(["run", "fashion_cnn", "--quick", "--trials", "1"]) == 0
    shutil.copytree(root / "reports", root / "reports-no-ui")
    mp.setenv("MLFLOW_UI_URL", "http://127.0.0.1:5077")
    assert main(["report"]) == 0


def test_pages_hold_every_section_and_every_trial(swept: Path):
    summary = (swept / "reports" / "summary.html").read_text()
    assert 'href="tiny-quick.html"' in summary and 'href="fashion_cnn-quick.html"' in summary
    assert "Robustness of each space" in summary and "rotated 20° + shifted 3 px" in summary
    page = (swept / "reports" / "tiny-quick.html").read_text()
    for section in ("Best configuration", "Leaderboard", "Parameter effects", "Optimisation history",
                    "Param importance", "Parallel coordinates", "Learning curves of the top", "Pruning and early stopping",
                    "Confusion matrix", "Accuracy per class", "most confident mistakes", "Robustness", "Quick smoke run",
                    "sweep reproduce tiny --trial "):  # a project of the user's: no Makefile
        assert section in page, section
    assert len(re.findall(r"\(n=2\)", page)) >= 3 and " ± " in page
    assert "Ankle boot" in page  # class names in the confusion matrix
    # The quick study's best checkpoint is scored on the test rows its trials were: the number its run logged.
    best = re.search(r"Trial (\d+), seed (\d+), restored best checkpoint: accuracy (\d\.\d{4}) on\s+the 1,200 test "
                     r"examples its quick trials were scored on", page)
    assert best, "the best model's section names the quick study's 1,200 test rows"
    found = runs(swept, "tiny-quick")
    repeat = found[(found["tags.sweeps.kind"] == "repeat") & (found["tags.sweeps.trial"] == best[1])
                   & (found["tags.sweeps.seed"] == best[2])]
    assert float(best[3]) == pytest.approx(repeat["metrics.test_accuracy"].item(), abs=5e-5)
    assert len(re.findall(r'href="http://127.0.0.1:5077/#/experiments/\d+/runs/[0-9a-f]{32}"', page)) >= 3
    assert "<script src" not in page and "<link" not in page and "http://" not in page.replace("http://127.0.0.1:5077", "")


def test_repeats_are_nested_runs_and_the_objective_is_their_mean(swept: Path):
    found = runs(swept, "tiny-quick")
    trial_runs = found[found["tags.sweeps.kind"] == "trial"]
    repeat_runs = found[found["tags.sweeps.kind"] == "repeat"]
    assert len(trial_runs) == 3 and len(repeat_runs) == 6
    for trial in study(swept, "tiny-quick").get_trials():
        parent = trial_runs[trial_runs["tags.sweeps.trial"] == str(trial.number)]
        mine = repeat_runs[repeat_runs["tags.mlflow.parentRunId"] == parent["run_id"].item()]
        assert sorted(mine["tags.sweeps.seed"].astype(int)) == [42, 43]
        assert trial.value == pytest.approx(mine["metrics.best_val_accuracy"].mean())
        assert parent["metrics.val_accuracy_std"].item() == pytest.approx(mine["metrics.best_val_accuracy"].std(), abs=1e-9)
        assert parent["metrics.n_repeats"].item() == 2
    assert "(n=2)" in (swept / "reports" / "tiny-quick.html").read_text()


def test_pages_render_in_headless_chromium(swept: Path, tmp_path: Path):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not shutil.which("chromedriver"):
        pytest.fail("chromedriver not found: install Debian's chromium and chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1300,2000"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        for name in ("summary", "tiny-quick", "fashion_cnn-quick"):
            driver.get((swept / "reports" / f"{name}.html").as_uri())
            errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
            assert errors == [], errors
            broken = driver.execute_script(
                "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)")
            assert broken == []
            assert driver.execute_script("return document.images.length") >= (1 if name == "summary" else 8)
            assert driver.save_screenshot(str(tmp_path / f"{name}.png"))
            assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # the leaderboard sorts when a header is clicked
        driver.get((swept / "reports" / "tiny-quick.html").as_uri())
        column = "return Array.from(document.querySelectorAll('table.sortable')[0].tBodies[0].rows).map(r => r.cells[0].textContent)"
        driver.find_elements("css selector", "table.sortable th")[0].click()
        ascending = driver.execute_script(column)
        assert ascending == sorted(ascending, key=int)
        driver.find_elements("css selector", "table.sortable th")[0].click()
        assert driver.execute_script(column) == ascending[::-1]
    finally:
        driver.quit()


def test_best_model_is_registered_and_predicts(swept: Path, monkeypatch, capsys):
    monkeypatch.chdir(swept)
    mlflow.set_tracking_uri(tracking_uri(swept))
    versions = mlflow.MlflowClient().search_model_versions("name='tiny-quick'")
    assert len(versions) == 1 and versions[0].tags["trial"].isdigit()
    model = mlflow.keras.load_model("models:/tiny-quick/1")
    assert model.output_shape == (None, 10)

    assert main(["predict", "tiny", "--quick", "--from-test", "0"]) == 0
    out = capsys.readouterr().out
    assert "true class Ankle boot" in out and out.count("%") == 3
    first = re.search(r"1\. (.+?)\s+\d", out).group(1)

    # the same test image, as a large photo of a dark object on white: the same top class
    pixels = 255 - load_raw("fashion_mnist").arrays["x_test"][0]
    Image.fromarray(pixels).resize((280, 280), Image.Resampling.NEAREST).save(swept / "boot.png")
    assert main(["predict", "tiny", "--quick", "--image", str(swept / "boot.png")]) == 0
    assert re.search(r"1\. (.+?)\s+\d", capsys.readouterr().out).group(1) == first

    # the registered model takes the raw 0-255 pixels (a Rescaling layer in front): the same top class
    raw = load_raw("fashion_mnist").arrays["x_test"][:1].astype("float32")[..., None]
    names = DATASETS["fashion_mnist"].class_names
    assert isinstance(model.layers[0], keras.layers.Rescaling) and names[int(model.predict(raw).argmax())] == first


def test_predict_and_reproduce_errors_are_one_line(swept: Path, monkeypatch, capsys):
    monkeypatch.chdir(swept)
    assert main(["predict", "mnist_mlp", "--from-test", "1"]) == 2
    assert "no sweep of 'mnist_mlp' yet" in capsys.readouterr().err
    (swept / "not-an-image.png").write_text("hello")
    assert main(["predict", "tiny", "--quick", "--image", str(swept / "not-an-image.png")]) == 2
    assert "not a readable PNG/JPG image" in capsys.readouterr().err
    assert main(["predict", "tiny", "--quick", "--from-test", "10000"]) == 2
    assert main(["reproduce", "tiny", "--quick", "--trial", "99"]) == 2


def test_reproduce_trains_the_trial_again_with_its_seeds(swept: Path, monkeypatch, capsys):
    monkeypatch.chdir(swept)
    assert main(["reproduce", "tiny", "--quick", "--trial", "0"]) == 0
    out = capsys.readouterr().out
    assert "seed 42:" in out and "seed 43:" in out and "logged by the sweep" in out
    difference = float(re.search(r"difference ([-+]\d\.\d+)", out).group(1))
    assert abs(difference) < 0.02
    mlflow.set_tracking_uri(tracking_uri(swept))
    runs = mlflow.search_runs(experiment_names=["tiny-quick"], filter_string="tags.`sweeps.kind` = 'reproduction'")
    assert len(runs) == 2 and np.isfinite(runs["metrics.test_accuracy"]).all()


def test_quick_cnn_sweep_tracks_every_trial_and_resumes(swept: Path, monkeypatch):
    """The default path, trials in supervised worker processes; it alone goes on with the CNN study (maybe while
    another xdist worker runs the module's other tests), which read only its report pages of before (--no-report
    here) and the MLP study."""
    monkeypatch.chdir(swept)
    trials = study(swept, "fashion_cnn-quick").get_trials()
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE"), (1, "WAITING")]  # the 2nd baseline queued

    found = runs(swept, "fashion_cnn-quick")
    sweep = found[found["tags.sweeps.kind"] == "sweep"]
    children = found[found["tags.sweeps.kind"] == "trial"]
    assert len(sweep) == 1 and sweep["status"].item() == "FINISHED"
    assert children["tags.sweeps.trial"].tolist() == ["0"]
    assert (children["tags.mlflow.parentRunId"] == sweep["run_id"].item()).all()

    reports = swept / "reports-no-ui"  # as the sweep built them, no MLflow UI address known
    assert 'href="fashion_cnn-quick.html"' in (reports / "summary.html").read_text()
    page = (reports / "fashion_cnn-quick.html").read_text()
    assert "Quick smoke run" in page
    assert f"<code>{children['run_id'].item()}</code>" in page  # its leaderboard row names its run (no UI address)
    assert page.count('src="data:image/svg+xml;base64,') >= 3 and 'src="data:image/png;base64,' in page
    assert pd.read_csv(reports / "fashion_cnn-quick" / "trials.csv")["state"].tolist() == ["COMPLETE", "WAITING"]

    # TRIALS is the total the study should reach: the same command continues it (the batch-norm baseline).
    assert main(["run", "fashion_cnn", "--quick", "--trials", "2", "--no-report"]) == 0
    assert [t.number for t in study(swept, "fashion_cnn-quick").get_trials()] == [0, 1]
    assert main(["run", "fashion_cnn", "--quick", "--trials", "2", "--no-report"]) == 0  # nothing left to do
    found = runs(swept, "fashion_cnn-quick")
    assert (found["tags.sweeps.kind"] == "sweep").sum() == 2
    children = found[found["tags.sweeps.kind"] == "trial"]
    assert sorted(children["tags.sweeps.trial"].astype(int)) == [0, 1]
    client = mlflow.MlflowClient()
    for _, run in children.iterrows():
        history = client.get_metric_history(run["run_id"], "val_accuracy")
        assert [m.step for m in history] == list(range(1, int(run["metrics.epochs"]) + 1))
        assert "checkpoint/best.keras" in [a.path for a in client.list_artifacts(run["run_id"], "checkpoint")]
        assert {"history.csv", "model_summary.txt"} <= {a.path for a in client.list_artifacts(run["run_id"])}
        assert run["tags.sweeps.stop_reason"] in ("max_epochs", "early_stopped", "pruned")
        assert run["tags.sweeps.data_md5"] and run["tags.mlflow.source.git.commit"]
        assert 200 < run["metrics.peak_rss_mb"] < 8000  # TensorFlow and the data are in there
    done = children[children["tags.sweeps.state"] == "COMPLETE"]
    # Restored best checkpoint, above chance (0.1). Not far above for the batch-norm baseline: in a quick run its
    # moving statistics have seen only 2 x 47 steps, so the inference-mode network is still poor (0.19 here).
    assert (done["metrics.test_accuracy"] > 0.13).all() and (done["metrics.test_accuracy"] > 0.7).any()
