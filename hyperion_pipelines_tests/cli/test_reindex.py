"""Blue/green re-indexing: a model change builds a new collection while searches keep using the
old one, and the alias moves only when the candidate's runs, checks and evaluation pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, ExecuteInProcessResult

from hyperion_pipelines.cli import main
from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.index.connection import connect
from hyperion_pipelines.settings import Settings

from ..support.embedding_server import EmbeddingService, serve_embeddings
from ..support.uploads import DAY1, TEXTS, upload_text


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if out else {}


def alias_target(settings: Settings) -> str:
    client = connect(settings.milvus_uri)
    try:
        return client.describe_alias("hyperion_documents")["collection_name"]
    finally:
        client.close()


def live_sources(settings: Settings) -> set[str]:
    client = connect(settings.milvus_uri)
    try:
        rows = client.query("hyperion_documents", filter='id != ""', output_fields=["source"], limit=1000)
        return {row["source"] for row in rows}
    finally:
        client.close()


def golden(tmp_path: Path, relevant: str) -> Path:
    path = tmp_path / "golden.jsonl"
    lines = [
        {"query": "how do honeybees survive the winter", "relevant": [relevant]},
        {"query": "why do tides rise and fall", "relevant": ["tides.md"]},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def remote_model(hyperion_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Switch the pipeline to another embedding model: a remote OpenAI-compatible service."""
    with serve_embeddings(EmbeddingService()) as url:

        def switch() -> None:
            monkeypatch.setenv("HYPERION_EMBEDDER", "openai")
            monkeypatch.setenv("HYPERION_OPENAI_BASE_URL", url)
            monkeypatch.setenv("HYPERION_OPENAI_MODEL", "minilm-remote")

        yield switch


def test_a_model_change_builds_a_candidate_and_moves_the_alias_only_when_it_passes(
    hyperion_env: Settings,
    remote_model,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("bees.md", "tides.md", "volcano.md"):
        upload_text(hyperion_env.uploads_dir, name, TEXTS[name], DAY1)
    monkeypatch.setenv("HYPERION_GOLDEN_QUERIES", str(golden(tmp_path, "bees.md")))
    code, summary = run_cli(capsys, "ingest", "--all")
    assert code == 0 and summary["evaluation"]["check"] == "passed"
    blue = alias_target(hyperion_env)

    remote_model()
    # A sensor or scheduled run after the change writes the candidate; searches stay on blue,
    # from which a document deleted at the source is removed all the same.
    (hyperion_env.uploads_dir / "volcano.md").unlink()
    assert main(["ingest", "--date", "2026-03-02", "--json"]) == 0 and alias_target(hyperion_env) == blue
    assert f"Searches still use {blue}" in capsys.readouterr().err
    assert live_sources(hyperion_env) == {"bees.md", "tides.md"}
    code, listing = run_cli(capsys, "collections")
    green = next(c["collection"] for c in listing["collections"] if c["current"])
    assert green != blue and {c["collection"]: c["live"] for c in listing["collections"]} == {blue: True, green: False}
    assert main(["search", "honeybees in winter", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["source"] == "bees.md"

    # The gate: an evaluation below its fail thresholds keeps the alias where it is.
    monkeypatch.setenv("HYPERION_GOLDEN_QUERIES", str(golden(tmp_path, "no-such-document.md")))
    code, summary = run_cli(capsys, "reindex")
    assert code == 1 and not summary["promoted"] and alias_target(hyperion_env) == blue
    assert summary["reasons"] == ["the retrieval evaluation on the candidate is below its fail thresholds"]

    # Passing runs, checks, coverage and evaluation: the alias moves; the old collection can go.
    monkeypatch.setenv("HYPERION_GOLDEN_QUERIES", str(golden(tmp_path, "bees.md")))
    code, summary = run_cli(capsys, "reindex")
    assert code == 0 and summary["promoted"] and summary["documents"] == 2
    assert alias_target(hyperion_env) == green and summary["old_collections"] == [blue]
    code, listing = run_cli(capsys, "collections", "--drop-old")
    assert listing["dropped"] == [blue] and [c["collection"] for c in listing["collections"]] == sorted([blue, green])
    code, listing = run_cli(capsys, "collections")
    assert [(c["collection"], c["entries"] > 0, c["live"]) for c in listing["collections"]] == [(green, True, True)]
    assert [c["kind"] for c in listing["collections"]] == ["hybrid-local"]  # auto, on milvus-lite
    code, summary = run_cli(capsys, "reindex")
    assert code == 0 and summary["already_live"]


def test_a_candidate_missing_documents_is_not_promoted(
    hyperion_env: Settings, remote_model, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    upload_text(hyperion_env.uploads_dir, "bees.md", TEXTS["bees.md"], DAY1)
    assert run_cli(capsys, "ingest", "--all")[0] == 0
    blue = alias_target(hyperion_env)
    remote_model()
    # The new model's service fails for one document on every attempt: its day's run fails.
    upload_text(hyperion_env.uploads_dir, "tides.md", TEXTS["tides.md"] + " POISON", DAY1)
    monkeypatch.setenv("HYPERION_BACKEND_MAX_RETRIES", "0")
    with serve_embeddings(EmbeddingService(nan_marker="POISON")) as url:
        monkeypatch.setenv("HYPERION_OPENAI_BASE_URL", url)
        code, summary = run_cli(capsys, "reindex")
    assert code == 1 and not summary["promoted"] and alias_target(hyperion_env) == blue
    assert summary["reasons"][0].startswith("runs failed for 1 upload day(s): 2026-03-02")


def test_reindex_with_nothing_indexed_promotes_nothing(
    hyperion_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, summary = run_cli(capsys, "reindex")
    assert code == 1 and not summary["promoted"] and summary["partitions"] == []
    assert summary["reasons"] == ["the candidate collection was never written (no upload day ran into it)"]


def test_the_promote_job_the_ui_launches_moves_the_alias_only_once_every_day_is_in_the_candidate(
    hyperion_env: Settings, remote_model, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("bees.md", "tides.md"):
        upload_text(hyperion_env.uploads_dir, name, TEXTS[name], DAY1)
    assert run_cli(capsys, "ingest", "--all")[0] == 0
    blue = alias_target(hyperion_env)
    remote_model()

    def promote() -> ExecuteInProcessResult:
        defs = build_definitions(Settings.from_env())
        with DagsterInstance.get() as instance:  # the instance the UI launches the job in
            return defs.resolve_job_def("promote_documents").execute_in_process(instance=instance, raise_on_error=False)

    refused = promote()  # no day was run into the new model's collection yet
    assert not refused.success and alias_target(hyperion_env) == blue
    [failure] = [e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"]
    why = failure.event_specific_data.user_failure_data.description
    assert "NOT promoted" in why and "the candidate collection was never written" in why
    assert f"runs failed for 1 upload day(s): {DAY1:%Y-%m-%d} (not written into" in why

    assert run_cli(capsys, "ingest", "--all")[0] == 0  # a backfill of every day, into the candidate
    promoted = promote()
    assert promoted.success
    summary = promoted.output_for_node("promote_documents_candidate")
    assert summary["promoted"] and summary["previous"] == blue and summary["documents"] == 2
    assert alias_target(hyperion_env) == summary["candidate"] != blue
