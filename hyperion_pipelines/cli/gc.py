"""``hyperion gc``: remove blobs and cache entries no recorded document needs, and old Dagster step outputs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack

from hyperion_pipelines.cli.common import ensure_dagster_home
from hyperion_pipelines.settings import Settings


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def cmd_gc(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    ensure_dagster_home(settings)
    from dagster import DagsterInstance
    from sqlalchemy.exc import DatabaseError

    from hyperion_pipelines.definitions import pipeline_specs
    from hyperion_pipelines.faults import explain
    from hyperion_pipelines.orchestration.housekeeping import reclaim
    from hyperion_pipelines.orchestration.resources import shared_resources

    shared = shared_resources(settings)
    retention = settings.step_output_retention_days if args.retention_days is None else args.retention_days
    state_url = os.environ.get("HYPERION_STATE_DB_URL") or settings.state_db_url
    with ExitStack() as stack:
        try:
            instance = stack.enter_context(DagsterInstance.get())
        except (OSError, DatabaseError) as exc:
            # Its SQLite storage writes when it opens; on a full disk the raw zone is swept without it.
            if explain(str(exc), settings) is None:
                raise
            instance = None
        report = reclaim(
            instance,
            shared["blob_store"],
            state_url,
            pipeline_specs(settings),
            retention_days=retention,
            dry_run=args.dry_run,
        )
    if args.json:
        print(json.dumps(report.as_json()))
        return 0
    mib = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
    places = ", ".join(
        f"{s.place} {mib(s.removed_bytes)} of {mib(s.removed_bytes + s.kept_bytes)}" for s in report.sweeps
    )
    print(
        f"Storage GC {'would free' if args.dry_run else 'freed'} {_mib(report.freed_bytes)} in "
        f"{report.removed_files} files ({places})."
    )
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
