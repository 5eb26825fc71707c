"""Storage that is reclaimed and state that is repaired: storage GC on real folders, a real small
filesystem filled up and recovered from, a damaged state database and a damaged milvus-lite index
rebuilt through the command line, a pipeline pointed at another folder, the manifest migrated."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hyperion_pipelines.chunking.cache import ChunkCache
from hyperion_pipelines.housekeeping.state_repair import set_aside, sqlite_damage, sqlite_file
from hyperion_pipelines.housekeeping.storage_gc import References, collect
from hyperion_pipelines.index.connection import release_local
from hyperion_pipelines.parsing.cache import ParseCache
from hyperion_pipelines.parsing.document import Heading, ParsedDocument
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.sources.blob_store import BlobStore
from hyperion_pipelines.spec import ParsingSpec
from hyperion_pipelines.state.database import open_engine
from hyperion_pipelines.state.manifest import DocumentManifest, documents

from ..conftest import set_upload_time
from ..support.pipeline_runs import index_entries

HYPERION = str(Path(sys.executable).parent / "hyperion")
TEXT = "Orchards are pruned in late winter, before the sap rises, to let light into the crown. "
DAY_S = 86400.0


def hyperion(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([HYPERION, *args], capture_output=True, text=True, timeout=timeout, env=env)


def summary(result: subprocess.CompletedProcess) -> dict:
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def write(folder: Path, relative: str, text: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    set_upload_time(path)
    return path


def age(path: Path, days: float) -> None:
    moment = time.time() - days * DAY_S
    os.utime(path, (moment, moment))


# -- storage GC, pure ----------------------------------------------------------------------------


def test_gc_keeps_what_recorded_versions_need_and_removes_the_rest(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    kept, dropped, fresh = blobs.put(b"kept version"), blobs.put(b"deleted document"), blobs.put(b"landing now")
    spec = ParsingSpec()
    parse_cache = ParseCache(tmp_path / "blobs" / "_parsed", spec)
    old_settings = ParseCache(tmp_path / "blobs" / "_parsed", ParsingSpec(parser_version="0"))
    text, headings = "kept version text", [Heading(1, "kept", 0)]
    parse_cache.put(kept, "text/plain", ParsedDocument(text=text, title="t", parser="text", headings=headings))
    parse_cache.put(dropped, "text/plain", ParsedDocument(text="gone", title="g", parser="text"))
    old_settings.put(kept, "text/plain", ParsedDocument(text=text, title="t", parser="text"))
    chunks = ChunkCache(tmp_path / "blobs" / "_chunks", "abc")
    chunks.put(text, headings, [])
    chunks.put("gone", [], [])
    storage = tmp_path / "storage"
    old_output, new_output = storage / "raw_documents" / "2026-01-01", storage / "raw_documents" / "2026-01-02"
    running_log = storage / "run-in-progress" / "compute_logs" / "step.err"
    for path in (old_output, new_output, running_log):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    for path in (old_output, running_log, *(tmp_path / "blobs").rglob("*.json")):
        age(path, 30)
    for sha in (kept, dropped):
        age(blobs._path(sha), 30)
    refs = References(frozenset({kept}), frozenset({(kept, "text/plain")}), 0)
    now = time.time()

    def run(dry_run: bool):
        return collect(
            blob_root=tmp_path / "blobs",
            parse_caches=[parse_cache],
            refs=refs,
            storage=storage,
            older_than=now - 7 * DAY_S,
            unfinished_runs={"run-in-progress"},
            protect_after=now - 60,
            dry_run=dry_run,
        )

    planned = run(dry_run=True)
    assert blobs._path(dropped).exists() and old_output.exists()  # a dry run only counts
    done = run(dry_run=False)
    assert planned.as_json()["places"] == done.as_json()["places"]
    places = done.as_json()["places"]
    assert places["blobs"]["removed_files"] == 1 and places["blobs"]["kept_files"] == 2
    assert not blobs._path(dropped).exists() and blobs.get(kept) and blobs.get(fresh)  # fresh: a run may need it
    assert parse_cache.get(kept, "text/plain") is not None and parse_cache.get(dropped, "text/plain") is None
    assert old_settings.get(kept, "text/plain") is None  # parsing settings no pipeline uses any more
    assert chunks.get(text, headings) == [] and chunks.get("gone", []) is None
    assert not old_output.exists() and new_output.exists() and running_log.exists()
    assert done.freed_bytes == sum(p["removed_bytes"] for p in places.values()) > 0


def test_gc_leaves_blobs_alone_while_manifest_rows_predate_content_hashes(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    sha = blobs.put(b"unknown owner")
    age(blobs._path(sha), 30)
    report = collect(
        blob_root=tmp_path / "blobs",
        parse_caches=[],
        refs=References(frozenset(), frozenset(), unknown_rows=3),
        storage=None,
        older_than=time.time(),
        unfinished_runs=set(),
        protect_after=time.time(),
        dry_run=False,
    )
    assert blobs._path(sha).exists() and report.freed_bytes == 0
    assert "3 manifest rows" in report.notes[0]


def test_a_manifest_from_before_source_identities_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:  # the table as an earlier release created it, with one row
        db.execute(
            "CREATE TABLE hyperion_document_manifest (pipeline VARCHAR(64) NOT NULL, document_id VARCHAR(64) "
            "NOT NULL, source_key TEXT NOT NULL, partition VARCHAR(16) NOT NULL, version VARCHAR(64) NOT NULL, "
            "status VARCHAR(16) NOT NULL, run_id VARCHAR(64), recorded_at DATETIME NOT NULL, "
            "PRIMARY KEY (pipeline, document_id))"
        )
        db.execute(
            "INSERT INTO hyperion_document_manifest VALUES "
            "('documents', 'd1', 'a.md', '2026-01-15', '1:1', 'indexed', 'r', '2026-01-15 12:00:00')"
        )
    engine = open_engine(f"sqlite:///{path}")
    [old] = DocumentManifest(engine, "documents").indexed().values()
    assert old.source_key == "a.md" and old.source_identity is None and old.sha256 is None
    assert old.listed_by("uploads_folder:/anywhere")  # an old row belongs to the source listing it now
    with engine.connect() as conn:
        assert conn.execute(select(documents.c.sha256)).all() == [(None,)]
    open_engine(f"sqlite:///{path}").dispose()  # a second open finds nothing to add


def test_damaged_sqlite_is_found_and_set_aside_with_its_journal(tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    sqlite3.connect(good).execute("CREATE TABLE t (x)").connection.commit()
    assert sqlite_damage(good) is None and sqlite_damage(tmp_path / "missing.db") is None
    bad = tmp_path / "state.db"
    bad.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    Path(f"{bad}-wal").write_bytes(b"journal")
    assert sqlite_damage(bad)
    moved = set_aside(bad)
    assert not bad.exists() and moved.exists() and Path(f"{moved}-wal").read_bytes() == b"journal"
    assert sqlite_file(f"sqlite:///{bad}") == bad and sqlite_file("postgresql://h/db") is None


# -- the command line against real parts ---------------------------------------------------------


@pytest.fixture
def five_documents(hyperion_env: Settings) -> list[str]:
    names = [f"notes/orchard-{n}.txt" for n in range(5)]
    for n, name in enumerate(names):
        write(hyperion_env.uploads_dir, name, f"Orchard note {n}. " + TEXT * 4)
    return names


def manifest_rows(settings: Settings) -> dict[str, tuple]:
    engine = open_engine(settings.state_db_url)
    try:
        return {
            doc: (entry.partition, entry.version, entry.status, entry.source_key)
            for doc, entry in DocumentManifest(engine, "documents").indexed().items()
        }
    finally:
        engine.dispose()


def open_entries() -> list[tuple[str, str, str, str]]:
    rows = summary(hyperion("quarantine", "--json"))
    return sorted((row["source"], row["reason"], row["message"], row["partition"]) for row in rows)


def test_a_lost_state_database_and_a_damaged_index_are_repaired(
    hyperion_env: Settings, five_documents: list[str]
) -> None:
    write(hyperion_env.uploads_dir, "broken.pdf", "%PDF-1.7 not really")
    first = summary(hyperion("ingest", "--all", "--json"))
    assert first["documents"] == 6 and first["rejected"] == 1
    before = manifest_rows(hyperion_env)
    quarantined = open_entries()

    state = hyperion_env.home / "state.db"
    state.write_bytes(b"SQLite format 3\x00" + os.urandom(16384))  # scrambled
    for suffix in ("-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    failed = hyperion("ingest", "--all")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "run 'hyperion repair'" in failed.stderr

    repaired = hyperion("repair", "--json")
    assert repaired.returncode == 0, repaired.stderr
    report = summary(repaired)
    assert report["state_database"].startswith("damaged") and report["indexes"] == {"documents": "sound"}
    assert report["pipelines"]["documents"]["embedded"] == 0  # every stored vector reused
    assert report["pipelines"]["documents"]["reused"] == first["chunks"]
    assert manifest_rows(hyperion_env) == before
    assert open_entries() == quarantined  # when each was first quarantined is the history that is lost
    assert list(hyperion_env.home.glob("state.db.damaged-*"))

    # A damaged index: named in one line; rebuilt (embedding again) only when asked.
    [data] = list(Path(hyperion_env.milvus_uri).rglob("*.parquet"))[:1]
    data.write_bytes(os.urandom(data.stat().st_size))
    search = hyperion("search", "pruning orchards")
    assert search.returncode == 1 and len(search.stderr.strip().splitlines()) == 1, search.stderr
    assert "cannot be read back" in search.stderr and "hyperion repair --rebuild-index" in search.stderr
    assert hyperion("repair").returncode == 1
    rebuilt = summary(hyperion("repair", "--rebuild-index", "--json"))
    assert rebuilt["indexes"]["documents"].startswith("damaged") and "set aside" in rebuilt["indexes"]["documents"]
    assert rebuilt["pipelines"]["documents"]["embedded"] == first["chunks"]
    hits = json.loads(hyperion("search", "pruning orchards", "--json").stdout)
    assert hits and hits[0]["source"].startswith("notes/orchard-")


def test_a_pipeline_pointed_at_another_folder_keeps_the_first_folders_documents(
    hyperion_env: Settings, five_documents: list[str], tmp_path: Path
) -> None:
    first = summary(hyperion("ingest", "--all", "--json"))
    other = tmp_path / "other-uploads"
    write(other, "notes/orchard-0.txt", "Orchard note 0, edited in the new folder. " + TEXT * 4)
    write(other, "cider.txt", "Cider is pressed from windfalls in autumn. " + TEXT * 3)
    moved = summary(hyperion("ingest", "--uploads", str(other), "--all", "--json"))
    assert not moved["failed_partitions"] and moved["documents"] == 2
    assert any("which this pipeline no longer reads; kept as indexed" in w for w in moved["warnings"])
    entries = index_entries(hyperion_env)
    release_local(hyperion_env.milvus_uri)  # the command line below opens it from another process
    sources = {source for source, _ in entries.values()}
    assert sources == {*five_documents, "cider.txt"}  # the first folder's four others are still there
    assert len(entries) >= first["chunks"]
    confirmed = summary(hyperion("ingest", "--uploads", str(other), "--all", "--allow-deletions", "--json"))
    assert not confirmed["failed_partitions"]
    assert {source for source, _ in index_entries(hyperion_env).values()} == {"notes/orchard-0.txt", "cider.txt"}
    release_local(hyperion_env.milvus_uri)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB filesystem (tmpfs), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_named_and_after_gc_a_rerun_recovers_an_exact_index(
    hyperion_env: Settings, five_documents: list[str], small_disk: Path
) -> None:
    home = small_disk / "hyperion"
    env = {
        **os.environ,
        "HYPERION_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "HYPERION_UPLOADS_DIR": str(hyperion_env.uploads_dir),
    }
    first = summary(hyperion("ingest", "--all", "--json", env=env))
    assert first["documents"] == 5 and not first["failed_partitions"]
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    big = int(free * 0.6)  # two of them cannot both be landed
    for n in range(2):
        write(hyperion_env.uploads_dir, f"archive/big-{n}.txt", ("orchard ledger line\n" * (big // 20 + 1))[:big])

    full = hyperion("ingest", "--all", env=env)
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    assert "is full or failing" in full.stderr and "'hyperion gc'" in full.stderr
    assert "landed documents (blobs)" in full.stderr  # what holds the space

    for n in range(2):
        (hyperion_env.uploads_dir / "archive" / f"big-{n}.txt").unlink()
    free_before = os.statvfs(small_disk).f_bavail
    planned = summary(hyperion("gc", "--dry-run", "--json", env=env))
    assert planned["places"]["blobs"]["removed_bytes"] >= big, planned
    assert os.statvfs(small_disk).f_bavail == free_before  # a dry run removes nothing
    done = summary(hyperion("gc", "--json", env=env))
    assert done["places"]["blobs"] == planned["places"]["blobs"]
    assert os.statvfs(small_disk).f_bavail > free_before

    again = summary(hyperion("ingest", "--all", "--json", env=env))
    assert not again["failed_partitions"] and again["documents"] == 5
    assert again["chunks"] == first["chunks"] and again["embedded"] == 0
    entries = index_entries(Settings.from_env(env))
    release_local(str(home / "milvus.db"))
    assert {source for source, _ in entries.values()} == set(five_documents) and len(entries) == first["chunks"]


def test_the_nightly_gc_job_frees_a_deleted_documents_blob_and_reports_it(
    hyperion_env: Settings, five_documents: list[str]
) -> None:
    from dagster import DagsterInstance

    from hyperion_pipelines.definitions import build_definitions

    from ..conftest import run_ingest

    defs = build_definitions(hyperion_env)
    gone = hyperion_env.uploads_dir / five_documents[0]
    size = gone.stat().st_size
    with DagsterInstance.get() as instance:
        assert run_ingest(defs, instance).success
        gone.unlink()
        assert run_ingest(defs, instance).success  # the manifest no longer names its version
        assert {s.name for s in defs.schedules} >= {"reclaim_storage_nightly"}
        result = defs.resolve_job_def("reclaim_storage").execute_in_process(instance=instance)
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {key: value.value for key, value in output.event_specific_data.metadata.items()}
    assert metadata["blobs_freed_bytes"] == size and metadata["removed_files"] >= 1
    assert metadata["freed_bytes"] >= size
    release_local(hyperion_env.milvus_uri)
