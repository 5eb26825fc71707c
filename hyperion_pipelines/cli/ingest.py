"""``hyperion ingest``: materialise the document assets for upload-day partitions, then evaluate."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from hyperion_pipelines.cli.common import (
    CommandError,
    DayRuns,
    RunsInProgress,
    days_to_ingest,
    declared_pipeline,
    ensure_dagster_home,
    evaluate_after_ingest,
    notice,
    progress_shown,
    run_days,
)
from hyperion_pipelines.index.deletion_guard import ALLOW_DELETIONS_TAG
from hyperion_pipelines.settings import Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.uploads:
        os.environ["HYPERION_UPLOADS_DIR"] = str(Path(args.uploads).resolve())
    settings = Settings.from_env()
    ensure_dagster_home(settings)

    from dagster import DagsterInstance

    from hyperion_pipelines.definitions import build_definitions

    spec = declared_pipeline(args)
    if args.uploads and getattr(spec.source, "path", None) != os.environ["HYPERION_UPLOADS_DIR"]:
        raise CommandError(
            f"--uploads sets HYPERION_UPLOADS_DIR, which the pipeline {spec.name!r} does not read (its source: "
            f"{spec.source.kind} {getattr(spec.source, 'path', None) or getattr(spec.source, 'base_url', '')})"
        )
    defs = build_definitions(settings)
    job = defs.resolve_job_def(f"ingest_{spec.name}")
    valid = set(job.partitions_def.get_partition_keys())
    today = datetime.now(UTC).date()
    if args.all:
        wanted = days_to_ingest(settings, spec)
    elif args.from_date:
        first, last = date.fromisoformat(args.from_date), date.fromisoformat(args.to_date or today.isoformat())
        if last < first:
            print(f"--to {last} is before --from {first}", file=sys.stderr)
            return 2
        wanted = {(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)}
    else:
        wanted = {args.date or today.isoformat()}
    partitions, skipped = sorted(wanted & valid), sorted(wanted - valid)
    if skipped:
        print(
            f"Not upload-day partitions (before {spec.partitions_start} or in the future), skipped: "
            f"{', '.join(skipped)}",
            file=sys.stderr,
        )
        if not (args.all or args.from_date):
            return 2
    # Quiet by default: warnings and failures are printed below from the run's event log, one
    # line each, instead of Dagster's console lines with their stack traces.
    log_level = "INFO" if args.verbose else "CRITICAL"
    started = time.perf_counter()
    tags = {ALLOW_DELETIONS_TAG: "true"} if args.allow_deletions else {}
    with DagsterInstance.get() as instance, progress_shown(sys.stderr.isatty() and not args.json):
        refuse_beside_active_runs(instance, job.name)
        runs = run_days(job, instance, partitions, log_level, tags)
        evaluation = (
            evaluate_after_ingest(defs, spec, instance, log_level) if partitions and not runs.failed_days else None
        )
    totals, run_ids, failed = runs.totals, runs.run_ids, runs.failed_days
    summary = {
        **totals,
        "seconds": round(time.perf_counter() - started, 2),
        "step_seconds": runs.step_seconds,
        "partitions": partitions,
        "failed_partitions": failed,
        "skipped_partitions": skipped,
        "run_ids": run_ids,
        "failures": runs.failures,
        "failed_checks": runs.failed_checks,
        "evaluation": evaluation,
    }
    if args.json:
        print(json.dumps({**summary, "warnings": runs.warnings}))
    else:
        for line in runs.warnings if not args.verbose else []:
            print(f"warning: {line}", file=sys.stderr)
        print(
            f"Ingested {len(partitions)} partition(s): {totals['documents']} documents, "
            f"{totals['chunks']} chunks, {totals['rejected']} rejected, {totals['embedded']} chunks "
            f"embedded now, {totals['reused']} reused, in {summary['seconds']} s."
        )
        if evaluation:
            k = evaluation["k"]
            print(
                f"Golden queries: recall@{k} {evaluation['recall_at_k']:.3f}, MRR {evaluation['mrr']:.3f}, "
                f"nDCG@{k} {evaluation['ndcg_at_k']:.3f} ({evaluation['check']})."
            )
        for line in runs.failed_checks:
            print(f"FAILED check: {line} (see the asset's checks in the Dagster UI)", file=sys.stderr)
        if failed:
            print(f"FAILED partitions: {', '.join(failed)} (see the runs in the Dagster UI)", file=sys.stderr)
            for line in runs.failures:
                print(f"  {line}", file=sys.stderr)
    _hint_if_candidate(runs)
    return 1 if failed else 0


def _hint_if_candidate(runs: DayRuns) -> None:
    """After a configuration change, ingest fills a new collection that searches do not use yet."""
    for candidate, live in sorted(runs.collections):
        if live == candidate:
            continue
        print(
            f"Searches still use {live}: the index configuration changed, and this run wrote {candidate}. "
            "Run 'hyperion reindex' to fill it for every day and move the alias once its checks pass.",
            file=sys.stderr,
        )


def refuse_beside_active_runs(instance: DagsterInstance, job_name: str) -> None:
    """``ingest`` runs in this process, outside the instance's run queue, whose limits keep one
    run per upload day and one writer of the embedded index: with runs of the job queued or
    under way there (the sensor's, a schedule's, a backfill's), it refuses rather than race them."""
    from dagster import DagsterRunStatus, RunsFilter

    active = instance.get_run_records(
        RunsFilter(
            job_name=job_name,
            statuses=[
                DagsterRunStatus.QUEUED,
                DagsterRunStatus.NOT_STARTED,
                DagsterRunStatus.STARTING,
                DagsterRunStatus.STARTED,
                DagsterRunStatus.CANCELING,
            ],
        ),
        limit=5,
    )
    from hyperion_pipelines.instance.run_launcher import worker_gone

    stale = [r for r in active if worker_gone(r.dagster_run.tags)]
    for record in stale:
        # Its process on this machine is gone without marking it (killed, or the disk was full
        # when it failed): it writes nothing any more, so it holds nothing back.
        instance.report_run_failed(record.dagster_run)
        notice(f"run {record.dagster_run.run_id[:8]} had no process any more; marked failed")
    active = [r for r in active if r not in stale]
    if active:
        runs = ", ".join(
            f"{r.dagster_run.run_id[:8]} ({r.dagster_run.tags.get('dagster/partition', '?')}, "
            f"{r.dagster_run.status.value.lower()})"
            for r in active
        )
        raise RunsInProgress(
            f"runs of {job_name} are queued or running in the Dagster instance ({runs}); ingest runs in this "
            "process, outside the run queue that keeps one run per day and one index writer. Wait for them (the "
            "UI's Runs page), or launch the days from the UI (a backfill) instead."
        )
