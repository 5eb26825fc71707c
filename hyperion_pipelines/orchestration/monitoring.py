"""Run-status sensors that push each ingest run's metrics to a Prometheus push gateway."""

from collections.abc import Sequence

from dagster import (
    ConfigurableResource,
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    SensorDefinition,
    run_status_sensor,
)
from pydantic import Field

from hyperion_pipelines.monitoring.metrics import push_metrics, run_metrics_from
from hyperion_pipelines.orchestration.automation import owner_tags
from hyperion_pipelines.run_metadata import metadata_by_asset
from hyperion_pipelines.spec import DEFAULT_OWNERS

METRICS_RESOURCE_KEY = "prometheus"


class PrometheusPushResource(ConfigurableResource):
    """Where run metrics go (``HYPERION_PROMETHEUS_PUSHGATEWAY``); unset, nothing is pushed."""

    gateway: str | None = Field(default=None, description="Push gateway address, e.g. http://pushgateway:9091.")
    timeout_s: float = Field(default=10.0, gt=0)


def _collect(context: RunStatusSensorContext, pipeline_name: str) -> tuple:
    run = context.dagster_run
    instance = context.instance
    metadata = metadata_by_asset(
        record.get_dagster_event().event_specific_data.materialization
        for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    )
    checks = {}
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.get_dagster_event().event_specific_data
        checks[(evaluation.asset_key.path[-1], evaluation.check_name)] = evaluation.passed
    stats = instance.get_run_stats(run.run_id)
    duration = stats.end_time - stats.start_time if stats.start_time and stats.end_time else None
    return run_metrics_from(
        pipeline=pipeline_name,
        partition=run.tags.get("dagster/partition", ""),
        run_id=run.run_id,
        succeeded=run.status == DagsterRunStatus.SUCCESS,
        duration_s=duration,
        finished_at=stats.end_time,
        metadata=metadata,
        checks=checks,
    )


INGEST_JOB_PREFIX = "ingest_"


def build_metrics_sensors(owners: Sequence[str] = DEFAULT_OWNERS) -> list[SensorDefinition]:
    """One pair for the code location: every pipeline's ingest job (``ingest_<pipeline>``) is pushed."""
    sensors = []
    for status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE):

        @run_status_sensor(
            run_status=status,
            name=f"push_metrics_on_{status.value.lower()}",
            default_status=DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=30,
            tags=owner_tags(owners),
            description=(
                f"After each {status.value.lower()} ingest run of any pipeline, pushes its metrics (documents, "
                "chunks, rejected by reason, embedded and reused, run duration, check outcomes) to "
                "HYPERION_PROMETHEUS_PUSHGATEWAY."
            ),
        )
        def push_run_metrics(context: RunStatusSensorContext, prometheus: PrometheusPushResource) -> None:
            job = context.dagster_run.job_name
            if not prometheus.gateway or not job.startswith(INGEST_JOB_PREFIX):
                return
            metrics = _collect(context, job.removeprefix(INGEST_JOB_PREFIX))
            delivery = push_metrics(prometheus.gateway, metrics, timeout_s=prometheus.timeout_s)
            if not delivery.delivered:
                context.log.warning(f"metrics of run {metrics.run_id} not pushed: {delivery.detail}")

        sensors.append(push_run_metrics)
    return sensors
