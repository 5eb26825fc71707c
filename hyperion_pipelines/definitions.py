"""The Hyperion Pipelines code location: ``dagster dev`` in the repository root loads ``defs``."""

from __future__ import annotations

import warnings

from dagster import BetaWarning, Definitions, with_source_code_references

from hyperion_pipelines.defs.automation import (
    ALERT_RESOURCE_KEY,
    AlertWebhookResource,
    build_alert_sensor,
    build_schedules,
)
from hyperion_pipelines.defs.monitoring import METRICS_RESOURCE_KEY, PrometheusPushResource, build_metrics_sensors
from hyperion_pipelines.defs.pipeline import PipelineDefs, build_pipeline
from hyperion_pipelines.defs.resources import build_resources, secret
from hyperion_pipelines.defs.sensors import build_upload_sensor
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import (
    ChunkingSpec,
    EvaluationSpec,
    ExecutionLimits,
    IndexSpec,
    ParsingLimits,
    ParsingSpec,
    PipelineSpec,
)


def default_spec(settings: Settings) -> PipelineSpec:
    """The sample pipeline: documents from the configured source into the configured alias."""
    return PipelineSpec(
        name="documents",
        description="Uploaded documents made searchable in Milvus.",
        partitions_start=settings.partitions_start,
        parsing=ParsingSpec(
            limits=ParsingLimits(
                max_document_bytes=settings.max_document_bytes,
                timeout_s=settings.parse_timeout_s,
                memory_bytes=settings.parse_memory_mb * 1024 * 1024,
            )
        ),
        chunking=ChunkingSpec(max_tokens=settings.chunk_max_tokens, overlap_tokens=settings.chunk_overlap_tokens),
        index=IndexSpec(alias=settings.collection),
        evaluation=EvaluationSpec(
            golden_queries=str(settings.golden_queries) if settings.golden_queries else None, k=settings.eval_k
        ),
        embed_batch_size=settings.embedding_batch_size,
        limits=ExecutionLimits(step_timeout_s=settings.step_timeout_s, run_timeout_s=settings.run_timeout_s),
    )


def build_definitions(settings: Settings | None = None, specs: list[PipelineSpec] | None = None) -> Definitions:
    settings = settings or Settings.from_env()
    pipelines: list[PipelineDefs] = [build_pipeline(spec) for spec in specs or [default_spec(settings)]]
    owners = list(dict.fromkeys(owner for p in pipelines for owner in p.spec.owners))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # code references are beta, and harmless
        assets = with_source_code_references([a for p in pipelines for a in p.all_assets])
    return Definitions(
        assets=assets,
        jobs=[job for p in pipelines for job in p.jobs],
        schedules=[s for p in pipelines for s in build_schedules(p)],
        sensors=[
            *(build_upload_sensor(p) for p in pipelines),
            build_alert_sensor(owners),
            *build_metrics_sensors(pipelines),
        ],
        resources={
            **build_resources(settings),
            ALERT_RESOURCE_KEY: AlertWebhookResource(url=secret("HYPERION_ALERT_WEBHOOK_URL"), ui_url=settings.ui_url),
            METRICS_RESOURCE_KEY: PrometheusPushResource(gateway=settings.prometheus_pushgateway),
        },
    )


defs = build_definitions()
