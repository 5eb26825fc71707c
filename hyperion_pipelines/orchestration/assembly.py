"""Assemble Dagster definitions: one pipeline's, and the code location's shared ones."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from dagster import BetaWarning, Definitions, with_source_code_references

from hyperion_pipelines.orchestration.automation import (
    ALERT_RESOURCE_KEY,
    AlertWebhookResource,
    build_alert_sensor,
    build_schedules,
)
from hyperion_pipelines.orchestration.execution import run_executor
from hyperion_pipelines.orchestration.housekeeping import build_housekeeping
from hyperion_pipelines.orchestration.monitoring import (
    METRICS_RESOURCE_KEY,
    PrometheusPushResource,
    build_metrics_sensors,
)
from hyperion_pipelines.orchestration.pipeline import build_pipeline
from hyperion_pipelines.orchestration.promotion import build_promotion_job
from hyperion_pipelines.orchestration.resources import pipeline_resources, secret, shared_resources
from hyperion_pipelines.orchestration.sensors import build_upload_sensor
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import PipelineSpec


def pipeline_definitions(spec: PipelineSpec, settings: Settings) -> Definitions:
    """One pipeline: its assets and checks, jobs, upload sensor, schedules and own resources."""
    pipeline = build_pipeline(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # code references are beta, and harmless
        assets = with_source_code_references(pipeline.all_assets)
    return Definitions(
        assets=assets,
        jobs=[*pipeline.jobs, build_promotion_job(pipeline)],
        schedules=build_schedules(pipeline),
        sensors=[build_upload_sensor(pipeline)],
        resources=pipeline_resources(spec, settings),
    )


def platform_definitions(settings: Settings, specs: Sequence[PipelineSpec]) -> Definitions:
    """What every pipeline shares: run-failure alerts, metrics, storage GC, the raw zone and the
    state database."""
    gc_jobs, gc_schedules = build_housekeeping(specs, settings.step_output_retention_days)
    return Definitions(
        executor=run_executor(settings),  # every job's, and assets materialised from the UI outside them
        jobs=gc_jobs,
        schedules=gc_schedules,
        sensors=[build_alert_sensor(), *build_metrics_sensors()],
        resources={
            **shared_resources(settings),
            ALERT_RESOURCE_KEY: AlertWebhookResource(url=secret("HYPERION_ALERT_WEBHOOK_URL"), ui_url=settings.ui_url),
            METRICS_RESOURCE_KEY: PrometheusPushResource(gateway=settings.prometheus_pushgateway),
        },
    )
