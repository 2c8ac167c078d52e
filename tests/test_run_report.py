"""The run report: one self-contained HTML page, checked in its text and rendered in Debian's Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from archzoo.cli import main
from archzoo.report import write_report

ARTIFACTS = Path(os.environ.get("ARCHZOO_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
QUICK = ["train.threads=1", "log.progress=none"]


def _sections(page: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", page)


def _images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def test_training_writes_the_report_with_every_section(digits_run: Path) -> None:
    page = (digits_run / "report.html").read_text()
    assert _sections(page) == ["Run", "Final metrics", "Curves", "Confusion matrix", "Maps", "Resolved config"]
    imgs = _images(page)
    assert imgs and all(src.startswith("data:image/png;base64,") for src in imgs)
    # Nothing is fetched: no address in any src, href or url().
    assert not re.search(r"""(src|href)=["']?(https?:|//)|url\(""", page)
    results = json.loads((digits_run / "results.json").read_text())
    assert f"{results['metrics']['test/acc']:.4g}" in page
    assert html.escape((digits_run / "config.yaml").read_text()) in page
    assert f"{results['parameters']:,}" in page


def test_confusion_matrix_counts_the_test_split(digits_run: Path) -> None:
    c = json.loads((digits_run / "confusion.json").read_text())
    results = json.loads((digits_run / "results.json").read_text())
    total = sum(map(sum, c["matrix"]))
    correct = sum(c["matrix"][i][i] for i in range(len(c["matrix"])))
    assert c["split"] == "test" and len(c["matrix"]) == 10
    assert correct / total == pytest.approx(results["metrics"]["test/acc"], abs=1e-6)


def test_anchor_is_shown_beside_the_result(tmp_path: Path, data_root: Path) -> None:
    run = tmp_path / "mlp"
    args = ["fashion-mlp", "train.epochs=1", "train.max_steps=20", "data.args.limit=2000", *QUICK, "log.plots=false"]
    assert main(["train", *args, "--run-dir", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert '<tr class="anchored"><th>test/acc</th>' in page
    assert "0.8833 (MLPClassifier, zalando&#x27;s Fashion-MNIST benchmark)" in page
    # log.plots=false draws nothing at the end: no curves or confusion figure, the tables are there.
    assert "Curves" not in _sections(page) and "Confusion matrix" not in _sections(page)
    assert main(["report", str(run)]) == 0  # the command draws them
    assert {"Curves", "Confusion matrix"} <= set(_sections((run / "report.html").read_text()))


def test_language_model_report_holds_generated_text(tmp_path: Path) -> None:
    run = tmp_path / "lm"
    args = ["python-lstm", "train.epochs=1", "train.max_steps=5", *QUICK, "log.report=false"]
    assert main(["train", *args, "--run-dir", str(run)]) == 0
    assert not (run / "report.html").exists()  # log.report=false writes none
    page = write_report(run).read_text()
    assert "Generated text (300 tokens, seed 0)" in page
    assert re.search(r"<h3>Generated text.*?</h3><pre>.{50,}</pre>", page, re.S)


def test_generative_and_graph_reports(tmp_path: Path) -> None:
    vae = tmp_path / "vae"
    assert main(["train", "digits-vae", "train.epochs=1", *QUICK, "--run-dir", str(vae)]) == 0
    page = (vae / "report.html").read_text()
    # One epoch wrote no grid (sample_every 5): the report draws what archzoo sample draws.
    assert "Samples" in _sections(page)
    assert "samples (archzoo sample, seed 0)" in page and "reconstructions (archzoo sample, seed 0)" in page
    assert not (vae / "samples").exists()  # drawn for the page, not into the run
    gcn = tmp_path / "gcn"
    assert main(["train", "karate-gcn", "train.epochs=5", *QUICK, "--run-dir", str(gcn)]) == 0
    page = (gcn / "report.html").read_text()
    assert (gcn / "embeddings" / "embeddings_pca.png").is_file()
    assert "embeddings/embeddings_pca.png" in page


def test_lr_finder_plot_is_included(digits_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "copy"
    shutil.copytree(digits_run, run)
    assert main(["lr-find", str(run), "--steps", "15"]) == 0
    page = write_report(run, maps=False).read_text()
    assert "Tools" in _sections(page) and "LR finder" in page


def test_report_of_a_directory_that_is_no_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "is not a run directory" in err and len(err.splitlines()) == 1


def test_report_of_damaged_results_is_one_sentence(digits_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "broken"
    shutil.copytree(digits_run, run)
    (run / "results.json").write_bytes(b"\xff{not json")
    assert main(["report", str(run)]) != 0
    assert "is not valid JSON" in capsys.readouterr().err


@pytest.mark.skipif(
    (not CHROMIUM or not CHROMEDRIVER) and os.environ.get("CI") != "true",
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)
def test_report_renders_in_headless_chromium(digits_run: Path) -> None:
    """Every figure loads and the console stays clean, in a real browser; the screenshot is kept."""
    assert CHROMIUM and CHROMEDRIVER, "CI installs chromium and chromium-driver; they are missing"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1200,2400"):  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get((digits_run / "report.html").resolve().as_uri())
        state = driver.execute_script(
            "const imgs = Array.from(document.images);"
            "return {ready: document.readyState, n: imgs.length,"
            " loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,"
            " h2: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),"
            " title: document.title};"
        )
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "report-digits-cnn.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert state["ready"] == "complete"
    assert state["n"] >= 4 and state["loaded"] == state["n"], state
    assert "Confusion matrix" in state["h2"] and state["title"].startswith("archzoo run digits-cnn")
    assert errors == []
    assert shot.stat().st_size > 10_000
