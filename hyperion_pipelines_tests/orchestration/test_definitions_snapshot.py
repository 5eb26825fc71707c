"""A snapshot of what the code location defines: assets, checks, jobs, schedules and sensors.

A change to any of them (a key, a dependency, a check, a pool, a retry policy, a schedule) shows
up as a diff of ``snapshots/definitions.json`` in review. After an intended change, write the
snapshot again with ``HYPERION_UPDATE_SNAPSHOT=1`` and commit it with the change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from dagster import Definitions

from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.settings import SAMPLE_CORPUS_DIR, Settings

SNAPSHOT = Path(__file__).parents[1] / "snapshots" / "definitions.json"
# Read at import: the hyperion_env fixture clears every HYPERION_ variable.
UPDATE = os.environ.get("HYPERION_UPDATE_SNAPSHOT") == "1"


def _retry(policy: Any) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "max_retries": policy.max_retries,
        "delay": policy.delay,
        "backoff": str(policy.backoff) if policy.backoff else None,
        "jitter": str(policy.jitter) if policy.jitter else None,
    }


def definitions_snapshot(defs: Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        definition = node.assets_def
        op = definition.node_def if definition.is_executable else None
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "description": node.description,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "tags": dict(sorted(node.tags.items())),
            "owners": list(node.owners),
            "partitions": str(node.partitions_def) if node.partitions_def else None,
            "backfill_policy": str(node.backfill_policy) if node.backfill_policy else None,
            "freshness_policy": str(node.freshness_policy) if node.freshness_policy else None,
            "required_resources": sorted(definition.required_resource_keys),
            "pool": getattr(op, "pool", None),
            "retry_policy": _retry(getattr(op, "retry_policy", None)),
            "checks": {
                spec.name: {"description": spec.description, "blocking": spec.blocking}
                for spec in sorted(definition.check_specs, key=lambda s: s.name)
                if spec.asset_key == key
            },
        }
    jobs = {}
    for job in sorted(defs.jobs or [], key=lambda j: j.name):
        resolved = defs.resolve_job_def(job.name)
        jobs[job.name] = {
            "description": resolved.description,
            "tags": dict(sorted(resolved.tags.items())),
            "assets": sorted(k.to_user_string() for k in resolved.asset_layer.executable_asset_keys),
        }
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name, "status": str(s.default_status)}
        for s in sorted(defs.schedules or [], key=lambda s: s.name)
    }
    sensors = {
        s.name: {
            "jobs": sorted(j.name for j in s.jobs) if s.has_jobs else [],
            "interval_s": s.minimum_interval_seconds,
            "status": str(s.default_status),
        }
        for s in sorted(defs.sensors or [], key=lambda s: s.name)
    }
    return {"assets": assets, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def test_the_definitions_match_their_snapshot(hyperion_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sample corpus as uploads folder: the sample pipeline then has its golden set, so the
    # evaluation asset, its check and its job are in the snapshot too.
    monkeypatch.setenv("HYPERION_UPLOADS_DIR", str(SAMPLE_CORPUS_DIR))
    found = json.loads(json.dumps(definitions_snapshot(build_definitions(Settings.from_env())), default=str))
    if UPDATE:
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert found == expected, "the definitions changed; if intended, rerun with HYPERION_UPDATE_SNAPSHOT=1"
