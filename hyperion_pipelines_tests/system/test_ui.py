"""The Dagster UI in a real browser: Debian's chromium driven by playwright against `dagster dev`
on loopback, a temporary instance and the sample corpus. Screenshots go to test-artifacts/ui/."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from hyperion_pipelines.cli import EMBEDDED_INSTANCE_YAML
from hyperion_pipelines.orchestration.assets.step import ASSET_NAMES
from hyperion_pipelines.settings import SAMPLE_CORPUS_DIR, SAMPLE_GOLDEN_QUERIES, Settings

from ..conftest import REPO, ensure_debian_packages, finished
from ..support.dagster_dev import dagster_dev
from ..support.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "ui"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def ensure_chromium() -> Path:
    return ensure_debian_packages(CHROMIUM, "chromium")


@pytest.fixture
def dagster_ui(hyperion_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`dagster dev` (webserver and daemon) on a free loopback port, the sample corpus uploaded now."""
    shutil.copytree(SAMPLE_CORPUS_DIR, hyperion_env.uploads_dir, dirs_exist_ok=True)
    monkeypatch.setenv("HYPERION_GOLDEN_QUERIES", str(SAMPLE_GOLDEN_QUERIES))
    (hyperion_env.dagster_home / "dagster.yaml").write_text(EMBEDDED_INSTANCE_YAML)
    port = free_port()
    with dagster_dev(port, os.environ, hyperion_env.home / "dagster-dev.log", ["-h", "127.0.0.1"], timeout_s=180):
        yield f"http://127.0.0.1:{port}"


def ui_launched_run(timeout_s: float = 300):
    """The run launched from the UI (the upload sensor's runs carry hyperion/trigger), once done."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with DagsterInstance.get() as instance:
            runs = [r for r in instance.get_runs() if "hyperion/trigger" not in r.tags]
        if runs and finished(runs[0]):
            return runs[0]
        time.sleep(2)
    raise AssertionError(f"the run launched from the UI did not finish within {timeout_s} s")


def test_the_ui_shows_the_assets_runs_a_partition_and_shows_checks_metadata_and_sensors(dagster_ui: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = ensure_chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)

        # The asset graph, with every asset of the pipeline.
        page.goto(f"{dagster_ui}/asset-groups/documents", wait_until="networkidle")
        skip = page.get_by_role("button", name="Skip")  # a first-visit newsletter prompt
        page.wait_for_timeout(2000)
        if skip.count():
            skip.click()
        for name in (*ASSET_NAMES, "retrieval_evaluation"):
            expect(page.get_by_text(name, exact=True).first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "asset-graph-before-any-run.png")

        # Materialise one partition (today's, where the corpus was uploaded) from the job's page.
        page.goto(f"{dagster_ui}/locations/hyperion_pipelines/jobs/ingest_documents", wait_until="networkidle")
        # On a loaded machine a Blueprint overlay (a dialog the UI opened while the page was still
        # loading) was seen covering the button in CI: close whatever overlay is open first.
        page.keyboard.press("Escape")
        expect(page.locator(".bp5-overlay-backdrop")).to_have_count(0)
        page.get_by_role("button", name="Materialize all").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name="Latest").click()
        page.screenshot(path=ARTIFACTS / "launch-partition.png")
        dialog.get_by_role("button", name="Launch 1 run").click()
        run = ui_launched_run()
        assert run.status == DagsterRunStatus.SUCCESS, run.run_id
        page.goto(f"{dagster_ui}/runs/{run.run_id}", wait_until="networkidle")
        expect(page.get_by_text("Success").first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "run.png")

        # The graph as a user sees it after the run: materialised assets, their checks passed. A
        # wide window without the asset list, so that the graph fits at a zoom where nodes show
        # their latest event, checks and partitions (zoomed out they are bare names).
        page.set_viewport_size({"width": 2200, "height": 1000})
        page.goto(f"{dagster_ui}/asset-groups/documents", wait_until="networkidle")
        page.get_by_role("button", name="panel_show_right", exact=True).click()  # hides the asset list
        expect(page.get_by_text("vector_index", exact=True).first).to_be_visible()
        expect(page.get_by_text("2 / 2 Passed").first).to_be_visible()  # vector_index's checks
        page.wait_for_timeout(2000)  # the other nodes' statuses load after the graph
        page.screenshot(path=ARTIFACTS / "asset-graph.png")
        page.set_viewport_size({"width": 1600, "height": 1000})

        # The index's check results and the chunks' metadata.
        page.goto(f"{dagster_ui}/assets/vector_index?view=checks", wait_until="networkidle")
        for text in ("matches_chunks", "self_retrieval", "Passed", "orphans"):
            expect(page.get_by_text(text).first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "vector-index-checks.png", full_page=True)
        page.goto(f"{dagster_ui}/assets/document_chunks", wait_until="networkidle")
        for text in ("chunks", "tokens_mean", "tokens_p95", "token_histogram", "fingerprint"):
            expect(page.get_by_text(text, exact=True).first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "document-chunks.png", full_page=True)

        # The upload sensor: running, with its description and cursor.
        page.goto(f"{dagster_ui}/locations/hyperion_pipelines/sensors/documents_uploads", wait_until="networkidle")
        expect(page.get_by_text("Compares the document source with the index manifest").first).to_be_visible()
        expect(page.get_by_text("documents_seen").first).to_be_visible()
        expect(page.get_by_text("1 run requested").first).to_be_visible()  # the uploads' tick, with its run
        page.screenshot(path=ARTIFACTS / "upload-sensor.png")
        browser.close()
    publish_screenshots()


#: Screenshots the README and docs show, refreshed from this test's run with HYPERION_UPDATE_SCREENSHOTS=1.
PUBLISHED = ("asset-graph.png", "vector-index-checks.png", "upload-sensor.png")


#: Read when the module loads: the hyperion_env fixture clears every HYPERION_* variable.
UPDATE_SCREENSHOTS = os.environ.get("HYPERION_UPDATE_SCREENSHOTS") == "1"


def publish_screenshots() -> None:
    """Copy what a user saw in this run into docs/ui, so the README never shows a stale UI."""
    if UPDATE_SCREENSHOTS:
        for name in PUBLISHED:
            shutil.copyfile(ARTIFACTS / name, REPO / "docs" / "ui" / name)
