"""Schedules, backfills and the run-failure alert sensor, with a real failed run and a loopback webhook."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    build_schedule_context,
)

from hyperion_pipelines.automation.alerts import Delivery, post_alert
from hyperion_pipelines.cli import EMBEDDED_INSTANCE_YAML
from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.orchestration.automation import AlertWebhookResource
from hyperion_pipelines.settings import SAMPLE_GOLDEN_QUERIES, Settings

from ..conftest import REPO, UPLOAD_DAY, run_ingest
from ..support.loopback import recording_server
from ..support.ports import closed_port


@contextmanager
def webhook(status: int = 200) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A loopback webhook; yields its URL (a token in the path, as real ones have) and the requests."""
    with recording_server("POST", status) as (url, received):
        yield f"{url}/hooks/T0KEN", received


def test_daily_schedules_target_the_previous_day(hyperion_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERION_GOLDEN_QUERIES", str(SAMPLE_GOLDEN_QUERIES))
    defs = build_definitions(Settings.from_env())
    reconcile = defs.resolve_schedule_def("reconcile_documents_daily")
    assert reconcile.cron_schedule == "15 0 * * *" and reconcile.execution_timezone == "UTC"
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 1, 16, 0, 15, tzinfo=UTC),
            repository_def=defs.get_repository_def(),
        )
        [request] = reconcile.evaluate_tick(context).run_requests
    assert request.partition_key == UPLOAD_DAY and request.run_key == f"reconcile-{UPLOAD_DAY}"
    evaluate = defs.resolve_schedule_def("evaluate_documents_daily")
    assert evaluate.job_name == "evaluate_documents"
    # Without a golden set there is nothing to evaluate, so no evaluation schedule.
    monkeypatch.delenv("HYPERION_GOLDEN_QUERIES")
    assert {s.name for s in build_definitions(Settings.from_env()).schedules} == {
        "reconcile_documents_daily", "reclaim_storage_nightly",
    }  # fmt: skip


@pytest.fixture
def failed_run(hyperion_env: Settings, sample_uploads: Path, monkeypatch: pytest.MonkeyPatch):
    """A real failed run: chunks longer than the model embeds make document_chunks fail."""
    monkeypatch.setenv("HYPERION_CHUNK_MAX_TOKENS", "400")
    defs = build_definitions(Settings.from_env())
    with DagsterInstance.ephemeral() as instance:
        result = run_ingest(defs, instance)
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        failure = next(
            record.get_dagster_event()
            for record in instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_FAILURE)
        )
        yield defs, instance, run, failure


def alert(defs, instance, run, failure, resource: AlertWebhookResource) -> None:
    sensor = defs.resolve_sensor_def("alert_on_run_failure")
    context = build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=failure, dagster_instance=instance, dagster_run=run,
        resources={"alert_webhook": resource},
    )  # fmt: skip
    sensor(context)


def test_a_failed_run_is_posted_to_the_webhook(failed_run) -> None:
    defs, instance, run, failure = failed_run
    with webhook() as (url, received):
        alert(defs, instance, run, failure, AlertWebhookResource(url=url, ui_url="http://dagster.example:3000/"))
    [(_, body)] = received
    posted = json.loads(body)
    assert posted["run_id"] == run.run_id and posted["job"] == "ingest_documents"
    assert posted["partition"] == UPLOAD_DAY and posted["failed_steps"] == ["document_chunks"]
    assert "chunking.max_tokens=400" in posted["error"]
    assert posted["run_url"] == f"http://dagster.example:3000/runs/{run.run_id}"
    assert run.run_id in posted["text"] and "document_chunks" in posted["text"]


@pytest.mark.parametrize("broken", ["closed port", "HTTP 500"])
def test_a_failing_webhook_is_reported_not_fatal(failed_run, broken: str) -> None:
    defs, instance, run, failure = failed_run
    payload = {"run_id": run.run_id}
    if broken == "closed port":
        url = f"http://127.0.0.1:{closed_port()}/hooks/T0KEN"
        alert(defs, instance, run, failure, AlertWebhookResource(url=url))  # does not raise
        delivery = post_alert(url, payload, timeout_s=5)
        assert not delivery.delivered and delivery.detail == "ConnectError"
    else:
        with webhook(status=500) as (url, received):
            alert(defs, instance, run, failure, AlertWebhookResource(url=url))  # does not raise
            delivery = post_alert(url, payload)
        assert len(received) == 2 and delivery == Delivery(False, "HTTP 500")
    assert "T0KEN" not in delivery.detail  # what gets logged never quotes the URL or its token


def test_dagsters_command_line_backfills_a_date_range(hyperion_env: Settings) -> None:
    """`dagster job backfill` hands a range of days to the daemon, as the README shows."""
    (hyperion_env.dagster_home / "dagster.yaml").write_text(EMBEDDED_INSTANCE_YAML)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "backfill", "-w", "workspace.yaml",
         "-j", "ingest_documents", "--from", "2026-01-13", "--to", UPLOAD_DAY, "--noprompt"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    with DagsterInstance.get() as instance:
        [backfill] = instance.get_backfills()
    assert backfill.partition_names == ["2026-01-13", "2026-01-14", UPLOAD_DAY]
