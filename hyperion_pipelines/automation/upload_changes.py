"""What changed at a document source since the index last caught up, grouped by upload day.

Pure logic plus two scanners, no Dagster: the upload sensor (``defs/sensors.py``) turns the result
into run requests. A change is judged against the index manifest (what the index reflects), not
against the sensor's own memory, so a sensor restarted without its cursor asks for nothing twice,
and a document whose run failed stays visible as pending.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol, runtime_checkable

from hyperion_pipelines.defs.partitions import partition_key_for
from hyperion_pipelines.ids import document_id
from hyperion_pipelines.sources.base import DeletedRef, DocumentRef, DocumentSource
from hyperion_pipelines.state.manifest import DocumentManifest, IndexedDocument


@dataclass(frozen=True)
class Seen:
    """A document as the source lists it now."""

    document_id: str
    day: str
    version: str


@dataclass
class DayChanges:
    """The changes waiting on one upload day; ``digest`` names exactly this set of changes."""

    day: str
    added: int = 0
    edited: int = 0
    deleted: int = 0
    items: list[str] = field(default_factory=list, repr=False)

    def note(self, kind: str, item: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.items.append(f"{kind}:{item}")

    @property
    def total(self) -> int:
        return self.added + self.edited + self.deleted

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(sorted(self.items)).encode()).hexdigest()[:16]

    @property
    def run_key(self) -> str:
        # The day alone would be de-duplicated by Dagster when the day needs a second run; the
        # digest makes a new set of changes a new run, and the same set never a second one.
        return f"{self.day}:{self.digest}"


def seen(source: DocumentSource | ChangeFeed, ref: DocumentRef) -> Seen:
    return Seen(document_id(source.name, ref.key), partition_key_for(ref.uploaded_at), ref.version)


def pending_changes(
    listed: Iterable[Seen],
    indexed: Mapping[str, IndexedDocument],
    *,
    complete: bool,
    deleted_ids: Iterable[str] = (),
) -> dict[str, DayChanges]:
    """Days whose documents differ from what the index reflects.

    ``complete``: ``listed`` is everything at the source, so a recorded document missing from it
    was deleted. Otherwise deletions come from ``deleted_ids`` (a source's deletion feed).
    """
    days: dict[str, DayChanges] = {}

    def on(day: str) -> DayChanges:
        return days.setdefault(day, DayChanges(day))

    listed_ids: set[str] = set()
    for doc in listed:
        listed_ids.add(doc.document_id)
        known = indexed.get(doc.document_id)
        if known is None:
            on(doc.day).note("added", f"{doc.document_id}@{doc.version}")
        elif known.version != doc.version or known.partition != doc.day:
            on(doc.day).note("edited", f"{doc.document_id}@{doc.version}")
    gone = (set(indexed) - listed_ids) if complete else {d for d in deleted_ids if d not in listed_ids}
    for doc_id in sorted(gone):
        known = indexed.get(doc_id)
        if known is not None:
            on(known.partition).note("deleted", f"{doc_id}@{known.version}")
    return days


@dataclass(frozen=True)
class RunPlan:
    requested: list[DayChanges]
    waiting: list[DayChanges]  # a run of the day is queued or in progress: ask again once it ends
    deferred: list[DayChanges]  # beyond this tick's run limit
    out_of_range: list[DayChanges]  # not a partition (before the start date, or in the future)


def plan_runs(
    pending: Mapping[str, DayChanges],
    *,
    active_days: set[str],
    is_partition: Callable[[str], bool],
    max_runs: int,
    held_days: frozenset[str] = frozenset(),
) -> RunPlan:
    """One run per day, newest day first (fresh uploads before an old backlog), at most ``max_runs``.

    A day with a run in flight waits: that run may have listed the day before these changes
    arrived, so the day gets one more run once it ends, instead of one per tick meanwhile.
    ``held_days`` are deferred (a listing still part-way through them).
    """
    requested, waiting, deferred, out_of_range = [], [], [], []
    for day in sorted(pending, reverse=True):
        changes = pending[day]
        if not is_partition(day):
            out_of_range.append(changes)
        elif day in active_days:
            waiting.append(changes)
        elif day not in held_days and len(requested) < max_runs:
            requested.append(changes)
        else:
            deferred.append(changes)
    return RunPlan(requested, waiting, deferred, out_of_range)


# -- scanners ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scan:
    pending: dict[str, DayChanges]
    documents_seen: int
    cursor: dict  # where a feed scan resumes; {} for a full listing
    # Days the listing has not finished with (a backlog read page by page): their run waits until
    # the rest of the day is read, so a day is not run once per page.
    open_days: frozenset[str] = frozenset()


def scan_listing(source: DocumentSource, manifest: DocumentManifest, start: datetime, end: datetime) -> Scan:
    """A source cheap to list in full (the uploads folder: one directory walk): compare all of it
    with the manifest, which also reveals deletions."""
    listed = [seen(source, ref) for ref in source.list_documents(start, end)]
    return Scan(pending_changes(listed, manifest.indexed(), complete=True), len(listed), {})


@runtime_checkable
class ChangeFeed(Protocol):
    """A source whose uploads and deletions are listed by time window, page by page (the backend API)."""

    name: str

    def list_page(
        self, start: datetime, end: datetime, page_token: str | None = None
    ) -> tuple[list[DocumentRef], str | None]: ...

    def deleted_page(
        self, start: datetime, end: datetime, page_token: str | None = None
    ) -> tuple[list[DeletedRef], str | None]: ...


@dataclass
class _Window:
    """A time window being paged through: ``[after, before)`` from page ``token``."""

    after: str
    before: str | None = None
    token: str | None = None


PageFetch = Callable[[datetime, datetime, str | None], tuple[list, str | None]]


def _page_through(window: _Window, now: datetime, pages: int, fetch: PageFetch) -> tuple[list, int]:
    """Up to ``pages`` pages of the window; the window moves on once it is read to the end."""
    items: list = []
    used = 0
    window.before = window.before or now.isoformat()
    while used < pages:
        lo, hi = datetime.fromisoformat(window.after), datetime.fromisoformat(window.before)
        page, window.token = fetch(lo, hi, window.token)
        items.extend(page)
        used += 1
        if not window.token:
            window.after, window.before = window.before, None
            break
    return items, used


def scan_feed(
    feed: ChangeFeed,
    manifest: DocumentManifest,
    cursor: Mapping,
    *,
    start: datetime,
    now: datetime,
    max_pages: int,
) -> Scan:
    """Read the feed from where the cursor left off (at most ``max_pages`` pages per call, so a
    backlog of any size is worked through over several ticks) and compare it with the manifest.

    A page token pins its window's end, so uploads arriving meanwhile land in the next window.
    Days with changes that could not be requested yet are carried in the cursor by the caller.
    """
    uploads = _Window(**cursor.get("uploads", {"after": start.isoformat()}))
    deletions = _Window(**cursor.get("deletions", {"after": now.isoformat()}))
    refs, used = _page_through(uploads, now, max_pages, feed.list_page)
    deleted: list[DeletedRef] = []
    if used < max_pages:
        deleted, _ = _page_through(deletions, now, max_pages - used, feed.deleted_page)
    listed = [seen(feed, ref) for ref in refs]
    deleted_ids = [document_id(feed.name, d.key) for d in deleted]
    indexed = manifest.indexed([s.document_id for s in listed] + deleted_ids)
    pending = pending_changes(listed, indexed, complete=False, deleted_ids=deleted_ids)
    # The listing is ordered by upload time: only the last day read may continue on the next page.
    open_days = frozenset({listed[-1].day}) if listed and uploads.token else frozenset()
    return Scan(pending, len(listed), {"uploads": vars(uploads), "deletions": vars(deletions)}, open_days)


def carry(changes: Iterable[DayChanges]) -> dict[str, dict]:
    """Compact form of days still owed a run, for the cursor: counts and digest, not every id."""
    return {c.day: {"added": c.added, "edited": c.edited, "deleted": c.deleted, "digest": c.digest} for c in changes}


def merge_carried(pending: dict[str, DayChanges], carried: Mapping[str, Mapping]) -> dict[str, DayChanges]:
    """Add the days an earlier tick saw changes on but could not request a run for yet."""
    merged = {day: replace(changes, items=list(changes.items)) for day, changes in pending.items()}
    for day, owed in carried.items():
        changes = merged.setdefault(day, DayChanges(day))
        changes.added += owed["added"]
        changes.edited += owed["edited"]
        changes.deleted += owed["deleted"]
        changes.items.append(f"carried:{owed['digest']}")
    return merged


def dumps(cursor: Mapping) -> str:
    return json.dumps(cursor, sort_keys=True, separators=(",", ":"))
