"""Schedules and sensors: the daily reconciliation, the daily evaluation, run-failure alerts."""

from collections.abc import Sequence
from datetime import UTC, timedelta

from dagster import (
    ConfigurableResource,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    run_failure_sensor,
    schedule,
)
from pydantic import Field

from hyperion_pipelines.automation.alerts import RunFailure, alert_payload, post_alert
from hyperion_pipelines.dagster_internals import SerializableErrorInfo
from hyperion_pipelines.orchestration.pipeline import PipelineDefs
from hyperion_pipelines.spec import DEFAULT_OWNERS

ALERT_RESOURCE_KEY = "alert_webhook"


class AlertWebhookResource(ConfigurableResource):
    """Where run-failure alerts go (``HYPERION_ALERT_WEBHOOK_URL``, a secret: webhook URLs
    usually carry their token) and the UI address their links point at (``HYPERION_UI_URL``)."""

    url: str | None = Field(
        default=None, repr=False, description="Webhook receiving a JSON POST per failed run; unset: no alerts."
    )
    ui_url: str = Field(default="http://127.0.0.1:3000", description="Base URL of the Dagster UI, for run links.")
    timeout_s: float = Field(default=10.0, gt=0)


def build_schedules(pipeline: PipelineDefs) -> list[ScheduleDefinition]:
    name, when = pipeline.spec.name, pipeline.spec.schedules
    daily = {
        "execution_timezone": when.timezone,
        "default_status": DefaultScheduleStatus.RUNNING if when.running else DefaultScheduleStatus.STOPPED,
        "owners": list(pipeline.spec.owners),
    }

    @schedule(
        name=f"reconcile_{name}_daily",
        cron_schedule=when.reconcile_cron,
        job=pipeline.job,
        **daily,
        description=(
            f"At '{when.reconcile_cron}' ({when.timezone}), re-runs the previous UTC day's partition once it is "
            "complete: late uploads are indexed, deletions and edits reconciled, the index checks run on the "
            "final state."
        ),
    )
    def reconcile_daily(context: ScheduleEvaluationContext) -> RunRequest:
        day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date().isoformat()
        return RunRequest(run_key=f"reconcile-{day}", partition_key=day, tags={"hyperion/trigger": "daily-reconcile"})

    schedules = [reconcile_daily]
    if pipeline.evaluation_job is not None:
        schedules.append(
            ScheduleDefinition(
                name=f"evaluate_{name}_daily",
                cron_schedule=when.evaluate_cron,
                job=pipeline.evaluation_job,
                **daily,
                description=(
                    f"At '{when.evaluate_cron}' ({when.timezone}), scores the index (the current configuration's "
                    "collection) on the golden query set again, so a drop in "
                    "retrieval quality shows up (and its check warns or fails) within a day."
                ),
            )
        )
    return schedules


def _error_text(error: SerializableErrorInfo) -> str:
    """Dagster wraps the step's exception; the cause at the bottom of the chain says what broke."""
    messages = [error.message.strip()]
    while error.cause is not None:
        error = error.cause
        messages.append(error.message.strip())
    return messages[-1] if len(messages) == 1 else f"{messages[-1]} ({messages[0]})"


def owner_tags(owners: Sequence[str]) -> dict[str, str]:
    """Owners of a sensor that cannot take ``owners=`` (run-status sensors, Dagster 1.13), as a tag."""
    return {"hyperion/owners": ",".join(owners)}


def build_alert_sensor(owners: Sequence[str] = DEFAULT_OWNERS) -> SensorDefinition:
    @run_failure_sensor(
        name="alert_on_run_failure",
        description=(
            "Posts each failed run of this code location (run id, job, partition, failed steps, error, "
            "link to the run) to HYPERION_ALERT_WEBHOOK_URL. A webhook that fails is logged, not retried."
        ),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        tags=owner_tags(owners),
    )
    def alert_on_run_failure(context: RunFailureSensorContext, alert_webhook: AlertWebhookResource) -> None:
        run = context.dagster_run
        step_failures = context.get_step_failure_events()
        errors = [
            _error_text(e.event_specific_data.error)
            for e in step_failures
            if e.event_specific_data is not None and e.event_specific_data.error is not None
        ]
        failure = RunFailure(
            run_id=run.run_id,
            job=run.job_name,
            failed_steps=[e.step_key for e in step_failures if e.step_key],
            error=errors[0] if errors else (context.failure_event.message or ""),
            partition=run.tags.get("dagster/partition"),
        )
        if not alert_webhook.url:
            context.log.info(f"run {run.run_id} failed; no HYPERION_ALERT_WEBHOOK_URL, so no alert")
            return
        delivery = post_alert(
            alert_webhook.url, alert_payload(failure, alert_webhook.ui_url), timeout_s=alert_webhook.timeout_s
        )
        if delivery.delivered:
            context.log.info(f"alert for run {run.run_id} delivered ({delivery.detail})")
        else:
            context.log.warning(f"alert for run {run.run_id} not delivered: {delivery.detail}")

    return alert_on_run_failure
