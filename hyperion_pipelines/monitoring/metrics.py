"""Run metrics in Prometheus' exposition format, pushed to a Prometheus push gateway.

Runs are batch jobs in short-lived processes, which a Prometheus server cannot scrape: the
documented pattern is a push gateway that keeps the last value each job pushed. One group per
pipeline and upload day (``job="hyperion_pipelines", pipeline, partition``), so every day's
latest run stays visible; metric names are stable, so dashboards and alerts can rely on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.error import URLError

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from prometheus_client.exposition import generate_latest

from hyperion_pipelines import run_metadata as rm
from hyperion_pipelines.automation.alerts import Delivery

PUSH_JOB = "hyperion_pipelines"

#: Metric name -> (help text, the metadata entry it is read from).
FROM_METADATA: dict[str, tuple[str, rm.Entry]] = {
    "hyperion_documents": ("Documents uploaded on the day, as landed by the run", rm.DOCUMENTS),
    "hyperion_documents_parsed_now": ("Documents parsed by the run", rm.PARSED_NOW),
    "hyperion_documents_parse_reused": ("Documents whose earlier parse was reused", rm.PARSE_REUSED),
    "hyperion_documents_rejected": ("Documents quarantined", rm.REJECTED),
    "hyperion_chunks": ("Chunks of the day's documents", rm.CHUNKS),
    "hyperion_chunks_embedded": ("Chunks embedded by the run", rm.EMBEDDED),
    "hyperion_chunks_reused": ("Chunks whose stored vector was reused", rm.REUSED),
    "hyperion_index_upserted": ("Index entries written by the run", rm.UPSERTED),
    "hyperion_index_deleted": ("Index entries deleted by the run", rm.DELETED),
    "hyperion_collection_entries": ("Entries in the collection after the run", rm.COLLECTION_ENTRIES),
}


@dataclass(frozen=True)
class RunMetrics:
    pipeline: str
    partition: str
    run_id: str
    succeeded: bool
    duration_s: float | None
    finished_at: float | None  # Unix time
    counts: dict[str, float] = field(default_factory=dict)  # FROM_METADATA names -> value
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    checks: dict[tuple[str, str], bool] = field(default_factory=dict)  # (asset, check) -> passed


def run_metrics_from(
    *,
    pipeline: str,
    partition: str,
    run_id: str,
    succeeded: bool,
    duration_s: float | None,
    finished_at: float | None,
    metadata: rm.RunMetadata,
    checks: Mapping[tuple[str, str], bool],
) -> RunMetrics:
    found = {name: entry.of(metadata) for name, (_, entry) in FROM_METADATA.items()}
    counts = {name: float(value) for name, value in found.items() if value is not None}
    reasons = rm.REJECTED_BY_REASON.of(metadata) or {}
    return RunMetrics(
        pipeline=pipeline,
        partition=partition,
        run_id=run_id,
        succeeded=succeeded,
        duration_s=duration_s,
        finished_at=finished_at,
        counts=counts,
        rejected_by_reason={str(k): int(v) for k, v in dict(reasons).items()},  # type: ignore[call-overload]
        checks=dict(checks),
    )


def registry_for(metrics: RunMetrics) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("hyperion_run_success", "1 when the day's latest run succeeded, else 0", registry=registry).set(
        1 if metrics.succeeded else 0
    )
    if metrics.duration_s is not None:
        Gauge("hyperion_run_duration_seconds", "Wall-clock seconds of the day's latest run", registry=registry).set(
            metrics.duration_s
        )
    if metrics.finished_at is not None:
        Gauge("hyperion_run_finished_timestamp_seconds", "When the day's latest run ended", registry=registry).set(
            metrics.finished_at
        )
    for name, value in metrics.counts.items():
        Gauge(name, FROM_METADATA[name][0], registry=registry).set(value)
    by_reason = Gauge(
        "hyperion_documents_rejected_by_reason", "Documents quarantined, by reason code", ["reason"], registry=registry
    )
    for reason, count in metrics.rejected_by_reason.items():
        by_reason.labels(reason=reason).set(count)
    check = Gauge(
        "hyperion_check_passed", "1 when the asset check passed, else 0", ["asset", "check"], registry=registry
    )
    for (asset, name), passed in metrics.checks.items():
        check.labels(asset=asset, check=name).set(1 if passed else 0)
    return registry


def exposition(metrics: RunMetrics) -> str:
    return generate_latest(registry_for(metrics)).decode()


def push_metrics(gateway: str, metrics: RunMetrics, *, timeout_s: float = 10.0) -> Delivery:
    """Replace the pipeline-and-day group on the gateway. Failures are returned, not raised."""
    try:
        push_to_gateway(
            gateway,
            job=PUSH_JOB,
            registry=registry_for(metrics),
            grouping_key={"pipeline": metrics.pipeline, "partition": metrics.partition},
            timeout=timeout_s,
        )
    except (URLError, OSError, ValueError) as exc:
        return Delivery(False, type(exc).__name__)  # the type only: a gateway URL may carry credentials
    return Delivery(True, "pushed")
