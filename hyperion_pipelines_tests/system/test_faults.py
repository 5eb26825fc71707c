"""Faults injected for real, each test ending with the index checked against the source documents
exactly: a Milvus server process killed in the middle of a run or never there, and a run worker
killed with SIGKILL under the daemon. (The backend API's 5xx, timeouts, truncated bodies and bad
JSON are in test_backend_api.py; PostgreSQL restarted under the daemon in test_postgres.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, materialize

from hyperion_pipelines.cli import EMBEDDED_INSTANCE_YAML
from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.ids import document_id
from hyperion_pipelines.instance.run_launcher import PID_TAG
from hyperion_pipelines.orchestration.pipeline import build_pipeline
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import BackendApiSource, PipelineSpec

from ..conftest import UPLOAD_DAY, UPLOAD_TIME, run_ingest, wait_for_runs
from ..support.backend_server import TOKEN, BackendServer, FakeBackend, Fault, StoredDocument
from ..support.exact_index import (
    assert_index_matches_uploads,
    expected_chunk_ids,
    generated_text,
    indexed_documents,
    stored_ids,
    write_generated_uploads,
)
from ..support.milvus_lite_server import MilvusLiteServer
from ..support.sample_pipeline import default_spec

MILVUS_TIMEOUT_S = 5  # per Milvus call: a dead server fails an attempt in seconds, not minutes
RETRIES = 3  # REMOTE_RETRY's max_retries


@pytest.fixture
def milvus_server(
    hyperion_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MilvusLiteServer]:
    server = MilvusLiteServer(tmp_path / "milvus", tmp_path / "milvus.log")
    monkeypatch.setenv("HYPERION_MILVUS_URI", server.uri)
    monkeypatch.setenv("HYPERION_MILVUS_TIMEOUT_S", str(MILVUS_TIMEOUT_S))
    yield server
    server.kill()


def when_step_starts(instance: DagsterInstance, step: str, action: Callable[[], None]) -> threading.Thread:
    """Calls ``action`` from a thread as soon as the run in ``instance`` starts ``step``. The
    instance must keep its storage in files: an in-memory one locks its tables against the run's
    writes while this thread reads."""

    def watch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                for run in instance.get_runs():
                    starts = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
                    if any(event.step_key == step for event in starts):
                        action()
                        return
            except sa.exc.OperationalError:  # the run is writing: read again
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def step_events(result, event_type: str) -> dict[str, list]:
    """The run's events of one type, by step."""
    found: dict[str, list] = {}
    for event in result.all_events:
        if event.event_type_value == event_type:
            found.setdefault(event.step_key, []).append(event)
    return found


def forty_uploads_and_milvus(hyperion_env: Settings, milvus_server: MilvusLiteServer) -> Settings:
    write_generated_uploads(hyperion_env.uploads_dir, 40)
    milvus_server.start()
    return Settings.from_env()


def ingest_with_fault(settings: Settings, step: str, fault: Callable[[], None]) -> tuple[Any, float]:
    """One ingest run in this process, ``fault`` injected as the run starts ``step``; the run's
    result and its duration."""
    with TemporaryDirectory(prefix="hyperion-instance-") as folder, DagsterInstance.local_temp(folder) as instance:
        watcher = when_step_starts(instance, step, fault)
        started = time.monotonic()
        result = run_ingest(build_definitions(settings), instance)
        seconds = time.monotonic() - started
        watcher.join(timeout=60)
    return result, seconds


