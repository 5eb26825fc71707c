"""``hyperion reindex``: blue/green, build the current embedding space's collection, check it, move the alias."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from hyperion_pipelines.cli.common import (
    days_to_ingest,
    declared_pipeline,
    ensure_dagster_home,
    evaluate_after_ingest,
    index_and_embedder,
    run_days,
)
from hyperion_pipelines.embedding.space import collection_fingerprint
from hyperion_pipelines.settings import Settings

if TYPE_CHECKING:
    from hyperion_pipelines.spec import PipelineSpec


def _indexed_documents(settings: Settings, spec: PipelineSpec) -> tuple[set[str], set[str]]:
    """Documents the index manifest records as indexed, and the days it has documents on."""
    from hyperion_pipelines.orchestration.resources import build_resources

    resource = build_resources(settings, spec)[spec.resources.state]
    with resource.process_config_and_initialize_cm() as state:
        manifest = state.manifest(spec.name)
        indexed = {doc for doc, entry in manifest.indexed().items() if entry.status == "indexed"}
        return indexed, manifest.partitions()


# The evaluation summary's "check" (passed, or the failed check's severity) as a quality level.
_LEVELS = {"passed": "pass", "warn": "warn", "error": "fail"}


def cmd_reindex(args: argparse.Namespace) -> int:
    """Blue/green: fill the current embedding space's collection for every upload day, check it,
    evaluate it, and only then move the live alias to it."""
    settings = Settings.from_env()
    ensure_dagster_home(settings)
    from dagster import DagsterInstance

    from hyperion_pipelines.definitions import build_definitions
    from hyperion_pipelines.index.promotion import coverage, decide

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
    with DagsterInstance.get() as instance:
        runs = run_days(job, instance, days, log_level)
        wrote = bool(days) and not runs.failed_days
        evaluation = evaluate_after_ingest(defs, spec, instance, log_level) if wrote else None
    indexed, _ = _indexed_documents(settings, spec)
    with index_and_embedder(settings, spec) as (index, _):
        exists = index.client.has_collection(candidate)
        documents = coverage(index.document_ids(candidate) if exists else set(), indexed)
        decision = decide(
            candidate_exists=exists,
            failed_days=runs.failed_days,
            failed_checks=runs.failed_checks,
            documents=documents,
            evaluation_level=None if evaluation is None else _LEVELS.get(evaluation["check"], "fail"),
        )
        if decision.promote:
            index.point_alias(candidate)
        others = [c for c in index.collections() if c != index.live_collection()]
        dropped = []
        if decision.promote and args.drop_old:
            for name in others:
                index.drop(name)
                dropped.append(name)
    seconds = round(time.perf_counter() - started, 2)
    summary = {
        "candidate": candidate,
        "previous": live,
        "promoted": decision.promote,
        "reasons": decision.reasons,
        "partitions": days,
        "documents": len(indexed),
        "evaluation": evaluation,
        "dropped": dropped,
        "old_collections": [c for c in others if c not in dropped],
        "run_ids": runs.run_ids,
        "seconds": seconds,
    }
    if args.json:
        print(json.dumps(summary))
    elif decision.promote:
        print(f"{spec.index.alias} now points at {candidate} ({len(indexed)} documents, {seconds} s).")
        if dropped:
            print(f"Dropped: {', '.join(dropped)}.")
        elif summary["old_collections"]:
            print(f"Old collections kept: {', '.join(summary['old_collections'])} (drop them with --drop-old).")
    else:
        print(f"NOT promoted; searches keep using {live or 'nothing'}:", file=sys.stderr)
        for reason in decision.reasons:
            print(f"  - {reason}", file=sys.stderr)
    return 0 if decision.promote else 1
