"""Prometheus metrics: a real run's numbers pushed to a loopback push gateway, in Prometheus'
text format, parsed back with prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context
from prometheus_client.parser import text_string_to_metric_families

from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.monitoring.metrics import push_metrics, run_metrics_from
from hyperion_pipelines.orchestration.monitoring import PrometheusPushResource
from hyperion_pipelines.settings import Settings

from ..conftest import UPLOAD_DAY, run_ingest, set_upload_time
from ..support.loopback import recording_server
from ..support.ports import closed_port


def samples(body: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


@pytest.fixture
def finished_run(hyperion_env: Settings, sample_uploads: Path, monkeypatch: pytest.MonkeyPatch):
    (sample_uploads / "empty.txt").write_text("")  # one quarantined document
    set_upload_time(sample_uploads / "empty.txt")
    defs = build_definitions(Settings.from_env())
    with DagsterInstance.ephemeral() as instance:
        result = run_ingest(defs, instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        success = next(
            r.get_dagster_event() for r in instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_SUCCESS)
        )
        yield defs, instance, run, success, result


def test_a_finished_run_pushes_its_numbers(finished_run) -> None:
    defs, instance, run, success, result = finished_run
    sensor = defs.resolve_sensor_def("push_metrics_on_success")
    with recording_server("PUT") as (url, pushes):
        context = build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=success, dagster_instance=instance, dagster_run=run,
            resources={"prometheus": PrometheusPushResource(gateway=url)},
        )  # fmt: skip
        sensor(context)
    [(path, raw)] = pushes
    body = raw.decode()
    assert path == f"/metrics/job/hyperion_pipelines/partition/{UPLOAD_DAY}/pipeline/documents"
    got = samples(body)
    chunks = next(
        e.materialization.metadata["chunks"].value
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == "document_chunks"
    )
    assert got[("hyperion_run_success", ())] == 1
    assert got[("hyperion_run_duration_seconds", ())] > 0
    assert got[("hyperion_documents", ())] == 9 and got[("hyperion_documents_rejected", ())] == 1
    assert got[("hyperion_documents_rejected_by_reason", (("reason", "empty"),))] == 1
    assert got[("hyperion_chunks", ())] == chunks == got[("hyperion_chunks_embedded", ())]
    assert got[("hyperion_chunks_reused", ())] == 0
    assert got[("hyperion_check_passed", (("asset", "vector_index"), ("check", "matches_chunks")))] == 1
    assert got[("hyperion_check_passed", (("asset", "raw_documents"), ("check", "schema")))] == 1


def test_without_a_gateway_nothing_is_pushed_and_a_dead_one_is_not_fatal(finished_run) -> None:
    defs, instance, run, success, _ = finished_run
    sensor = defs.resolve_sensor_def("push_metrics_on_success")
    for gateway in (None, f"http://127.0.0.1:{closed_port()}"):
        context = build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=success, dagster_instance=instance, dagster_run=run,
            resources={"prometheus": PrometheusPushResource(gateway=gateway, timeout_s=2)},
        )  # fmt: skip
        sensor(context)  # no exception
    metrics = run_metrics_from(
        pipeline="documents", partition=UPLOAD_DAY, run_id="r", succeeded=False, duration_s=None,
        finished_at=None, metadata={}, checks={},
    )  # fmt: skip
    assert not push_metrics(f"http://127.0.0.1:{closed_port()}", metrics, timeout_s=2).delivered
    with recording_server("PUT", status=500) as (url, _):
        assert push_metrics(url, metrics).detail == "HTTPError"
