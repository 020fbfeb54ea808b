"""`backprop run`, then `backprop ui`: a real Chromium shows the run's params, metric charts and artifacts.

The browser is Debian's `chromium` (/usr/bin/chromium), driven by Playwright for Python; Playwright's own
browser downloads are not used. Screenshots of every view land in the test's tmp_path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.helpers import EXPERIMENTS, digits_config

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
BACKPROP = [sys.executable, "-m", "framework.cli"]
EPOCHS = 5
STARTUP_TIMEOUT_S = 120.0
TIMEOUT_MS = 60_000  # the machine is slow and shared: the UI's first render can take many seconds


def browser_missing(reason: str) -> NoReturn:
    """CI installs the browser (.ci/run), so there it is an error; elsewhere a skip that says what to do."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it (.ci/run installs it)", pytrace=False)
    pytest.skip(f"{reason}; install it to run this test")


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        browser_missing(f"{CHROMIUM} not found (Debian/Ubuntu: `apt-get install -y chromium`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_missing("Playwright for Python is not installed (`pip install -e '.[dev]'`)")
    with sync_playwright() as playwright:
        # --no-sandbox: CI containers run as root; --disable-dev-shm-usage: their /dev/shm is small.
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class TrainedRun:
    run_id: str
    experiment_id: str
    name: str
    params: dict[str, str]
    metric_steps: dict[str, int]  # metric -> number of logged values
    model_id: str
    curves_width: int  # of training_curves.png, from its PNG header
    link: str  # the run's page, as `backprop run` printed it
    description: str
    diagnostics: dict[str, int]  # picture name -> width, from its PNG header
    house: tuple[str, str, dict[str, int]]  # a house-prices run: experiment id, run id, its pictures


def png_width(path: Path) -> int:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return int(struct.unpack(">I", data[16:20])[0])


@pytest.fixture
def trained_run(store: str, tmp_path: Path) -> TrainedRun:
    """`backprop run` of a small digits experiment (validation split 0.2), tracked into the test's store."""
    from mlflow import MlflowClient

    house = subprocess.run(
        [*BACKPROP, "run", str(EXPERIMENTS / "house_prices.toml"), "--quiet", "--set", "training.epochs=3"],
        cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert house.returncode == 0, house.stderr
    house_id = next(line for line in house.stdout.splitlines() if line.startswith("run id: ")).split()[-1]
    config = digits_config(name="ui-browser", tracking={"enabled": True})
    config["model"] = {"layers": [{"units": 16, "activation": "relu"}, {"units": 10}]}
    config["training"] = {"epochs": EPOCHS, "batch_size": 64}
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [*BACKPROP, "run", str(path), "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    run_id = next(line for line in done.stdout.splitlines() if line.startswith("run id: ")).split()[-1]
    link = next(line for line in done.stdout.splitlines() if line.startswith("view it: ")).split()[2]

    client = MlflowClient(tracking_uri=store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"  # only a finished run has its model logged
    assert run.data.params["optimizer.lr"] == "0.05"
    (model_output,) = run.outputs.model_outputs
    curves = client.download_artifacts(run_id, "training_curves.png", dst_path=str(tmp_path))

    def pictures(run: str) -> dict[str, int]:
        folder = Path(client.download_artifacts(run, "diagnostics", dst_path=str(tmp_path / run)))
        return {p.name: png_width(p) for p in folder.glob("*.png")}

    return TrainedRun(
        run_id=run_id,
        experiment_id=run.info.experiment_id,
        name=run.info.run_name,
        params=run.data.params,
        metric_steps={key: len(client.get_metric_history(run_id, key)) for key in run.data.metrics},
        model_id=model_output.model_id,
        curves_width=png_width(Path(curves)),
        link=link,
        description=run.data.tags["mlflow.note.content"],
        diagnostics=pictures(run_id),
        house=(client.get_run(house_id).info.experiment_id, house_id, pictures(house_id)),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class UI:
    url: str  # as `backprop ui` printed it
    base: str


@pytest.fixture
def ui(trained_run: TrainedRun, tmp_path: Path) -> Iterator[UI]:
    """`backprop ui --port <free port>` on the test's store; stopped by its pid (SIGTERM, then SIGKILL)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stdout, stderr = tmp_path / "ui.stdout", tmp_path / "ui.stderr"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        # Its own session: should it need a SIGKILL, its `mlflow server` child goes with it (killpg).
        process = subprocess.Popen(
            [*BACKPROP, "ui", "--port", str(port)], cwd=tmp_path, stdout=out, stderr=err, start_new_session=True
        )

    def output() -> str:
        return f"stdout:\n{stdout.read_text()}\nstderr (tail):\n{stderr.read_text()[-3000:]}"

    try:
        url = ""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not url and time.monotonic() < deadline and process.poll() is None:
            url = next((line for line in stdout.read_text().splitlines() if line.startswith("MLflow UI: ")), "")
            time.sleep(0.2)
        assert url, f"`backprop ui` printed no URL (exit code {process.poll()})\n{output()}"
        url = url.split()[2]
        expected = f"{base}/#/experiments/{trained_run.experiment_id}/runs?workflowType=machine_learning"
        assert url == expected + "&compareRunsMode=CHART", url
        assert answers(f"{base}/health") and answers(f"{base}/"), output()
        yield UI(url=url, base=base)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)  # `backprop ui` stops its server on SIGTERM, then exits
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert not answers(f"{base}/health"), "the MLflow server outlived `backprop ui`"


@contextlib.contextmanager
def view(page: Any, shot: Path) -> Iterator[None]:
    """Screenshot the page when the block ends, passed or failed (the path goes into assertion messages)."""
    from playwright.sync_api import Error

    try:
        yield
    finally:
        with contextlib.suppress(Error):  # a failed screenshot must not hide the assertion that failed
            page.screenshot(path=str(shot), full_page=True)


def artifact_node(page: Any, name: str) -> Any:
    return page.locator(f'[data-testid="artifact-tree-node"][aria-label="{name}"]')


def test_the_ui_shows_params_metric_charts_and_artifacts(
    chromium: Any, trained_run: TrainedRun, ui: UI, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    run = trained_run
    page = chromium.new_page(viewport={"width": 1600, "height": 1100})
    run_page = f"{ui.base}/#/experiments/{run.experiment_id}/runs/{run.run_id}"

    # The printed URL: the experiment's runs, where the run is listed; its name leads to the run's page.
    shot = tmp_path / "experiment.png"
    with view(page, shot):
        page.goto(ui.url)
        link = page.get_by_role("link", name=run.name, exact=True).first
        expect(link, f"the run is not listed; see {shot}").to_be_visible(timeout=TIMEOUT_MS)
    link.click()
    expect(page, f"the run's name does not open its page; see {shot}").to_have_url(
        re.compile(re.escape(f"/runs/{run.run_id}")), timeout=TIMEOUT_MS
    )

    # Overview: as many params as the run has, some keys with their values; the model under "Logged models".
    shot = tmp_path / "overview.png"
    with view(page, shot):
        page.goto(run_page)
        heading = page.get_by_role("heading", name=f"Parameters ({len(run.params)})", exact=True)
        expect(heading, f"no params heading; see {shot}").to_be_visible(timeout=TIMEOUT_MS)
        for key in ["optimizer.lr", "optimizer.name", "training.epochs", "data.validation_split"]:
            row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))
            expect(row, f"param {key}; see {shot}").to_have_count(1, timeout=TIMEOUT_MS)
            expect(row.get_by_role("cell").nth(1), f"param {key}; see {shot}").to_have_text(run.params[key])
        models = page.get_by_role("heading", name="Logged models (1)", exact=True)
        expect(models, f"no logged model; see {shot}").to_be_visible(timeout=TIMEOUT_MS)
        model_link = page.get_by_role("grid").locator(
            f'a[href$="/experiments/{run.experiment_id}/models/{run.model_id}"]'
        )
        expect(model_link, f"no link to the model; see {shot}").to_have_text("model", timeout=TIMEOUT_MS)
        models.scroll_into_view_if_needed()  # the screenshot: the end of the params table and the model

    # Model metrics: one chart per metric, each a plot with one point per logged value.
    shot = tmp_path / "model-metrics.png"
    with view(page, shot):
        page.goto(f"{run_page}/model-metrics")
        assert {"train_loss", "val_loss"} <= run.metric_steps.keys(), run.metric_steps
        headline = {k: n for k, n in run.metric_steps.items() if "/" not in k}  # the families: sections below
        search = page.get_by_placeholder("Search metric charts")
        for metric, steps in sorted(headline.items()):
            search.fill(metric)  # only its chart: the sections of the families come first and charts load in view
            card = page.get_by_test_id("experiment-view-compare-runs-card").filter(
                has=page.get_by_role("heading", name=metric, exact=True)
            )
            expect(card, f"no chart for {metric}; see {shot}").to_have_count(1, timeout=TIMEOUT_MS)
            card.scroll_into_view_if_needed()  # charts render once they are in view
            line = card.locator(".js-plotly-plot svg.main-svg path.js-line").first
            expect(line, f"no plotted line for {metric}; see {shot}").to_have_attribute(
                "d", re.compile(r"^M[-\d.]+,[-\d.]+L"), timeout=TIMEOUT_MS
            )
            points = card.locator(".js-plotly-plot .scatterlayer .trace").first.locator("path.point")
            expect(points, f"{metric} should show {steps} points; see {shot}").to_have_count(steps, timeout=TIMEOUT_MS)
        search.fill("")
        for family in ("grad_norm", "weight_norm", "update_ratio"):  # their own sections, a chart per layer
            title = page.get_by_text(family, exact=True).first
            expect(title, f"no {family} section; see {shot}").to_be_visible(timeout=TIMEOUT_MS)
        page.mouse.wheel(0, -10_000)  # back to the top for the screenshot

    # Artifacts: the run's files; the curves PNG opens inline at its real size.
    shot = tmp_path / "artifacts.png"
    with view(page, shot):
        page.goto(f"{run_page}/artifacts")
        for name in ["config.json", "history.csv", "training_curves.png"]:
            expect(artifact_node(page, name), f"artifact {name}; see {shot}").to_be_visible(timeout=TIMEOUT_MS)
        artifact_node(page, "training_curves.png").click()
        image = page.get_by_role("img", name="training_curves.png", exact=True)
        expect(image, f"the curves PNG is not shown; see {shot}").to_be_visible(timeout=TIMEOUT_MS)
        expect(image, f"the curves PNG did not load; see {shot}").to_have_js_property(
            "naturalWidth", run.curves_width, timeout=TIMEOUT_MS
        )

    # The pictures that explain the run, under diagnostics/: listed, and each one loads at its real size.
    for experiment_id, run_id, pictures, expected in (
        (run.experiment_id, run.run_id, run.diagnostics, {"confusion_matrix.png", "roc.png", "classes.png"}),
        (*run.house, {"predicted_vs_actual.png", "residuals.png", "residual_histogram.png"}),
    ):
        assert expected | {"gradient_flow.png"} <= pictures.keys(), pictures
        shot = tmp_path / f"diagnostics-{run_id}.png"
        with view(page, shot):
            page.goto(f"{ui.base}/#/experiments/{experiment_id}/runs/{run_id}/artifacts")
            folder = artifact_node(page, "diagnostics")
            expect(folder, f"no diagnostics folder; see {shot}").to_be_visible(timeout=TIMEOUT_MS)
            folder.click()
            for name, width in sorted(pictures.items()):
                node = artifact_node(page, name)
                expect(node, f"picture {name} not listed; see {shot}").to_be_visible(timeout=TIMEOUT_MS)
                node.click()
                image = page.get_by_role("img", name=f"diagnostics/{name}", exact=True)
                expect(image, f"{name} did not load; see {shot}").to_have_js_property(
                    "naturalWidth", width, timeout=TIMEOUT_MS
                )

    # The model: MLflow 3 keeps it as a logged model beside the run, with its own artifacts.
    shot = tmp_path / "model.png"
    with view(page, shot):
        page.goto(f"{ui.base}/#/experiments/{run.experiment_id}/models/{run.model_id}/artifacts")
        for name in ["MLmodel", "data", "requirements.txt"]:
            expect(artifact_node(page, name), f"model file {name}; see {shot}").to_be_visible(timeout=TIMEOUT_MS)


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "images"


def test_the_printed_links_open_the_run_page_with_its_description_and_the_charts(
    chromium: Any, trained_run: TrainedRun, ui: UI, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    run = trained_run
    page = chromium.new_page(viewport={"width": 1500, "height": 1000})
    # The link `backprop run` printed, on the port this test's UI listens on (`backprop ui`'s default is 5000).
    assert run.link.startswith("http://127.0.0.1:5000/#/experiments/"), run.link
    shot = tmp_path / "run-page.png"
    with view(page, shot):
        page.goto(ui.base + run.link.removeprefix("http://127.0.0.1:5000"))
        for text in ("Run it again", "parameters, 64 inputs", "val_accuracy"):
            expect(page.get_by_text(text).first, f"no {text!r} on the run's page; see {shot}").to_be_visible(
                timeout=TIMEOUT_MS
            )
        command = next(line for line in run.description.splitlines() if line.startswith("backprop run "))
        expect(page.get_by_text(command).first, f"no reproduce command; see {shot}").to_be_visible(timeout=TIMEOUT_MS)
    if os.environ.get("BACKPROP_WRITE_SCREENSHOTS"):  # docs/images/run-page.png is made by this test
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "run-page.png"))

    # The link `backprop ui` printed: the chart view, with a section per family of metrics.
    shot = tmp_path / "charts.png"
    with view(page, shot):
        page.goto(ui.url)
        for family in ("grad_norm", "update_ratio"):
            section = page.get_by_text(family, exact=True).first
            expect(section, f"no {family} section in the chart view; see {shot}").to_be_visible(timeout=TIMEOUT_MS)
    if os.environ.get("BACKPROP_WRITE_SCREENSHOTS"):
        page.screenshot(path=str(SCREENSHOTS / "charts.png"))
