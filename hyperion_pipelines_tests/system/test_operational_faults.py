"""Operational faults, each with real files, real processes and the real pipeline: one bad entry
costs only itself, a source that lists nothing by mistake removes nothing, a second process waits
for the embedded index or is told who holds it, damaged state is named in one line."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance

from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.ids import document_id
from hyperion_pipelines.index.connection import connect
from hyperion_pipelines.index.deletion_guard import ALLOW_DELETIONS_TAG, Removals, refusal, removals
from hyperion_pipelines.index.local_lock import IndexInUse, lock_holder, lock_is_free, wait_for_lock
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.sources.base import SourceUnavailable
from hyperion_pipelines.sources.media_type import PPTX, XLSX, sniff_media_type
from hyperion_pipelines.sources.uploads_folder import UploadsFolder
from hyperion_pipelines.spec import DeletionGuardSpec
from hyperion_pipelines.state.database import open_engine
from hyperion_pipelines.state.manifest import IndexedDocument

from ..conftest import REPO, UPLOAD_DAY, run_ingest, set_upload_time
from ..support.pipeline_runs import index_entries

DAY_START = datetime(2026, 1, 15, tzinfo=UTC)
DAY_END = datetime(2026, 1, 16, tzinfo=UTC)
NOT_UTF8 = os.fsdecode(b"river-\xff-notes.txt")  # a name whose bytes are not UTF-8
TEXT = "Rivers are restored by giving their banks room to flood in spring and to meander again. " * 3


def write(folder: Path, relative: str, text: str = TEXT) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    set_upload_time(path)
    return path


def five_documents(uploads: Path) -> list[str]:
    names = [f"notes/day-{n}.txt" for n in range(5)]
    for n, name in enumerate(names):
        write(uploads, name, f"Field note {n}: " + TEXT)
    return names


# -- the uploads folder, entry by entry -----------------------------------------------------------


def test_a_name_that_is_not_utf8_keeps_its_bytes_in_its_id_and_is_shown_escaped(tmp_path: Path) -> None:
    write(tmp_path, NOT_UTF8)
    folder = UploadsFolder(tmp_path)
    [ref] = list(folder.list_documents(DAY_START, DAY_END))
    assert ref.display_path == "river-\\xff-notes.txt" and ref.name == "river-\\xff-notes.txt"
    assert os.fsencode(ref.key) == b"river-\xff-notes.txt"  # lossless
    assert document_id("uploads", ref.key) == document_id("uploads", ref.key)  # stable, no UnicodeEncodeError
    assert document_id("uploads", ref.key) != document_id("uploads", ref.display_path)
    assert folder.read(ref) == TEXT.encode()


def test_links_and_special_files_are_skipped_with_a_line_each(tmp_path: Path) -> None:
    write(tmp_path, "kept.txt")
    (tmp_path / "outside.txt").symlink_to("/etc/hostname")
    (tmp_path / "inside.txt").symlink_to(tmp_path / "kept.txt")
    os.mkfifo(tmp_path / "pipe")
    folder = UploadsFolder(tmp_path)
    assert [ref.key for ref in folder.list_documents(DAY_START, DAY_END)] == ["kept.txt"]
    skipped = "\n".join(folder.skipped_entries)
    assert "outside.txt: symbolic link to a path outside the uploads folder" in skipped
    assert "inside.txt: symbolic link to a path inside the uploads folder" in skipped
    assert "pipe: not a regular file" in skipped


def test_a_missing_folder_is_unavailable_and_an_empty_one_is_empty(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="does not exist"):
        list(UploadsFolder(tmp_path / "not-mounted").list_documents(DAY_START, DAY_END))
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(SourceUnavailable, match="is not a folder"):
        list(UploadsFolder(tmp_path / "a-file").list_documents(DAY_START, DAY_END))
    (tmp_path / "empty").mkdir()
    empty = UploadsFolder(tmp_path / "empty")
    assert list(empty.list_documents(DAY_START, DAY_END)) == [] and empty.empty


def test_office_formats_other_than_docx_are_named_by_their_media_type() -> None:
    def archive(parts: dict[str, str]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zipped:
            for name, content in parts.items():
                zipped.writestr(name, content)
        return buffer.getvalue()

    assert sniff_media_type(archive({"[Content_Types].xml": "", "ppt/presentation.xml": ""}), "a.pptx") == PPTX
    assert sniff_media_type(archive({"[Content_Types].xml": "", "xl/workbook.xml": ""}), "a.xlsx") == XLSX
    odt = archive({"mimetype": "application/vnd.oasis.opendocument.text", "content.xml": ""})
    assert sniff_media_type(odt, "a.odt") == "application/vnd.oasis.opendocument.text"
    assert sniff_media_type(archive({"a.txt": "x"}), "a.zip") == "application/zip"


# -- the deletion guard -------------------------------------------------------------------------


def recorded(count: int) -> dict[str, IndexedDocument]:
    return {f"d{n}": IndexedDocument(UPLOAD_DAY, "1:1", source_key=f"f{n}.txt") for n in range(count)}


def test_the_guard_lets_ordinary_deletions_through_and_stops_mass_ones() -> None:
    guard = DeletionGuardSpec()
    assert refusal(removals(UPLOAD_DAY, recorded(10), {f"d{n}" for n in range(5)}), guard) is None  # half
    refused = refusal(removals(UPLOAD_DAY, recorded(10), {"d0", "d1", "d2", "d3"}), guard)
    assert refused and "remove 6 of the 10 documents" in refused and ALLOW_DELETIONS_TAG in refused
    assert "f4.txt" in refused and "and 1 more" in refused
    assert refusal(removals(UPLOAD_DAY, recorded(3), set()), guard) is None  # a small day
    assert "lists no documents" in (refusal(removals(UPLOAD_DAY, recorded(3), set()), guard, source_empty=True) or "")
    capped = DeletionGuardSpec(max_documents=2)
    assert "max_documents" in (refusal(Removals(UPLOAD_DAY, 100, ["a", "b", "c"]), capped) or "")
    assert refusal(removals(UPLOAD_DAY, recorded(10), set()), DeletionGuardSpec(enabled=False)) is None


@pytest.fixture
def instance(hyperion_env: Settings) -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        yield instance


def failure_descriptions(result) -> list[str]:
    return [
        event.event_specific_data.user_failure_data.description
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE" and event.event_specific_data.user_failure_data
    ]


def test_an_emptied_or_missing_folder_removes_nothing_until_confirmed(
    hyperion_env: Settings, instance: DagsterInstance, tmp_path: Path
) -> None:
    uploads = hyperion_env.uploads_dir
    names = five_documents(uploads)
    write(uploads, NOT_UTF8)
    defs = build_definitions(hyperion_env)
    assert run_ingest(defs, instance).success
    before = index_entries(hyperion_env)
    assert {source for source, _ in before.values()} == {*names, "river-\\xff-notes.txt"}

    moved = tmp_path / "moved-away"
    shutil.move(uploads, moved)  # the folder is not there (an unmounted share)
    missing = run_ingest(defs, instance)
    assert not missing.success
    assert any("does not exist" in d and "nothing was removed" in d for d in failure_descriptions(missing))
    assert index_entries(hyperion_env) == before

    uploads.mkdir()  # there, and empty
    emptied = run_ingest(defs, instance)
    assert not emptied.success
    [why] = failure_descriptions(emptied)
    assert why.startswith("Deletion guard: this run would remove 6 of the 6 documents") and "lists no documents" in why
    assert index_entries(hyperion_env) == before

    for name in names[:2]:  # part of the day is back: 4 of 6 would still go (67 %)
        (uploads / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(moved / name, uploads / name)
    partial = run_ingest(defs, instance)
    assert not partial.success and "67% of the day" in failure_descriptions(partial)[0]

    confirmed = run_ingest(defs, instance, tags={ALLOW_DELETIONS_TAG: "true"})
    assert confirmed.success
    assert {source for source, _ in index_entries(hyperion_env).values()} == set(names[:2])


def test_a_document_moved_to_another_day_is_not_counted_as_removed(
    hyperion_env: Settings, instance: DagsterInstance
) -> None:
    uploads = hyperion_env.uploads_dir
    names = five_documents(uploads)
    defs = build_definitions(hyperion_env)
    assert run_ingest(defs, instance).success
    later = datetime(2026, 1, 16, 9, 0, tzinfo=UTC)
    for name in names:  # every file touched: the documents move to the next day
        set_upload_time(uploads / name, later)
    assert run_ingest(defs, instance).success  # the old day first, as 'hyperion ingest --all' runs it
    assert run_ingest(defs, instance, partition_key="2026-01-16").success
    assert {source for source, _ in index_entries(hyperion_env).values()} == set(names)


# -- a sub-folder that cannot be listed, a file that cannot be read: as an unprivileged user ------

NOBODY = "nobody"


def _needs_root_and_setpriv() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("runs the pipeline as an unprivileged user: needs root and setpriv")


def _grant_traverse(path: Path) -> list[tuple[Path, int]]:
    """Let other users reach ``path`` (search permission on its ancestors); what to restore."""
    changed = []
    for folder in [*reversed(path.parents)]:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            os.chmod(folder, mode | 0o001)
            changed.append((folder, mode))
    return changed


def test_as_an_unprivileged_user_an_unreadable_file_is_quarantined_and_an_unlistable_folder_held() -> None:
    _needs_root_and_setpriv()
    import pwd

    user = pwd.getpwnam(NOBODY)
    # The interpreter, the virtual environment and this checkout (installed editable) must be
    # reachable by the unprivileged user, wherever they live.
    restore = [
        change
        for path in (Path(sys.executable).resolve(), Path(sys.executable), REPO / "hyperion_pipelines")
        for change in _grant_traverse(path)
    ]
    root = Path(tempfile.mkdtemp(prefix="hyperion-unprivileged-"))
    try:
        uploads, home = root / "uploads", root / "home"
        for name in ("open/a.txt", "open/b.txt", "locked/kept.txt"):
            write(uploads, name, f"{name}: " + TEXT)
        write(uploads, "secret.txt", "Volcano field notes: " + TEXT)
        home.mkdir()
        for path in [root, *root.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o755)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(root),
            "HYPERION_HOME": str(home),
            "HF_HUB_OFFLINE": "1",
        }
        hyperion = [str(Path(sys.executable).parent / "hyperion")]
        as_nobody = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([*as_nobody, *hyperion, *args], env=env, capture_output=True, text=True, timeout=600)

        first = run("ingest", "--uploads", str(uploads), "--date", UPLOAD_DAY, "--json")
        assert first.returncode == 0, first.stderr
        os.chmod(uploads / "locked", 0o000)
        os.chmod(uploads / "secret.txt", 0o000)
        write(uploads, "open/c.txt", "A new note about glaciers: " + TEXT)
        os.chown(uploads / "open/c.txt", user.pw_uid, user.pw_gid)
        second = run("ingest", "--uploads", str(uploads), "--date", UPLOAD_DAY, "--json")
        assert second.returncode == 0, second.stderr
        assert "Traceback" not in second.stderr
        summary = json.loads(second.stdout)
        assert any("locked/: sub-folder could not be listed (Permission denied)" in w for w in summary["warnings"])
        assert summary["documents"] == 4 and summary["rejected"] == 1 and summary["embedded"] >= 1

        quarantine = run("quarantine", "--json")
        [entry] = json.loads(quarantine.stdout)
        assert entry["source"] == "secret.txt" and entry["reason"] == "unreadable"
        assert f"uid {user.pw_uid}" in entry["message"]

        os.chmod(uploads / "locked", 0o755)
        searched = run("search", "locked/kept.txt", "-k", "10", "--json")
        sources = {hit["source"] for hit in json.loads(searched.stdout)}
        # held: still searchable; the new file indexed beside it; the unreadable one out
        assert {"locked/kept.txt", "open/a.txt", "open/b.txt", "open/c.txt"} <= sources
        assert "secret.txt" not in sources
    finally:
        for path in [root, *root.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o755)
        shutil.rmtree(root, ignore_errors=True)
        for folder, mode in restore:
            os.chmod(folder, mode)


# -- the embedded index opened by two processes ---------------------------------------------------

HOLDER = """
import sys, time
from hyperion_pipelines.index.connection import connect
client = connect(sys.argv[1])
client.list_collections()
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_index(path: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def test_a_second_process_is_told_who_holds_the_index_or_waits_for_it(tmp_path: Path) -> None:
    database = tmp_path / "milvus.db"
    holder = hold_index(database, 6)
    held_since = time.monotonic()
    try:
        assert not lock_is_free(database)
        assert f"process {holder.pid} (" in lock_holder(database)
        started = time.monotonic()
        with pytest.raises(IndexInUse, match=rf"in use by process {holder.pid} .*within 1 s"):
            connect(str(database), lock_wait_s=1)
        assert time.monotonic() - started < 10
        notices: list[str] = []
        client = connect(str(database), lock_wait_s=60, on_wait=notices.append)  # queues until it is let go
        try:
            # opened once the holder let go, at its exit (not before its 6 s were up)
            assert time.monotonic() - held_since >= 5.5 and client.list_collections() == []
            assert holder.wait(timeout=30) == 0
            assert len(notices) == 1 and "waiting up to 60 s" in notices[0]
        finally:
            client.close()
    finally:
        holder.kill()
        holder.wait()


def test_wait_for_lock_returns_at_once_on_a_folder_nobody_holds(tmp_path: Path) -> None:
    wait_for_lock(tmp_path / "never-opened.db", 0)
    assert lock_is_free(tmp_path / "never-opened.db")


# -- damaged state ---------------------------------------------------------------------------


def test_a_damaged_state_database_is_named_in_one_line_with_the_recovery(hyperion_env: Settings) -> None:
    state = hyperion_env.home / "state.db"
    open_engine(hyperion_env.state_db_url).dispose()  # every table created
    with sqlite3.connect(state) as db:
        db.execute("PRAGMA journal_mode=DELETE")
    raw = bytearray(state.read_bytes())
    raw[100:4096] = os.urandom(3996)  # the schema page scrambled
    state.write_bytes(bytes(raw))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "hyperion"), "quarantine"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "is damaged" in lines[0] and "run 'hyperion repair'" in lines[0]
