"""The real Dagster daemon runs the upload sensor: an upload becomes searchable and a deletion
leaves the index, with no one launching anything, and each change runs exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus

from hyperion_pipelines.settings import Settings

from ..conftest import wait_for_runs


def search(query: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "hyperion_pipelines.cli", "search", query, "-k", "3", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [hit["source"] for hit in json.loads(result.stdout)]


def test_the_daemon_indexes_an_upload_and_removes_a_deletion(
    hyperion_env: Settings, start_daemon: Callable[[], None]
) -> None:
    uploads: Path = hyperion_env.uploads_dir
    (uploads / "bees.txt").write_text("Honeybees cluster in winter and shiver to keep the queen warm in the hive.")
    (uploads / "tides.txt").write_text("Tides rise and fall twice a day as the moon's gravity pulls on the oceans.")
    start_daemon()  # after both uploads, so one tick sees the pair

    first = wait_for_runs(1)
    assert [r.status for r in first] == [DagsterRunStatus.SUCCESS]
    assert first[0].tags["hyperion/changes"] == "2 added, 0 edited, 0 deleted"
    assert search("how do bees survive winter")[0] == "bees.txt"

    (uploads / "bees.txt").unlink()
    runs = wait_for_runs(2)
    assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] * 2
    assert runs[1].tags["hyperion/changes"] == "0 added, 0 edited, 1 deleted"
    assert search("how do bees survive winter") == ["tides.txt"]
    time.sleep(20)  # more sensor ticks: nothing changed, so no further run
    with DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == 2
