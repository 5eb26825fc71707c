"""Step and run time limits: a step past its limit fails cleanly, without a retry."""

from __future__ import annotations

import time

import pytest
from dagster import DagsterInstance

from hyperion_pipelines.deadline import StepTimeout, deadline, no_deadline
from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.settings import Settings

from ..conftest import run_ingest, set_upload_time
from ..fixtures.malformed import slow_markdown


def test_a_deadline_passes_until_its_time_then_names_the_step() -> None:
    check = deadline(0.05, "chunk_embeddings")
    check()
    time.sleep(0.06)
    with pytest.raises(StepTimeout, match="chunk_embeddings ran past its 0.05 s time limit"):
        check()
    no_deadline()  # no limit: never raises
    assert deadline(None, "x") is no_deadline


def test_the_ingest_job_carries_its_run_time_limit(hyperion_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERION_RUN_TIMEOUT_S", "900")
    job = build_definitions(Settings.from_env()).resolve_job_def("ingest_documents")
    assert job.tags["dagster/max_runtime"] == "900"


def test_a_step_past_its_time_limit_fails_without_a_retry(
    hyperion_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = hyperion_env.uploads_dir
    (uploads / "a-slow.md").write_bytes(slow_markdown())  # seconds of parsing
    (uploads / "b-quick.md").write_text("# Quick\n\nA short note that parses at once, but too late.")
    for path in uploads.iterdir():
        set_upload_time(path)
    monkeypatch.setenv("HYPERION_STEP_TIMEOUT_S", "1")
    defs = build_definitions(Settings.from_env())
    with DagsterInstance.ephemeral() as instance:
        result = run_ingest(defs, instance)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["parsed_documents"]
    assert "parsed_documents ran past its 1 s time limit" in failures[0].event_specific_data.error.message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
