"""``hyperion reindex``: blue/green, build the current embedding space's collection, check it, move the alias."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from hyperion_pipelines.cli.common import (
    FaultFound,
    days_to_ingest,
    declared_pipeline,
    ensure_dagster_home,
    index_and_embedder,
    progress_shown,
    run_days,
)
from hyperion_pipelines.embedding.space import collection_fingerprint
from hyperion_pipelines.run_metadata import PROMOTION_SUMMARY
from hyperion_pipelines.settings import Settings

if TYPE_CHECKING:
    from dagster import ExecuteInProcessResult

    from hyperion_pipelines.spec import PipelineSpec


def _indexed_documents(settings: Settings, spec: PipelineSpec) -> tuple[set[str], set[str]]:
    """Documents the index manifest records as indexed, and the days it has documents on."""
    from hyperion_pipelines.orchestration.resources import build_resources

    resource = build_resources(settings, spec)[spec.resources.state]
    with resource.process_config_and_initialize_cm() as state:
        manifest = state.manifest(spec.name)
        indexed = {doc for doc, entry in manifest.indexed().items() if entry.status == "indexed"}
        return indexed, manifest.partitions()


def cmd_reindex(args: argparse.Namespace) -> int:
    """Blue/green: fill the current embedding space's collection for every upload day, check it,
    evaluate it, and only then move the live alias to it."""
    settings = Settings.from_env()
    ensure_dagster_home(settings)
    from dagster import DagsterInstance

    from hyperion_pipelines.definitions import build_definitions
    from hyperion_pipelines.orchestration.promotion import promote_op_name

    spec = declared_pipeline(args)
    defs = build_definitions(settings)
    with index_and_embedder(settings, spec) as (index, embedder):
        candidate = index.collection_name(collection_fingerprint(spec, embedder.identity, index.retrieval))
        live = index.live_collection()
    if live == candidate and not args.force:
        if args.json:
            print(json.dumps({"candidate": candidate, "previous": live, "promoted": False, "already_live": True}))
        else:
            print(f"{candidate} is already live: the embedding configuration has not changed (--force rebuilds it).")
        return 0
    job = defs.resolve_job_def(f"ingest_{spec.name}")
    valid = set(job.partitions_def.get_partition_keys())
    days = sorted((days_to_ingest(settings, spec) | _indexed_documents(settings, spec)[1]) & valid)
    print(f"Building {candidate} for {len(days)} upload day(s); searches keep using {live or 'nothing yet'}.")
    # Quiet by default: warnings and failures are printed below from the run's event log, one
    # line each, instead of Dagster's console lines with their stack traces.
    log_level = "INFO" if args.verbose else "CRITICAL"
    started = time.perf_counter()
    with DagsterInstance.get() as instance, progress_shown(sys.stderr.isatty() and not args.json):
        runs = run_days(job, instance, days, log_level)
        # The decision and the alias move are the promote job's, which the UI launches too.
        op_name = promote_op_name(spec.name)
        config = {"drop_old": args.drop_old, "failed_days": runs.failed_days}
        promotion = defs.resolve_job_def(f"promote_{spec.name}").execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={
                "loggers": {"console": {"config": {"log_level": log_level}}},
                "ops": {op_name: {"config": config}},
            },
        )
    decided = promotion_summary(promotion, op_name)
    seconds = round(time.perf_counter() - started, 2)
    summary = {
        "candidate": candidate,
        "previous": live,
        "promoted": decided["promoted"],
        "reasons": decided["reasons"],
        "partitions": days,
        "documents": decided["documents"],
        "evaluation": decided["evaluation"],
        "dropped": decided["dropped"],
        "old_collections": decided["old_collections"],
        "run_ids": [*runs.run_ids, promotion.run_id],
        "seconds": seconds,
    }
    if args.json:
        print(json.dumps(summary))
    elif summary["promoted"]:
        print(f"{spec.index.alias} now points at {candidate} ({summary['documents']} documents, {seconds} s).")
        if summary["dropped"]:
            print(f"Dropped: {', '.join(summary['dropped'])}.")
        elif summary["old_collections"]:
            print(f"Old collections kept: {', '.join(summary['old_collections'])} (drop them with --drop-old).")
    else:
        print(f"NOT promoted; searches keep using {live or 'nothing'}:", file=sys.stderr)
        for reason in summary["reasons"]:
            print(f"  - {reason}", file=sys.stderr)
    return 0 if summary["promoted"] else 1


def promotion_summary(result: ExecuteInProcessResult, op_name: str) -> dict:
    """What the promote job decided: its output, or, when it refused, the summary it attached
    to its failure."""
    if result.success:
        return result.output_for_node(op_name)
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            user = event.event_specific_data.user_failure_data
            if user is not None and PROMOTION_SUMMARY in user.metadata:
                return user.metadata[PROMOTION_SUMMARY].value
    raise FaultFound(f"the promote job failed without a decision; see run {result.run_id} in the UI")
