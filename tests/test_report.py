"""The report pages, opened in a real headless Chromium; the best model registered, used and reproduced."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
from PIL import Image

from experiments.data.builtin import DATASETS, load_raw
from sweeps.cli import main
from sweeps.store.tracking import tracking_uri

from .conftest import SPACES, real_data_dir

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
def swept(tmp_path_factory) -> Path:
    """A project with a quick CNN sweep and a two-seed MLP sweep, and its report."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(SPACES, root / "search_spaces")
    (root / "search_spaces" / "tiny.yaml").write_text(textwrap.dedent(TINY))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("SWEEPS_DATA_DIR", str(real_data_dir()))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("SWEEPS_STORAGE", raising=False)
        mp.setenv("MLFLOW_UI_URL", "http://127.0.0.1:5077")  # as `make ui PORT=5077` would serve it
        assert main(["run", "tiny", "--quick", "--trials", "3", "--no-report"]) == 0
        assert main(["run", "fashion_cnn", "--quick"]) == 0  # also rebuilds the report
        yield root


def test_pages_hold_every_section_and_every_trial(swept: Path):
    summary = (swept / "reports" / "summary.html").read_text()
    assert 'href="tiny-quick.html"' in summary and 'href="fashion_cnn-quick.html"' in summary
    assert "Robustness of each space" in summary and "rotated 20° + shifted 3 px" in summary
    page = (swept / "reports" / "tiny-quick.html").read_text()
    for section in ("Best configuration", "Leaderboard", "Parameter effects", "Optimisation history",
                    "Param importance", "Parallel coordinates", "Learning curves of the top", "Pruning and early stopping",
                    "Confusion matrix", "Accuracy per class", "most confident mistakes", "Robustness", "Quick smoke run",
                    "make reproduce SPACE=tiny TRIAL="):
        assert section in page, section
    assert len(re.findall(r"\(n=2\)", page)) >= 3 and " ± " in page
    assert "Ankle boot" in page  # class names in the confusion matrix
    assert len(re.findall(r'href="http://127.0.0.1:5077/#/experiments/\d+/runs/[0-9a-f]{32}"', page)) >= 3
    assert "<script src" not in page and "<link" not in page and "http://" not in page.replace("http://127.0.0.1:5077", "")


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
