"""``hyperion quarantine``: the documents that could not be indexed, and why."""

from __future__ import annotations

import argparse
import json

from hyperion_pipelines.cli.common import declared_pipeline
from hyperion_pipelines.settings import Settings


def cmd_quarantine(args: argparse.Namespace) -> int:
    settings = Settings.from_env()

    from hyperion_pipelines.orchestration.resources import build_resources

    spec = declared_pipeline(args)
    resource = build_resources(settings, spec)[spec.resources.state]
    with resource.process_config_and_initialize_cm() as ledger_resource:
        entries = ledger_resource.ledger(spec.name).entries(partition=args.date, history=args.history)
    if args.json:
        print(json.dumps([entry.as_json(history=args.history) for entry in entries], ensure_ascii=False))
        return 0
    if not entries:
        scope = f" on {args.date}" if args.date else ""
        print(f"Nothing {'was ever' if args.history else 'is'} quarantined{scope}.")
        return 0
    for entry in entries:
        when = entry.quarantined_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        status = ""
        if entry.released_at is not None:
            status = f"  -> {entry.resolution} {entry.released_at.strftime('%Y-%m-%d %H:%M:%S UTC')}"
        print(f"{entry.partition}  {entry.reason:<17} {entry.source}\n    {when}: {entry.message}{status}")
    open_count = sum(1 for e in entries if e.released_at is None)
    print(f"{open_count} quarantined" + (f", {len(entries) - open_count} released" if args.history else "") + ".")
    return 0
