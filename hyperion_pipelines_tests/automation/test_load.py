"""A burst of small uploads under the real daemon: the upload sensor batches them into one run per
upload day, every document is indexed exactly once and nothing is dropped.

``HYPERION_TEST_BURST`` sets the number of uploads (default 10,000); the test prints how long the
burst took to be indexed and how many runs it needed. Those figures are reported, never asserted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from hyperion_pipelines.settings import DEFAULT_PART_DOCUMENTS, Settings

from ..conftest import UPLOAD_TIME, finished, set_upload_time
from ..support.exact_index import assert_index_matches_uploads, generated_text, indexed_documents

UPLOADS = int(os.environ.get("HYPERION_TEST_BURST", "10000"))
DAYS = 5


def test_a_burst_of_small_uploads_is_batched_by_day_and_each_is_indexed_exactly_once(
    hyperion_env: Settings, start_daemon: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = hyperion_env.uploads_dir
    # 2,000 documents a day: parts of the default size, not the tests' small ones (4 documents).
    monkeypatch.setenv("HYPERION_PART_DOCUMENTS", str(DEFAULT_PART_DOCUMENTS))
    start_daemon()
    time.sleep(5)  # the daemon is up and its sensor ticking on an empty folder
    started = time.monotonic()
    for i in range(UPLOADS):
        day = i % DAYS
        path = uploads / f"burst/day-{day}/upload-{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Upload {i}. {generated_text(i, 2)}\n", encoding="utf-8")
        set_upload_time(path, UPLOAD_TIME - timedelta(days=day))
    landed = time.monotonic() - started

    deadline = time.monotonic() + 1800
    indexed, runs = 0, []
    while time.monotonic() < deadline:
        indexed = len(indexed_documents(hyperion_env))
        with DagsterInstance.get() as instance:
            runs = instance.get_runs(ascending=True)
        if indexed == UPLOADS and all(finished(r) for r in runs):
            break
        time.sleep(5)
    seconds = time.monotonic() - started
    print(
        f"\n{UPLOADS} uploads written in {landed:.1f} s, all indexed {seconds:.1f} s after the first, "
        f"in {len(runs)} runs: {[r.tags.get('hyperion/changes') for r in runs]}"
    )
    assert indexed == UPLOADS, f"{indexed} of {UPLOADS} indexed after {seconds:.0f} s"
    assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] * len(runs)
    # Batched: one run per upload day, plus one more for a day whose listing a run took part-way
    # through the burst; never a run per upload.
    assert DAYS <= len(runs) <= 3 * DAYS, len(runs)
    assert {r.tags["dagster/partition"] for r in runs} == {
        (UPLOAD_TIME - timedelta(days=d)).date().isoformat() for d in range(DAYS)
    }
    assert assert_index_matches_uploads(hyperion_env) == UPLOADS  # one chunk each, each stored once
