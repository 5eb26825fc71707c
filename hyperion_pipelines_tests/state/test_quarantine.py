"""The quarantine: real malformed files get their reason, the rest of the partition is indexed,
limits hold in the sandboxed parser, and a fixed document is re-driven with its history kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance

from hyperion_pipelines.parsing.document import REASONS, ParseError
from hyperion_pipelines.parsing.sandbox import ParserPool, ParserSandbox
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.sources import media_type as mt
from hyperion_pipelines.spec import SUPPORTED_MEDIA_TYPES, ParsingLimits
from hyperion_pipelines.state.database import open_engine
from hyperion_pipelines.state.quarantine_ledger import QuarantineLedger, Rejection

from ..conftest import REPO, UPLOAD_DAY
from ..fixtures.malformed import ENCODED_TEXTS, docx_with_body, encrypted_pdf, malformed_uploads, slow_markdown
from ..support.commands import quarantine_cli
from ..support.pipeline_runs import index_entries, run_partition
from ..support.uploads import upload

GOOD = "Honeybees form a winter cluster and shiver their flight muscles to keep the queen warm."


@pytest.fixture
def instance(hyperion_env: Settings):
    with DagsterInstance.ephemeral() as instance:
        yield instance


def test_each_malformed_file_is_quarantined_with_its_reason_and_the_rest_is_indexed(
    hyperion_env: Settings, sample_uploads: Path, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPERION_MAX_DOCUMENT_BYTES", str(2 * 1024 * 1024))
    monkeypatch.setenv("HYPERION_PARSE_TIMEOUT_S", "2")
    bad = malformed_uploads()
    bad["bad/huge.txt"] = (((GOOD + "\n") * 40_000).encode(), "too_large")  # ~3.5 MB, over the 2 MB limit
    for relative, (content, _) in bad.items():
        upload(sample_uploads, relative, content)
    for relative, (encoding, text) in ENCODED_TEXTS.items():
        upload(sample_uploads, relative, text.encode(encoding))

    metadata = run_partition(Settings.from_env(), instance)

    expected = {relative: reason for relative, (_, reason) in bad.items()}
    assert metadata["parsed_documents"]["rejected"] == len(expected)
    assert metadata["quarantined_documents"]["quarantined"] == len(expected)
    listed = quarantine_cli("--date", UPLOAD_DAY)
    assert {row["source"]: row["reason"] for row in listed} == expected
    for row in listed:
        assert set(row) == {"source", "reason", "message", "partition", "quarantined_at"}
        assert row["partition"] == UPLOAD_DAY and row["message"] and row["reason"] in REASONS
        assert datetime.fromisoformat(row["quarantined_at"]).tzinfo is not None

    # Everything good in the same partition was indexed, legacy encodings decoded exactly.
    entries = index_entries(hyperion_env)
    indexed = {source for source, _ in entries.values()}
    assert not indexed & set(expected)
    assert set(ENCODED_TEXTS) <= indexed and len(indexed) == 8 + len(ENCODED_TEXTS)
    for relative, (_, text) in ENCODED_TEXTS.items():
        document_text = " ".join(t for source, t in entries.values() if source == relative)
        assert text.split(". ")[0].strip() in document_text, relative
    assert metadata["vector_index"]["documents"] == len(indexed)


def test_a_fixed_document_is_redriven_and_the_history_is_kept(
    hyperion_env: Settings, sample_uploads: Path, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(sample_uploads, "reports/winter.pdf", encrypted_pdf())
    upload(sample_uploads, "notes/big.txt", ((GOOD + "\n") * 2000).encode())  # ~180 KB
    monkeypatch.setenv("HYPERION_MAX_DOCUMENT_BYTES", "100000")  # above every sample document
    run_partition(Settings.from_env(), instance)
    first = {row["source"]: row for row in quarantine_cli()}
    assert {s: r["reason"] for s, r in first.items()} == {
        "reports/winter.pdf": "encrypted",
        "notes/big.txt": "too_large",
    }

    # A re-run with nothing fixed keeps the same entries and their first quarantine time.
    run_partition(Settings.from_env(), instance)
    assert {row["source"]: row for row in quarantine_cli()} == first

    # The owner uploads a readable version (same day) and the limit is raised: both are re-driven.
    readable = (sample_uploads / "reports" / "honeybee-winter-survival.pdf").read_bytes()
    upload(sample_uploads, "reports/winter.pdf", readable)
    monkeypatch.setenv("HYPERION_MAX_DOCUMENT_BYTES", str(1024 * 1024))
    metadata = run_partition(Settings.from_env(), instance)
    assert metadata["quarantined_documents"]["quarantined"] == 0
    assert metadata["quarantined_documents"]["released"] == 2
    assert quarantine_cli() == []
    indexed = {source for source, _ in index_entries(hyperion_env).values()}
    assert {"reports/winter.pdf", "notes/big.txt"} <= indexed

    text = subprocess.run(
        [sys.executable, "-m", "hyperion_pipelines.cli", "quarantine", "--history"],
        capture_output=True, text=True, cwd=REPO, check=True,
    ).stdout  # fmt: skip
    assert "encrypted" in text and "reports/winter.pdf" in text and "-> parsed" in text and "2 released" in text
    history = {row["source"]: row for row in quarantine_cli("--history")}
    assert history.keys() == first.keys()
    for source, row in history.items():
        assert row["reason"] == first[source]["reason"] and row["quarantined_at"] == first[source]["quarantined_at"]
        assert row["resolution"] == "parsed" and row["released_at"] >= row["quarantined_at"]


def test_a_document_fixed_by_a_later_upload_is_released_from_its_old_day(tmp_path: Path) -> None:
    ledger = QuarantineLedger(open_engine(f"sqlite:///{tmp_path / 'q.db'}"), "documents")
    bad = Rejection(
        document_id="d" * 32, source="a.pdf", sha256="1" * 64, reason="encrypted", message="needs a password"
    )
    monday, tuesday = datetime(2026, 1, 12, tzinfo=UTC), datetime(2026, 1, 13, tzinfo=UTC)
    assert ledger.record_partition("2026-01-12", [bad], [], now=monday).new == 1
    # Another reason for the same document opens a new entry and supersedes the old one.
    worse = Rejection(document_id=bad.document_id, source="a.pdf", sha256="2" * 64, reason="corrupt", message="x")
    update = ledger.record_partition("2026-01-12", [worse], [], now=monday)
    assert (update.new, update.released) == (1, 1)
    # Re-uploaded on Tuesday and parsed there: Monday's entry is released as parsed.
    update = ledger.record_partition("2026-01-13", [], [bad.document_id], now=tuesday)
    assert update.released == 1 and ledger.entries() == []
    history = ledger.entries(history=True)
    assert [(e.reason, e.resolution) for e in history] == [("encrypted", "superseded"), ("corrupt", "parsed")]
    # Still encrypted after a re-upload on Wednesday: one open entry, on Wednesday, quarantined since Monday.
    wednesday = datetime(2026, 1, 14, tzinfo=UTC)
    ledger.record_partition("2026-01-12", [bad], [], now=monday)
    moved = ledger.record_partition("2026-01-14", [bad], [], now=wednesday)
    assert (moved.new, moved.released) == (1, 1)
    [current] = ledger.entries()
    assert (current.partition, current.quarantined_at) == ("2026-01-14", monday)
    ledger.record_partition("2026-01-14", [], [bad.document_id], now=wednesday)
    # A document that disappears from its day is released as removed, and other pipelines are untouched.
    other = QuarantineLedger(ledger.engine, "legal")
    other.record_partition("2026-01-12", [bad], [], now=monday)
    assert other.record_partition("2026-01-12", [], [], now=tuesday).released == 1
    assert other.entries(history=True)[0].resolution == "removed"
    assert len(ledger.entries(history=True)) == 4


def test_the_sandbox_survives_a_timeout_and_a_memory_bomb_and_keeps_parsing() -> None:
    good = GOOD.encode()
    bomb = docx_with_body(250)  # 250 MiB of text in a 300 KB file, under raised archive limits
    with ParserSandbox(
        ParsingLimits(
            timeout_s=2.0, memory_bytes=256 * 1024 * 1024, max_expanded_bytes=1 << 40, max_compression_ratio=1e9
        )
    ) as sandbox:
        with pytest.raises(ParseError) as timeout:
            sandbox.parse(slow_markdown(), mt.MARKDOWN, SUPPORTED_MEDIA_TYPES, "slow.md")
        assert timeout.value.reason == "parse_timeout"
        assert sandbox.parse(good, mt.PLAIN, SUPPORTED_MEDIA_TYPES, "ok.txt").text == GOOD
        with pytest.raises(ParseError) as memory:
            sandbox.parse(bomb, mt.DOCX, SUPPORTED_MEDIA_TYPES, "bomb.docx")
        assert memory.value.reason == "parse_memory"
        assert sandbox.parse(good, mt.PLAIN, SUPPORTED_MEDIA_TYPES, "ok.txt").text == GOOD
        # A document that cannot even be received under the limit is refused the same way.
        with pytest.raises(ParseError) as too_big:
            sandbox.parse(b"word " * (40 * 1024 * 1024), mt.PLAIN, SUPPORTED_MEDIA_TYPES, "big.txt")
        assert too_big.value.reason == "parse_memory"
        assert sandbox.parse(good, mt.PLAIN, SUPPORTED_MEDIA_TYPES, "ok.txt").text == GOOD
    # The same document under the default archive limits never reaches the parser.
    with ParserSandbox(ParsingLimits()) as sandbox, pytest.raises(ParseError) as refused:
        sandbox.parse(bomb, mt.DOCX, SUPPORTED_MEDIA_TYPES, "bomb.docx")
    assert refused.value.reason == "archive_too_large"


def test_a_pool_parses_side_by_side_in_order_and_a_slow_document_holds_up_only_its_parser() -> None:
    # Far slower than its limit, so that the other parser's start-up fits in it on a loaded machine.
    documents = [("slow.md", slow_markdown() * 8, mt.MARKDOWN)] + [
        (f"ok-{i}.txt", f"{GOOD} number {i}".encode(), mt.PLAIN) for i in range(6)
    ]
    finished: dict[str, tuple[float, int]] = {}

    def parse(sandbox: ParserSandbox, document: tuple[str, bytes, str]) -> str:
        name, content, media_type = document
        try:
            text = sandbox.parse(content, media_type, SUPPORTED_MEDIA_TYPES, name).text
        except ParseError as exc:
            text = exc.reason
        finished[name] = (time.monotonic(), sandbox._process.pid if sandbox._process else 0)
        return text

    with ParserPool(ParsingLimits(timeout_s=6.0), workers=2) as pool:
        results = list(pool.map(parse, documents))
    assert results == ["parse_timeout", *(f"{GOOD} number {i}" for i in range(6))]  # in the order given
    # The good documents were parsed by the other process while the slow one ran out its time.
    assert max(finished[f"ok-{i}.txt"][0] for i in range(6)) < finished["slow.md"][0]
    assert len({pid for _, pid in finished.values()} - {0}) == 1 and finished["slow.md"][1] == 0  # killed


def test_a_crashing_parser_is_reported_and_replaced() -> None:
    with ParserSandbox(ParsingLimits(timeout_s=60)) as sandbox:
        assert sandbox.parse(GOOD.encode(), mt.PLAIN, SUPPORTED_MEDIA_TYPES, "ok.txt").text == GOOD
        pid = sandbox._process.pid
        # The child dies of a segmentation fault half-way through a slow document.
        threading.Timer(1.0, os.kill, (pid, signal.SIGSEGV)).start()
        with pytest.raises(ParseError) as crashed:
            sandbox.parse(slow_markdown(), mt.MARKDOWN, SUPPORTED_MEDIA_TYPES, "slow.md")
        assert crashed.value.reason == "parser_crashed" and "SIGSEGV" in crashed.value.message
        assert sandbox.parse(GOOD.encode(), mt.PLAIN, SUPPORTED_MEDIA_TYPES, "ok.txt").text == GOOD
        assert sandbox._process.pid != pid
