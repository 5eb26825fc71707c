"""The upload sensor: changes at the document source become runs of their upload days.

The work is in ``automation/upload_changes.py``; this module reads the cursor and the run queue,
and returns the run requests.
"""

import json
import time
from datetime import UTC, date, datetime, timedelta

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from hyperion_pipelines.automation.change_feed import ChangeFeed, scan_feed
from hyperion_pipelines.automation.upload_changes import dumps, plan_runs, scan_listing
from hyperion_pipelines.index.deletion_guard import FAR_FUTURE
from hyperion_pipelines.orchestration.partitions import upload_day_partitions
from hyperion_pipelines.orchestration.pipeline import PipelineDefs
from hyperion_pipelines.orchestration.resources.sources import DocumentSourceResource
from hyperion_pipelines.orchestration.resources.state import StateDatabaseResource
from hyperion_pipelines.sources.base import SourceUnavailable

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
# Dagster stops a sensor evaluation after 60 s by default: a slow or failing source must fail the
# tick (to be tried again on the next) well before that.
SOURCE_BUDGET_S = 20.0  # future-dated files are listed, so they are reported


def active_days(instance: DagsterInstance, job_name: str, asset_keys: frozenset | None = None) -> set[str]:
    """Upload days with a run of the job queued or in progress (sensor, schedule, job backfill or
    UI), and with an asset run of ``asset_keys`` in progress: a backfill launched from the asset
    graph runs as Dagster's asset job, tagged with its partition range instead of the partition."""
    days = set()
    for run in instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT)):
        ours = run.job_name == job_name or bool(asset_keys and run.asset_selection and run.asset_selection & asset_keys)
        if not ours:
            continue
        if "dagster/partition" in run.tags:
            days.add(run.tags["dagster/partition"])
        first, last = run.tags.get(RANGE_START), run.tags.get(RANGE_END)
        if first and last:
            day, end = date.fromisoformat(first), date.fromisoformat(last)
            while day <= end:
                days.add(day.isoformat())
                day += timedelta(days=1)
    return days


def build_upload_sensor(pipeline: PipelineDefs) -> SensorDefinition:
    spec = pipeline.spec
    keys = spec.resources
    settings = spec.upload_sensor
    partitions = upload_day_partitions(spec.partitions_start)
    start = datetime.fromisoformat(spec.partitions_start).replace(tzinfo=UTC)

    @sensor(
        name=f"{spec.name}_uploads",
        job=pipeline.job,
        minimum_interval_seconds=settings.minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING if spec.upload_sensor.running else DefaultSensorStatus.STOPPED,
        required_resource_keys={keys.source, keys.state},
        owners=list(spec.owners),
        description=(
            "Compares the document source with the index manifest and requests one run per upload day "
            "with new, edited or deleted documents (newest day first, at most "
            f"{settings.max_runs_per_tick} per tick). A day whose run is still in flight gets its next "
            "run after it ends. Run keys name the exact set of changes, so a day can run again the same "
            "day, and the same changes never run twice."
        ),
    )
    def upload_sensor(context: SensorEvaluationContext) -> SensorResult:
        started = time.perf_counter()
        cursor = json.loads(context.cursor) if context.cursor else {}
        state: StateDatabaseResource = getattr(context.resources, keys.state)
        source_resource: DocumentSourceResource = getattr(context.resources, keys.source)
        manifest = state.manifest(spec.name)
        with source_resource.open(budget_s=SOURCE_BUDGET_S) as source:
            if isinstance(source, ChangeFeed):
                scan = scan_feed(
                    source,
                    manifest,
                    cursor.get("feed", {}),
                    start=start,
                    now=datetime.now(UTC),
                    max_pages=settings.feed_pages_per_tick,
                )
            else:
                try:
                    scan = scan_listing(source, manifest, start, FAR_FUTURE)
                except SourceUnavailable as exc:
                    # Not "everything was deleted": nothing is requested until the source is back.
                    context.log.warning(str(exc))
                    kept = len(manifest.indexed())
                    reason = f"{exc}; {kept} indexed document(s) left as they are" if kept else str(exc)
                    return SensorResult(skip_reason=reason, cursor=context.cursor)
            for line in source.skipped_entries:
                context.log.warning(line)
        # Either way, a change stays pending (the same run key) until the manifest shows it done.
        pending = scan.pending
        plan = plan_runs(
            pending,
            active_days=active_days(context.instance, pipeline.job.name, frozenset(a.key for a in pipeline.assets)),
            is_partition=partitions.has_partition_key,
            max_runs=settings.max_runs_per_tick,
            held_days=scan.open_days,
        )
        for changes in plan.out_of_range:
            context.log.warning(
                f"{changes.total} change(s) dated {changes.day}, which is not an upload-day partition "
                f"(before {spec.partitions_start} or in the future): not requested"
            )
        seconds = round(time.perf_counter() - started, 3)
        new_cursor = {
            "feed": scan.cursor,
            "last_tick": {"documents_seen": scan.documents_seen, "pending_days": len(pending), "seconds": seconds},
        }
        requests = [
            RunRequest(
                run_key=changes.run_key,
                partition_key=changes.day,
                tags={
                    "hyperion/trigger": "upload-sensor",
                    "hyperion/changes": f"{changes.added} added, {changes.edited} edited, {changes.deleted} deleted",
                },
            )
            for changes in plan.requested
        ]
        context.log.info(
            f"{scan.documents_seen} document(s) seen, {len(pending)} day(s) with changes: "
            f"{len(requests)} requested, {len(plan.waiting)} waiting on a run, {len(plan.deferred)} deferred; "
            f"{seconds} s"
        )
        if not requests:
            owed = len(plan.waiting) + len(plan.deferred)
            reason = f"{owed} day(s) with changes wait on runs in flight" if owed else "no changes at the source"
            return SensorResult(skip_reason=reason, cursor=dumps(new_cursor))
        return SensorResult(run_requests=requests, cursor=dumps(new_cursor))

    return upload_sensor