def test_milvus_killed_mid_run_fails_the_step_after_retries_and_a_rerun_is_exact(
    milvus_server: MilvusLiteServer, hyperion_env: Settings
) -> None:
    settings = forty_uploads_and_milvus(hyperion_env, milvus_server)
    result, seconds = ingest_with_fault(settings, "chunk_embeddings", milvus_server.kill)

    # The first Milvus call after the kill fails its attempt within the call's time limit; the
    # step is retried with backoff, then the run fails, naming the unreachable server.
    assert not result.success
    failed = step_events(result, "STEP_FAILURE")
    assert set(failed) <= {"chunk_embeddings", "vector_index"} and len(failed) == 1, sorted(failed)
    step = next(iter(failed))
    waits = [e.event_specific_data.seconds_to_wait for e in step_events(result, "STEP_UP_FOR_RETRY")[step]]
    assert len(waits) == RETRIES and all(w > 0 for w in waits), waits
    assert waits[-1] > waits[0]  # exponential backoff (2, 4, 8 s, with jitter)
    error = failed[step][0].event_specific_data.error
    assert f"127.0.0.1:{milvus_server.port}" in str(error.to_string()) or "unavailable" in error.to_string().lower()
    assert set(step_events(result, "STEP_SUCCESS")) >= {"raw_documents", "parsed_documents", "document_chunks"}
    assert seconds < 4 * (MILVUS_TIMEOUT_S + 15) + 60  # a hang guard: pymilvus alone retries for minutes
    # Nothing is recorded as indexed: the sensor still sees every document as pending.
    assert indexed_documents(settings) == {}

    milvus_server.start()  # the same data folder and port
    with DagsterInstance.ephemeral() as instance:
        again = run_ingest(build_definitions(settings), instance)
    assert again.success
    assert assert_index_matches_uploads(settings) > 100
    assert len(indexed_documents(settings)) == 40


def test_milvus_back_within_the_retry_window_lets_the_same_run_finish_exactly(
    milvus_server: MilvusLiteServer, hyperion_env: Settings
) -> None:
    settings = forty_uploads_and_milvus(hyperion_env, milvus_server)

    def outage() -> None:
        milvus_server.kill()
        time.sleep(MILVUS_TIMEOUT_S + 2)  # long enough for an attempt to fail
        milvus_server.start()

    result, _ = ingest_with_fault(settings, "chunk_embeddings", outage)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert sum(len(v) for v in step_events(result, "STEP_RESTARTED").values()) >= 1
    assert assert_index_matches_uploads(settings) > 100
    assert len(indexed_documents(settings)) == 40


def test_milvus_unreachable_when_the_run_starts_is_retried_inside_the_step(
    milvus_server: MilvusLiteServer, hyperion_env: Settings
) -> None:
    """Nothing listens on the configured port: the resource connects inside the step, so the
    step's retry policy applies, and the steps before it are done and kept."""
    write_generated_uploads(hyperion_env.uploads_dir, 3, sentences=10)
    settings = Settings.from_env()
    with DagsterInstance.ephemeral() as instance:
        result = run_ingest(build_definitions(settings), instance)
    assert not result.success
    assert set(step_events(result, "STEP_FAILURE")) == {"chunk_embeddings"}
    assert len(step_events(result, "STEP_RESTARTED")["chunk_embeddings"]) == RETRIES
    assert set(step_events(result, "STEP_SUCCESS")) >= {"raw_documents", "parsed_documents", "document_chunks"}


