"""``hyperion repair``: set damaged state (and, asked, a damaged index) aside and rebuild it from the source."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperion_pipelines.cli.common import (
    CommandError,
    FaultFound,
    days_to_ingest,
    ensure_dagster_home,
    notice,
    run_days,
)
from hyperion_pipelines.settings import Settings

if TYPE_CHECKING:
    from hyperion_pipelines.spec import PipelineSpec


def _check_index(settings: Settings, spec: PipelineSpec, rebuild: bool) -> str:
    """Open every collection of the pipeline's index; a damaged milvus-lite folder is set aside
    when ``rebuild``, else named with the way back."""
    from pymilvus.exceptions import MilvusException

    from hyperion_pipelines.faults import explain
    from hyperion_pipelines.housekeeping.state_repair import is_index_damage, set_aside
    from hyperion_pipelines.index.connection import release_local
    from hyperion_pipelines.orchestration.resources import build_resources

    uri = spec.index.milvus_uri or settings.milvus_uri
    try:
        with build_resources(settings, spec)[spec.resources.milvus].process_config_and_initialize_cm() as milvus:
            index = milvus.index(spec.index, notice)
            for collection in index.collections():
                index.ensure_loaded(collection)
        return "sound"
    except MilvusException as exc:
        if not is_index_damage(str(exc)):
            raise
        if not rebuild:
            raise FaultFound(explain(str(exc), settings)) from None
        if "://" in uri:
            raise CommandError(f"{uri} is a Milvus server: restore its collections from its backups") from None
        release_local(uri)
        return f"damaged ({str(exc).strip()[:160]}): set aside as {set_aside(Path(uri))}, rebuilt"


def cmd_repair(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    ensure_dagster_home(settings)
    from dagster import DagsterInstance

    from hyperion_pipelines.definitions import build_definitions, pipeline_specs
    from hyperion_pipelines.housekeeping.state_repair import set_aside, sqlite_damage, sqlite_file

    path = sqlite_file(os.environ.get("HYPERION_STATE_DB_URL") or settings.state_db_url)
    if path is None:
        state = "a database server: not checked (restore it from its backups if damaged); rebuilt"
    elif damage := sqlite_damage(path):
        state = f"damaged ({damage}): set aside as {set_aside(path)}, rebuilt"
    else:
        state = "rebuilt" if path.exists() else "missing: rebuilt"
    specs = pipeline_specs(settings)
    indexes = {spec.name: _check_index(settings, spec, args.rebuild_index) for spec in specs}
    defs = build_definitions(settings)
    log_level = "INFO" if args.verbose else "CRITICAL"
    summary: dict[str, Any] = {"state_database": state, "indexes": indexes, "pipelines": {}}
    failed = False
    with DagsterInstance.get() as instance:
        for spec in specs:
            days = sorted(days_to_ingest(settings, spec))
            runs = run_days(defs.resolve_job_def(f"ingest_{spec.name}"), instance, days, log_level)
            failed = failed or bool(runs.failed_days)
            summary["pipelines"][spec.name] = {
                **runs.totals,
                "partitions": days,
                "failed_partitions": runs.failed_days,
                "failures": runs.failures,
                "run_ids": runs.run_ids,
            }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"State database: {state}.")
        for spec in specs:
            done = summary["pipelines"][spec.name]
            print(
                f"{spec.name}: index {indexes[spec.name]}; {len(done['partitions'])} day(s) run again: "
                f"{done['documents']} documents, {done['rejected']} quarantined, {done['embedded']} chunks "
                f"embedded, {done['reused']} reused."
            )
            for line in done["failures"]:
                print(f"  {line}", file=sys.stderr)
    return 1 if failed else 0
