"""Storage GC in Dagster: the ``reclaim_storage`` job and its nightly schedule.

The sweeping itself is pure (``housekeeping.storage_gc``); this layer finds what only the Dagster
instance knows (which runs are unfinished, where step outputs live) and reports the bytes freed
as the op's output metadata, so each run's page shows what was reclaimed.
"""

import time
from collections.abc import Sequence
from pathlib import Path

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    RunsFilter,
    ScheduleDefinition,
    job,
    op,
)

from hyperion_pipelines.housekeeping.storage_gc import GcReport, References, collect, references
from hyperion_pipelines.instance.run_launcher import worker_gone
from hyperion_pipelines.orchestration.resources.sources import BlobStoreResource
from hyperion_pipelines.spec import DEFAULT_OWNERS, PipelineSpec
from hyperion_pipelines.state.database import readable_engine

UNFINISHED = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
#: Clocks of hosts sharing the storage may differ: files written this long before the oldest
#: unfinished run started are still kept.
_CLOCK_MARGIN_S = 60.0
GC_JOB = "reclaim_storage"


def reclaim(
    instance: DagsterInstance,
    blob_store: BlobStoreResource,
    state_url: str,
    specs: Sequence[PipelineSpec],
    *,
    retention_days: float,
    dry_run: bool,
    own_run_id: str | None = None,
) -> GcReport:
    """One GC pass over the raw zone, the caches and the instance's step outputs. Without an
    instance (a disk too full to open it), step outputs are left alone and no run is known to be
    unfinished: on a full disk no run makes progress anyway."""
    now = time.time()
    unfinished = []
    if instance is not None:
        records = instance.get_run_records(RunsFilter(statuses=UNFINISHED))
        # A run whose worker died (a full disk can stop it before it records its failure) is over.
        unfinished = [r for r in records if r.dagster_run.run_id != own_run_id and not worker_gone(r.dagster_run.tags)]
    started = [(r.start_time or r.create_timestamp.timestamp()) - _CLOCK_MARGIN_S for r in unfinished]
    storage = instance.storage_directory() if instance is not None else None
    report = collect(
        blob_root=Path(blob_store.path),
        parse_caches=[blob_store.parse_cache(spec.parsing) for spec in specs],
        refs=state_references(state_url),
        storage=Path(storage) if storage else None,
        older_than=now - retention_days * 86400,
        unfinished_runs={r.dagster_run.run_id for r in unfinished},
        protect_after=min([now, *started]),
        dry_run=dry_run,
    )
    if instance is None:
        report.notes.append("the Dagster instance could not be opened: step outputs were left alone")
    return report


def state_references(url: str) -> References:
    engine = readable_engine(url)  # a full disk is when GC is needed most
    try:
        return references(engine)
    finally:
        engine.dispose()


def report_metadata(report: GcReport) -> dict:
    return {
        "freed_bytes": report.freed_bytes,
        "freed": MetadataValue.text(f"{report.freed_bytes / 2**20:.1f} MiB"),
        "removed_files": report.removed_files,
        **{f"{s.place}_freed_bytes": s.removed_bytes for s in report.sweeps},
        **{f"{s.place}_kept_bytes": s.kept_bytes for s in report.sweeps},
        "places": MetadataValue.json(report.as_json()["places"]),
        "notes": MetadataValue.md("\n".join(f"- {n}" for n in report.notes) or "none"),
    }


def build_housekeeping(specs: Sequence[PipelineSpec], retention_days: float) -> tuple[list[JobDefinition], list]:
    """The GC job and its nightly schedule (stopped or started in the UI). A job of one op, not an
    asset: reclaiming space makes no data, and the asset graph stays the pipelines' own."""

    @op(
        name="sweep_storage",
        required_resource_keys={"blob_store", "state_db"},
        description=(
            "Removes blobs and parse/chunk cache entries no recorded document version needs, and Dagster "
            f"step outputs and step logs older than {retention_days:g} days (HYPERION_STEP_OUTPUT_"
            "RETENTION_DAYS). Output metadata: bytes freed and kept per place."
        ),
    )
    def sweep_storage(context: OpExecutionContext) -> None:
        report = reclaim(
            context.instance,
            context.resources.blob_store,
            context.resources.state_db.url,
            specs,
            retention_days=retention_days,
            dry_run=False,
            own_run_id=context.run.run_id,
        )
        for note in report.notes:
            context.log.warning(note)
        context.add_output_metadata(report_metadata(report))

    @job(
        name=GC_JOB,
        description=(
            "Storage GC: reclaims blobs, cache entries and step outputs no document needs any more "
            "('hyperion gc --dry-run' counts them without removing)."
        ),
        owners=list(DEFAULT_OWNERS),
    )
    def reclaim_storage() -> None:
        sweep_storage()

    schedule = ScheduleDefinition(
        name=f"{GC_JOB}_nightly",
        job=reclaim_storage,
        cron_schedule="30 3 * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Every night at 03:30 UTC, storage GC (the reclaim_storage job); stop it in the UI.",
        owners=list(DEFAULT_OWNERS),
    )
    return [reclaim_storage], [schedule]