def daemon_run_embedding(settings: Settings, start_daemon: Callable[[], None], uploads: int = 60) -> DagsterRun:
    """The upload sensor's run, launched by the daemon under fast run monitoring, once its
    worker has started ``chunk_embeddings``."""
    config = yaml.safe_load(EMBEDDED_INSTANCE_YAML)
    config["run_monitoring"].update(poll_interval_seconds=2, free_slots_after_run_end_seconds=1)
    (settings.dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    write_generated_uploads(settings.uploads_dir, uploads)
    start_daemon()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        with DagsterInstance.get() as instance:
            for run in instance.get_runs():
                starts = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
                if any(event.step_key == "chunk_embeddings" for event in starts):
                    return run
        time.sleep(0.2)
    raise AssertionError("the sensor's run never reached chunk_embeddings")


def test_a_run_worker_killed_with_sigkill_is_marked_failed_and_re_executed_from_failure(
    hyperion_env: Settings, start_daemon: Callable[[], None]
) -> None:
    """The daemon launches the upload sensor's run; the run worker is killed in the middle of
    embedding. Run monitoring marks the run failed, run retries re-execute it from the failed
    step, and the index ends exactly right."""
    run = daemon_run_embedding(hyperion_env, start_daemon)
    os.kill(int(run.tags[PID_TAG]), signal.SIGKILL)
    killed = {"run_id": run.run_id, "pid": run.tags[PID_TAG]}

    runs = wait_for_runs(2, timeout_s=300)
    first, retry = runs
    assert first.run_id == killed["run_id"]
    assert [first.status, retry.status] == [DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS]
    with DagsterInstance.get() as instance:
        failure = instance.all_logs(first.run_id, of_type=DagsterEventType.RUN_FAILURE)
        retried_steps = {
            e.step_key for e in instance.all_logs(retry.run_id, of_type=DagsterEventType.STEP_START) if e.step_key
        }
        killed_steps = {
            e.step_key for e in instance.all_logs(first.run_id, of_type=DagsterEventType.STEP_SUCCESS) if e.step_key
        }
    assert f"run worker process {killed['pid']}" in failure[0].message
    assert retry.tags["dagster/parent_run_id"] == first.run_id
    # From failure: the steps the killed run finished are not run again.
    assert {"raw_documents", "parsed_documents", "document_chunks"} <= killed_steps
    assert not killed_steps & retried_steps and {"chunk_embeddings", "vector_index"} <= retried_steps
    assert assert_index_matches_uploads(hyperion_env) > 150
    assert len(indexed_documents(hyperion_env)) == 60


def test_a_terminated_run_stops_its_worker_and_an_ingest_beside_the_daemon_is_not_taken_for_dead(
    hyperion_env: Settings, start_daemon: Callable[[], None]
) -> None:
    """Terminate (the UI's button calls the run launcher) stops the run's worker in the middle of
    embedding: the run is canceled, not retried, and nothing is counted indexed. `hyperion
    ingest` then runs the day in its own process while the daemon's run monitoring polls every
    2 s; the command's run records the command's own process as its worker, which monitoring
    finds alive throughout (never failed as a dead one), and the index ends exact."""
    run = daemon_run_embedding(hyperion_env, start_daemon)
    with DagsterInstance.get() as instance:
        assert instance.run_launcher.terminate(run.run_id)
    (canceled,) = wait_for_runs(1, timeout_s=120)
    assert canceled.run_id == run.run_id and canceled.status == DagsterRunStatus.CANCELED
    with DagsterInstance.get() as instance:
        assert not instance.run_launcher.terminate(run.run_id)  # finished: nothing to stop
    assert indexed_documents(hyperion_env) == {}

    ingest = subprocess.run(
        [sys.executable, "-m", "hyperion_pipelines.cli", "ingest", "--date", UPLOAD_DAY, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    runs = wait_for_runs(2, timeout_s=60)
    assert [r.status for r in runs] == [DagsterRunStatus.CANCELED, DagsterRunStatus.SUCCESS]
    assert runs[1].tags[PID_TAG] != canceled.tags[PID_TAG]  # in-process: the command was its worker
    assert assert_index_matches_uploads(hyperion_env) > 150
    assert len(indexed_documents(hyperion_env)) == 60


# -- the backend document API ------------------------------------------------------------------


def backend_with(count: int) -> FakeBackend:
    backend = FakeBackend(token=TOKEN)
    for i in range(count):
        content = f"Document {i}\n\n{generated_text(1000 + i, 30)}\n".encode()
        backend.add(StoredDocument(f"doc-{i}", f"doc-{i}.txt", content, UPLOAD_TIME, path=f"docs/doc-{i}.txt"))
    return backend


def backend_documents(backend: FakeBackend) -> dict[str, tuple[str, str, bytes]]:
    return {document_id("backend", d.id): (d.path, d.name, d.content) for d in backend.documents.values()}


def assert_index_matches_backend(settings: Settings, spec: PipelineSpec, backend: FakeBackend) -> None:
    ids = stored_ids(settings)
    assert len(ids) == len(set(ids)), "an id is stored twice"
    assert set(ids) == expected_chunk_ids(spec, backend_documents(backend))


def ingest_backend(settings: Settings, spec: PipelineSpec):
    with DagsterInstance.ephemeral() as instance:
        return materialize(
            build_pipeline(spec).assets,
            partition_key=UPLOAD_DAY,
            resources=build_definitions(settings, [spec]).resources,
            instance=instance,
            raise_on_error=False,
        )


Configure = Callable[[str], tuple[Settings, PipelineSpec]]


@pytest.fixture
def backend_spec(hyperion_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Configure:
    def configure(url: str) -> tuple[Settings, PipelineSpec]:
        monkeypatch.setenv("HYPERION_BACKEND_URL", url)
        monkeypatch.setenv("HYPERION_BACKEND_TOKEN", TOKEN)
        monkeypatch.setenv("HYPERION_BACKEND_TIMEOUT_S", "1")
        monkeypatch.setenv("HYPERION_BACKEND_MAX_RETRIES", "2")
        settings = Settings.from_env()
        return settings, default_spec(settings).model_copy(update={"source": BackendApiSource(kind="backend_api")})

    return configure


def test_backend_errors_timeouts_truncation_and_bad_json_are_retried_to_an_exact_index(
    backend_spec: Configure,
) -> None:
    backend = backend_with(6)
    backend.inject("/documents", Fault(500), Fault(200, body=b'{"documents": [', content_type="application/json"))
    backend.inject("/documents/doc-1/content", Fault(200, delay_s=2.5, body=b"too late"), Fault(502))
    truncated = backend.documents["doc-2"].content
    backend.inject("/documents/doc-2/content", Fault(200, body=truncated[:20], content_length=len(truncated)))
    backend.inject("/documents/doc-3/content", Fault(200, body=truncated))  # another document's bytes
    with BackendServer(backend) as url:
        settings, spec = backend_spec(url)
        result = ingest_backend(settings, spec)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert not any(backend.faults.values())  # every fault was served, and survived
    assert result.output_for_node("quarantined_documents").empty
    assert_index_matches_backend(settings, spec, backend)


def test_a_backend_that_keeps_failing_fails_the_run_clearly_and_nothing_is_counted_done(
    backend_spec: Configure,
) -> None:
    backend = backend_with(4)
    with BackendServer(backend) as url:
        settings, spec = backend_spec(url)
        assert ingest_backend(settings, spec).success
        before_manifest, before_ids = indexed_documents(settings, spec.name), sorted(stored_ids(settings))

        # An edit and a new document; the new one's content answers 500 for longer than all retries.
        edited = backend.documents["doc-0"]
        changed = edited.content + b"\nAn added line.\n"
        backend.add(StoredDocument(edited.id, edited.name, changed, UPLOAD_TIME, path=edited.path))
        backend.add(StoredDocument("doc-9", "doc-9.txt", b"Document nine. " * 40, UPLOAD_TIME, path="docs/doc-9.txt"))
        backend.inject("/documents/doc-9/content", *[Fault(500)] * 100)
        failed = ingest_backend(settings, spec)
        assert not failed.success
        failures = step_events(failed, "STEP_FAILURE")
        assert set(failures) == {"raw_documents"}
        message = failures["raw_documents"][0].event_specific_data.error.to_string()
        assert "HTTP 500" in message and "doc-9" in message, message
        assert len(step_events(failed, "STEP_RESTARTED")["raw_documents"]) == RETRIES
        # Nothing half-done is recorded: the manifest and the index are as the last good run left them.
        assert indexed_documents(settings, spec.name) == before_manifest
        assert sorted(stored_ids(settings)) == before_ids

        backend.faults.clear()
        assert ingest_backend(settings, spec).success
    assert_index_matches_backend(settings, spec, backend)
    assert set(indexed_documents(settings, spec.name)) == set(backend_documents(backend))
