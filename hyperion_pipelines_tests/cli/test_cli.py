"""The ``hyperion`` console script, run as a user runs it: a separate process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from hyperion_pipelines.settings import Settings

from ..conftest import UPLOAD_DAY, UPLOAD_TIME, set_upload_time

HYPERION = [sys.executable, "-m", "hyperion_pipelines.cli"]


def hyperion(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*HYPERION, *args], capture_output=True, text=True, timeout=600, env=env or dict(os.environ))


def test_ingest_then_search_as_json(hyperion_env: Settings, sample_uploads: Path, tmp_path: Path) -> None:
    # A separate uploads folder given on the command line, with a nested sub-folder.
    uploads = tmp_path / "elsewhere"
    shutil.copytree(sample_uploads, uploads)
    (uploads / "guides" / "deep" / "er").mkdir(parents=True)
    shutil.move(uploads / "guides" / "bicycle-maintenance.md", uploads / "guides" / "deep" / "er" / "bike.md")

    ingest = hyperion("ingest", "--uploads", str(uploads), "--all", "--json")
    assert ingest.returncode == 0, ingest.stderr
    summary = json.loads(ingest.stdout)
    assert summary["partitions"] == [UPLOAD_DAY]
    assert summary["documents"] == 8 and summary["rejected"] == 0
    assert summary["chunks"] > 8 and summary["embedded"] == summary["chunks"] and summary["reused"] == 0
    assert summary["seconds"] > 0
    steps = summary["step_seconds"]  # where the time went, step by step
    assert set(steps) >= {"raw_documents", "parsed_documents", "document_chunks", "chunk_embeddings", "vector_index"}
    assert all(seconds > 0 for seconds in steps.values()) and sum(steps.values()) < summary["seconds"]

    with DagsterInstance.get() as instance:  # the runs are in the instance the UI reads
        run = instance.get_run_by_id(summary["run_ids"][0])
        assert run is not None and run.status == DagsterRunStatus.SUCCESS
        assert run.job_name == "ingest_documents" and run.tags["dagster/partition"] == UPLOAD_DAY

    search = hyperion("search", "which tyre pressure for a road bike", "-k", "3", "--json")
    assert search.returncode == 0, search.stderr
    hits = json.loads(search.stdout)
    assert len(hits) == 3
    assert set(hits[0]) == {"score", "document_id", "source", "heading_path", "text"}
    assert hits[0]["source"] == "guides/deep/er/bike.md"
    assert hits[0]["heading_path"] == "Bicycle Maintenance Basics > Tyre pressure"
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]

    again = json.loads(hyperion("ingest", "--uploads", str(uploads), "--date", UPLOAD_DAY, "--json").stdout)
    assert again["embedded"] == 0 and again["reused"] == summary["chunks"]

    text = hyperion("search", "lighthouse lenses")
    assert text.returncode == 0 and "notes/lighthouse-keepers.txt" in text.stdout.splitlines()[0]


def test_failed_run_gives_a_nonzero_exit(hyperion_env: Settings, sample_uploads: Path) -> None:
    env = {**os.environ, "HYPERION_CHUNK_MAX_TOKENS": "400"}  # longer than the model takes
    result = hyperion("ingest", "--date", UPLOAD_DAY, "--json", env=env)
    assert result.returncode == 1
    assert json.loads(result.stdout)["failed_partitions"] == [UPLOAD_DAY]


def test_search_before_ingest_says_what_to_do(hyperion_env: Settings) -> None:
    result = hyperion("search", "anything")
    assert result.returncode == 1 and "run 'hyperion ingest' first" in result.stderr


def test_bad_arguments_are_rejected() -> None:
    result = hyperion("ingest", "--date", "15/01/2026")
    assert result.returncode == 2 and "YYYY-MM-DD" in result.stderr


def test_all_revisits_a_day_whose_documents_were_all_deleted(hyperion_env: Settings, tmp_path: Path) -> None:
    uploads = hyperion_env.uploads_dir
    kept, gone, future = uploads / "kept.txt", uploads / "gone.txt", uploads / "future.txt"
    kept.write_text("Lighthouse keepers wound the clockwork that turned the lens every night.")
    gone.write_text("Honeybees survive the winter by forming a cluster and shivering to make heat.")
    future.write_text("A file whose clock is ahead: its day is not a partition yet.")
    set_upload_time(kept)
    set_upload_time(gone, UPLOAD_TIME - timedelta(days=3))
    set_upload_time(future, datetime.now(UTC) + timedelta(days=5))

    first = json.loads(hyperion("ingest", "--all", "--json").stdout)
    assert first["partitions"] == ["2026-01-12", UPLOAD_DAY] and len(first["skipped_partitions"]) == 1
    assert (
        json.loads(hyperion("search", "honeybee winter cluster", "-k", "1", "--json").stdout)[0]["source"] == "gone.txt"
    )

    gone.unlink()
    second = json.loads(hyperion("ingest", "--all", "--json").stdout)
    assert "2026-01-12" in second["partitions"]  # no documents left there, but entries were
    hits = json.loads(hyperion("search", "honeybee winter cluster", "-k", "5", "--json").stdout)
    assert [h["source"] for h in hits] == ["kept.txt"]

    outside = hyperion("ingest", "--date", "2019-12-31")
    assert outside.returncode == 2 and "skipped: 2019-12-31" in outside.stderr


def test_a_date_range_backfills_one_run_per_day(hyperion_env: Settings) -> None:
    uploads = hyperion_env.uploads_dir
    for offset, text in enumerate(["Tide pools hold anemones.", "Sourdough starters need feeding."]):
        path = uploads / f"note-{offset}.txt"
        path.write_text(text + " " + "More words to pass the minimum length check. " * 2)
        set_upload_time(path, UPLOAD_TIME - timedelta(days=2 * offset))
    result = hyperion("ingest", "--from", "2026-01-12", "--to", UPLOAD_DAY, "--json")
    summary = json.loads(result.stdout)
    assert result.returncode == 0 and summary["partitions"] == [f"2026-01-{d}" for d in range(12, 16)]
    assert len(summary["run_ids"]) == 4 and summary["documents"] == 2
    assert hyperion("ingest", "--from", UPLOAD_DAY, "--to", "2026-01-12").returncode == 2
    assert "--to needs --from" in hyperion("ingest", "--to", UPLOAD_DAY).stderr


def test_ingest_refuses_to_run_beside_runs_of_its_job_in_the_instance(
    hyperion_env: Settings, sample_uploads: Path
) -> None:
    # A run the daemon has under way for the same job (as the sensor or a backfill would start).
    hyperion("pipelines")  # makes DAGSTER_HOME with the repository's instance settings
    with DagsterInstance.get() as instance:
        running = DagsterRun(
            job_name="ingest_documents", run_id="a1b2c3d4-0000-4000-8000-000000000001",
            status=DagsterRunStatus.STARTED, tags={"dagster/partition": UPLOAD_DAY},
        )  # fmt: skip
        instance.add_run(running)
    refused = hyperion("ingest", "--date", UPLOAD_DAY)
    assert refused.returncode == 1
    assert "runs of ingest_documents are queued or running" in refused.stderr
    assert f"a1b2c3d4 ({UPLOAD_DAY}, started)" in refused.stderr
    with DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == 1  # nothing was run
        instance.report_run_failed(instance.get_run_by_id(running.run_id))
    done = hyperion("ingest", "--date", UPLOAD_DAY, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["documents"] == 8


def test_ingest_shows_its_progress_on_a_terminal_and_nowhere_else(hyperion_env: Settings, sample_uploads: Path) -> None:
    import pty
    import threading

    terminal, tty = pty.openpty()
    seen = bytearray()

    def read() -> None:
        while True:
            try:
                data = os.read(terminal, 4096)
            except OSError:  # the terminal's other end closed
                return
            if not data:
                return
            seen.extend(data)

    reader = threading.Thread(target=read)
    reader.start()
    done = subprocess.run([*HYPERION, "ingest", "--date", UPLOAD_DAY], stdout=subprocess.PIPE, stderr=tty, timeout=600)
    os.close(tty)
    reader.join(timeout=10)
    os.close(terminal)
    shown = seen.decode(errors="replace")
    assert done.returncode == 0, shown
    for line in (f"{UPLOAD_DAY}: landed 8/8 documents", "parsed 8/8 documents", "embedded", "written"):
        assert line in shown, shown
    # Piped, as in a script or CI log: no progress lines, only what the command has to say.
    piped = hyperion("ingest", "--date", UPLOAD_DAY)
    assert piped.returncode == 0 and "\r" not in piped.stderr and "parsed" not in piped.stderr


def test_ingest_marks_failed_a_run_whose_process_is_gone_and_goes_on(
    hyperion_env: Settings, sample_uploads: Path
) -> None:
    # An ingest killed mid-run, or one that failed on a full disk, leaves its run "started".
    from hyperion_pipelines.instance.run_launcher import worker_tags

    hyperion("pipelines")  # makes DAGSTER_HOME with the repository's instance settings
    gone = subprocess.Popen(["true"])
    gone.wait()
    with DagsterInstance.get() as instance:
        stale = DagsterRun(
            job_name="ingest_documents", run_id="a1b2c3d4-0000-4000-8000-000000000002",
            status=DagsterRunStatus.STARTED, tags={"dagster/partition": UPLOAD_DAY, **worker_tags(gone.pid)},
        )  # fmt: skip
        instance.add_run(stale)
    done = hyperion("ingest", "--date", UPLOAD_DAY, "--json")
    assert done.returncode == 0, done.stderr
    assert "run a1b2c3d4 had no process any more; marked failed" in done.stderr
    with DagsterInstance.get() as instance:
        assert instance.get_run_by_id(stale.run_id).status == DagsterRunStatus.FAILURE
