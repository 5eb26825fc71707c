"""Reading the backend API as a change feed: every change stays pending in the cursor until the
index manifest shows it done. An in-memory feed with a controllable clock, a real SQLite manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hyperion_pipelines.automation import change_feed
from hyperion_pipelines.automation.change_feed import ChangeFeed, scan_feed
from hyperion_pipelines.ids import document_id
from hyperion_pipelines.sources.base import DeletedRef, DocumentRef
from hyperion_pipelines.state.database import open_engine
from hyperion_pipelines.state.manifest import DocumentManifest, ManifestRecord

START = datetime(2026, 3, 1, tzinfo=UTC)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@dataclass
class Feed:
    """Uploads and deletions, each visible only from its commit time on ``clock``."""

    clock: datetime = T0
    uploads: list[tuple[DocumentRef, datetime]] = field(default_factory=list)
    deletions: list[tuple[DeletedRef, datetime]] = field(default_factory=list)
    name: str = "backend"

    def upload(self, key: str, at: datetime, committed: datetime | None = None, size: int = 10) -> None:
        ref = DocumentRef(key, f"{key}.txt", f"http://api/{key}", f"{key}.txt", size, at)
        self.uploads.append((ref, committed or at))

    def delete(self, key: str, at: datetime) -> None:
        """Like the API: a deleted document leaves the upload listing and enters the deletions."""
        self.uploads = [(r, c) for r, c in self.uploads if r.key != key]
        self.deletions.append((DeletedRef(key, at), at))

    def _page(self, items: list, when, start, end, token):  # noqa: ANN001
        visible = sorted(
            (i for i, c in items if c <= self.clock and start <= when(i) < end), key=lambda i: (when(i), i.key)
        )
        offset = int(token or 0)
        more = offset + 2 < len(visible)
        return visible[offset : offset + 2], str(offset + 2) if more else None

    def list_page(self, start, end, page_token=None):  # noqa: ANN001
        return self._page(self.uploads, lambda r: r.uploaded_at, start, end, page_token)

    def deleted_page(self, start, end, page_token=None):  # noqa: ANN001
        return self._page(self.deletions, lambda d: d.deleted_at, start, end, page_token)


@pytest.fixture
def manifest(tmp_path: Path) -> DocumentManifest:
    return DocumentManifest(open_engine(f"sqlite:///{tmp_path / 'state.db'}"), "documents")


def tick(feed: Feed, manifest: DocumentManifest, cursor: dict, pages: int = 50) -> tuple[dict[str, str], dict]:
    scan = scan_feed(feed, manifest, cursor, start=START, now=feed.clock, max_pages=pages)
    state = json.loads(json.dumps(scan.cursor))  # as stored by Dagster
    return {day: f"{c.added}/{c.edited}/{c.deleted}" for day, c in scan.pending.items()}, state


def run_day(feed: Feed, manifest: DocumentManifest, day: str) -> None:
    """What a successful run of ``day`` records: the documents the feed lists for it now."""
    lo = datetime.fromisoformat(day).replace(tzinfo=UTC)
    refs = [r for r, c in feed.uploads if c <= feed.clock and lo <= r.uploaded_at < lo + timedelta(1)]
    records = [ManifestRecord(document_id("backend", r.key), r.key, r.version, "indexed") for r in refs]
    manifest.record_partition(day, records)


def test_the_api_is_a_change_feed() -> None:
    assert isinstance(Feed(), ChangeFeed)


def test_a_change_stays_pending_under_one_run_key_until_its_run_succeeds(manifest: DocumentManifest) -> None:
    feed = Feed()
    feed.upload("a", T0 - timedelta(hours=1))
    pending, cursor = tick(feed, manifest, {})
    assert pending == {"2026-03-02": "1/0/0"}
    first = scan_feed(feed, manifest, cursor, start=START, now=feed.clock, max_pages=50).pending["2026-03-02"]
    # Its run failed (the manifest is unchanged): the next ticks still see it, under the same key.
    feed.clock += timedelta(minutes=5)
    again = scan_feed(feed, manifest, cursor, start=START, now=feed.clock, max_pages=50).pending["2026-03-02"]
    assert again.run_key == first.run_key
    run_day(feed, manifest, "2026-03-02")
    assert tick(feed, manifest, cursor)[0] == {}


def test_a_record_committed_after_its_window_was_read_is_still_seen(manifest: DocumentManifest) -> None:
    feed = Feed()
    _, cursor = tick(feed, manifest, {})
    # Stamped a second before the last read, committed a second after it.
    feed.upload("late", T0 - timedelta(seconds=1), committed=T0 + timedelta(seconds=1))
    feed.clock += timedelta(seconds=15)
    assert tick(feed, manifest, cursor)[0] == {"2026-03-02": "1/0/0"}


def test_a_deletion_read_before_its_document_is_indexed_waits_for_it(manifest: DocumentManifest) -> None:
    feed = Feed()
    feed.upload("x", T0 - timedelta(hours=2))
    version = feed.uploads[0][0].version
    _, cursor = tick(feed, manifest, {})
    # The run of x's day has listed x, then x is deleted and the sensor reads the deletion before
    # the run writes the manifest.
    feed.clock += timedelta(minutes=1)
    feed.delete("x", feed.clock - timedelta(seconds=5))
    pending, cursor = tick(feed, manifest, cursor)
    manifest.record_partition("2026-03-02", [ManifestRecord(document_id("backend", "x"), "x", version, "indexed")])
    feed.clock += timedelta(minutes=1)
    pending, cursor = tick(feed, manifest, cursor)
    assert pending == {"2026-03-02": "0/0/1"}  # now known: its day runs again
    run_day(feed, manifest, "2026-03-02")
    assert tick(feed, manifest, cursor)[0] == {}


def test_a_deletion_of_a_document_never_indexed_is_forgotten_after_a_while(manifest: DocumentManifest) -> None:
    feed = Feed()
    feed.delete("ghost", T0 - timedelta(minutes=1))
    pending, cursor = tick(feed, manifest, {})
    assert pending == {} and list(cursor["pending"]) == [document_id("backend", "ghost")]
    feed.clock += change_feed.UNKNOWN_DELETION_TTL
    assert tick(feed, manifest, cursor)[1]["pending"] == {}


def test_without_a_cursor_the_feed_is_read_from_the_start_deletions_included(manifest: DocumentManifest) -> None:
    feed = Feed()
    feed.upload("a", T0 - timedelta(days=1))
    feed.upload("b", T0 - timedelta(days=1, hours=1))
    run_day(feed, manifest, "2026-03-01")
    feed.delete("a", T0 - timedelta(minutes=30))  # while the sensor had no cursor
    assert tick(feed, manifest, {})[0] == {"2026-03-01": "0/0/1"}


def test_a_backlog_is_read_no_further_than_the_pending_limit(
    manifest: DocumentManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(change_feed, "MAX_PENDING", 3)
    feed = Feed()
    for n in range(8):
        feed.upload(f"d{n}", T0 - timedelta(hours=5, minutes=-n))  # all on one day
    scan = scan_feed(feed, manifest, {}, start=START, now=feed.clock, max_pages=50)
    assert len(scan.cursor["pending"]) == 4 and scan.cursor["uploads"]["token"] is not None
    # Paused on the limit, the day is not held back: its run lists the whole day.
    assert scan.open_days == frozenset()
    run_day(feed, manifest, "2026-03-02")
    scan = scan_feed(feed, manifest, scan.cursor, start=START, now=feed.clock, max_pages=50)
    assert scan.pending == {} and scan.cursor["pending"] == {}
