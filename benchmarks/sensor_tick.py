"""How long one upload-sensor tick takes over a large uploads folder.

    .venv/bin/python benchmarks/sensor_tick.py [--files 100000] [--days 100] [--json out.json]

Builds a folder of small files spread over upload days, then times real sensor evaluations
(``build_sensor_context`` against the project's definitions, SQLite state database):
everything pending, everything indexed (the manifest filled as runs would fill it), and 1% of
the files edited. Dagster's default sensor timeout is 60 s; a tick should stay well under it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path


def build_folder(root: Path, files: int, days: int) -> None:
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    for n in range(files):
        folder = root / f"batch-{n // 1000:04d}"
        if n % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"note-{n:06d}.txt"
        path.write_text(f"Note {n}.\n")
        stamp = (start + timedelta(days=n % days, seconds=n)).timestamp()
        os.utime(path, (stamp, stamp))


def timed_tick(defs, instance, cursor):  # noqa: ANN001 - Dagster objects
    from dagster import build_sensor_context

    sensor = defs.resolve_sensor_def("documents_uploads")
    started = time.perf_counter()
    with build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources) as ctx:
        data = sensor.evaluate_tick(ctx)
    return time.perf_counter() - started, data


def fill_manifest(settings, root: Path) -> None:  # noqa: ANN001
    """What the runs of every day would record: each file's current version."""
    from hyperion_pipelines.ids import document_id
    from hyperion_pipelines.sources.uploads_folder import UploadsFolder
    from hyperion_pipelines.state.database import open_engine
    from hyperion_pipelines.state.manifest import DocumentManifest, ManifestRecord
    from hyperion_pipelines.upload_day import upload_day

    folder = UploadsFolder(root)
    by_day = defaultdict(list)
    for ref in folder.list_documents(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)):
        by_day[upload_day(ref.uploaded_at)].append(
            ManifestRecord(document_id(folder.name, ref.key), ref.key, ref.version, "indexed")
        )
    manifest = DocumentManifest(open_engine(settings.state_db_url), "documents")
    for day, records in by_day.items():
        manifest.record_partition(day, records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ.update({"HYPERION_HOME": str(home), "HYPERION_UPLOADS_DIR": str(home / "uploads")})
        from dagster import DagsterInstance

        from hyperion_pipelines.definitions import build_definitions
        from hyperion_pipelines.settings import Settings

        settings = Settings.from_env()
        started = time.perf_counter()
        build_folder(settings.uploads_dir, args.files, args.days)
        print(f"built {args.files} files over {args.days} days in {time.perf_counter() - started:.1f} s")
        defs = build_definitions(settings)
        rows = []
        with DagsterInstance.ephemeral() as instance:
            seconds, data = timed_tick(defs, instance, None)
            rows.append(("all pending", seconds, len(data.run_requests or [])))
            fill_manifest(settings, settings.uploads_dir)
            seconds, data = timed_tick(defs, instance, data.cursor)
            rows.append(("all indexed", seconds, len(data.run_requests or [])))
            for n in range(0, args.files, 100):  # 1%: append a line, which changes size and mtime
                path = settings.uploads_dir / f"batch-{n // 1000:04d}" / f"note-{n:06d}.txt"
                with path.open("a") as handle:
                    handle.write("edited\n")
            seconds, data = timed_tick(defs, instance, data.cursor)
            rows.append(("1% edited", seconds, len(data.run_requests or [])))
    print(f"\n{'scenario':<14}{'tick s':>9}{'runs requested':>16}")
    for name, seconds, runs in rows:
        print(f"{name:<14}{seconds:>9.2f}{runs:>16}")
    if args.json:
        results = [{"scenario": n, "tick_seconds": round(s, 3), "runs_requested": r} for n, s, r in rows]
        args.json.write_text(json.dumps({"files": args.files, "days": args.days, "results": results}, indent=2))


if __name__ == "__main__":
    main()
