"""report.html of a real (short) run: its content, and the page as headless Chromium shows it."""
import copy
import json
import os
import re
import tempfile
from pathlib import Path

import pytest

from nplstm.training import runs
from nplstm.diagnostics.report import MAX_ROWS, render_report, write_report
from nplstm.training.runs import verdict
from nplstm.tasks import make_task
from nplstm.training.trainer import TrainConfig, build_model, train

if not os.environ.get("CI"):
    pytest.importorskip("matplotlib")        # in CI the plot extra is installed, and these tests must run

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"   # Debian's chromium, chromium-driver
ANOMALY = "loss is NaN at update 17\n<script>alert('not run')</script> & grad norm 1e+30\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A 30-update adding run (T = 12) that stopped on an anomaly, and its report.html."""
    path = tmp_path_factory.mktemp("run")
    task = make_task("adding", T=12, test_size=200)
    model = build_model(task, hidden_size=8, seed=0)
    train(model, task, TrainConfig(steps=30, batch_size=8, eval_every=10, run_dir=path, progress=False, log_every=0))
    (path / "anomaly.txt").write_text(ANOMALY)
    return write_report(path)


@pytest.mark.slow
def test_report_holds_verdict_config_metrics_history_and_anomaly(report):
    html = report.read_text()
    assert report == report.parent / "report.html"
    assert "<h1>nplstm run: adding</h1>" in html
    assert "adding: not solved by the paper&#x27;s criterion in 30 updates (240 sequences" in html
    assert "&lt;script&gt;alert(&#x27;not run&#x27;)&lt;/script&gt; &amp; grad norm" in html   # escaped
    assert "<script" not in html
    assert html.count('<img src="data:image/png;base64,') == 4     # curves, grad_norm, gates_l0, gradient_flow
    for heading in ("Final test metrics (after update 30)", "History", "Configuration"):
        assert heading in html
    assert "<td>hidden_size</td><td>8</td>" in html and "<td>T</td><td>12</td>" in html
    assert not re.search(r'(src|href)="(?!data:)', html)            # self-contained


def test_history_table_is_small_and_keeps_first_and_last(report):
    run = runs.load_run(report.parent)
    record = run.history["records"][0]
    run.history["records"] = [{**copy.deepcopy(record), "step": 10 * k} for k in range(1, 101)]
    html = render_report(run, {})
    rows = re.findall(r"<tr><td>([\d,]+)</td><td>[\d,]+</td><td>", html)
    assert len(rows) == MAX_ROWS and rows[0] == "10" and rows[-1] == "1,000"
    assert f"{MAX_ROWS} of 100 evaluations shown" in html
    assert "Anomaly" not in html and "<img" not in html


def test_verdict_when_solved(report):
    run = runs.load_run(report.parent)
    run.history.update(solved=True, step_solved=20, sequences_to_solve=160)
    assert verdict(run.history, run.config['train']['batch_size']) == (True, "SOLVED by the paper's criterion after 20 updates = 160 training sequences "
                                  f"({run.history['wall_seconds']:.0f} s)")
    assert 'class="verdict solved"' in render_report(run, {})


def test_a_run_stopped_before_its_first_evaluation(report, tmp_path):
    """No records and no checkpoint, only history.json's own anomaly report: still a page, and a picture."""
    for name in ("config.json", "history.json"):
        (tmp_path / name).write_text((report.parent / name).read_text())
    history = json.loads((tmp_path / "history.json").read_text())
    history.update(records=[], stopped="anomaly", steps_done=3, anomaly="NaN in lstm.l0.R after update 3")
    (tmp_path / "history.json").write_text(json.dumps(history))
    html = write_report(tmp_path).read_text()
    assert "stopped: anomaly" in html and "NaN in lstm.l0.R after update 3" in html and "No evaluation yet" in html
    assert html.count("<img") == 1                                  # gradient flow of fresh models


@pytest.fixture
def browser():
    """Headless Chromium driven by Selenium through Debian's chromedriver: skipped locally without
    them, a failure in CI."""
    if not os.environ.get("CI"):
        if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
            pytest.skip(f"no {CHROMIUM} or {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
        pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={profile}", "--window-size=1200,900"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})   # console messages and page errors
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


def test_report_in_headless_chromium(report, browser):
    browser.get(report.as_uri())
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    images = browser.execute_script(
        "return [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight,"
        " i.getBoundingClientRect().width])")
    assert len(images) == 4
    assert all(done and w > 0 and h > 0 and shown > 0 for done, w, h, shown in images), images
    text = browser.execute_script("return document.body.innerText")
    assert "nplstm run: adding" in text
    assert "adding: not solved by the paper's criterion in 30 updates" in text
    assert "<script>alert('not run')</script>" in text          # shown as text, never run
    assert browser.execute_script("return document.scripts.length") == 0
    assert browser.title == "nplstm: adding (not solved)"
