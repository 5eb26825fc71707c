"""Reading a change feed (the backend API's upload and deletion listings) for the upload sensor.

The listings are read by time window, page by page, from a cursor; every change read is kept in
the cursor as *pending* until the index manifest shows it done. That is what makes the feed as
safe as a full listing: a change whose run failed, or that arrived while its day's run was in
flight, stays pending (under the same run key, so Dagster never runs one set of changes twice),
and a deletion read before its document reached the manifest waits for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from hyperion_pipelines.automation.upload_changes import DayChanges, Scan, seen
from hyperion_pipelines.ids import document_id
from hyperion_pipelines.sources.base import DeletedRef, DocumentRef
from hyperion_pipelines.state.manifest import DocumentManifest, IndexedDocument

#: Each window starts this much before the previous one ended, so a record the source stamped
#: just before a read but committed just after it is still seen.
OVERLAP = timedelta(minutes=2)
#: Changes kept in the cursor at most; beyond it the feed is read no further until runs catch up.
MAX_PENDING = 2000
#: How long a deletion of a document the manifest does not know yet waits for it to appear.
UNKNOWN_DELETION_TTL = timedelta(hours=1)


@runtime_checkable
class ChangeFeed(Protocol):
    """A source whose uploads and deletions are listed by time window, page by page."""

    name: str

    def list_page(
        self, start: datetime, end: datetime, page_token: str | None = None
    ) -> tuple[list[DocumentRef], str | None]: ...

    def deleted_page(
        self, start: datetime, end: datetime, page_token: str | None = None
    ) -> tuple[list[DeletedRef], str | None]: ...


@dataclass
class Window:
    """A time window being paged through: ``[after, before)`` from page ``token``."""

    after: str
    before: str | None = None
    token: str | None = None

    def pages(self, now: datetime, fetch: Callable[..., tuple[list, str | None]]) -> Iterator[list]:
        """Pages of the window; once read to the end, the window moves on (with the overlap)."""
        self.before = self.before or now.isoformat()
        while True:
            page, self.token = fetch(
                datetime.fromisoformat(self.after), datetime.fromisoformat(self.before), self.token
            )
            if not self.token:
                self.after = (datetime.fromisoformat(self.before) - OVERLAP).isoformat()
                self.before = None
            yield page
            if not self.token:
                return

    @property
    def reading(self) -> bool:
        return self.token is not None


#: A pending change in the cursor: [day or None, version, kind, seen at (ISO) or None].
Pending = list


def _note_upload(pending: dict[str, Pending], doc: str, day: str, version: str, known: IndexedDocument | None) -> None:
    if known is not None and known.version == version and known.partition == day:
        pending.pop(doc, None)  # the index already reflects it
    else:
        pending[doc] = [day, version, "added" if known is None else "edited", None]


def _note_deletion(
    pending: dict[str, Pending], doc: str, deleted: DeletedRef, known: IndexedDocument | None, now: datetime
) -> None:
    if known is not None:
        pending[doc] = [known.partition, known.version, "deleted", None]
    elif now - deleted.deleted_at < UNKNOWN_DELETION_TTL:
        # Not in the manifest (yet): a run may be indexing it right now. Wait for it to appear.
        pending[doc] = [None, "", "deleted", deleted.deleted_at.isoformat()]


def _settle(pending: dict[str, Pending], indexed: Mapping[str, IndexedDocument], now: datetime) -> None:
    """Drop what the manifest shows done; give waiting deletions their day once it is known."""
    for doc, (day, version, kind, seen_at) in list(pending.items()):
        known = indexed.get(doc)
        if kind != "deleted":
            if known is not None and known.version == version and known.partition == day:
                del pending[doc]
        elif known is not None:
            pending[doc] = [known.partition, known.version, kind, None]
        elif day is not None:
            del pending[doc]  # it was indexed, and a run has removed it
        elif now - datetime.fromisoformat(seen_at) >= UNKNOWN_DELETION_TTL:
            del pending[doc]  # never indexed: nothing to remove


def scan_feed(
    feed: ChangeFeed,
    manifest: DocumentManifest,
    cursor: Mapping,
    *,
    start: datetime,
    now: datetime,
    max_pages: int,
) -> Scan:
    """Read up to ``max_pages`` pages from where the cursor left off (deletions first), stopping
    early once ``MAX_PENDING`` changes wait, and compare everything with the manifest."""
    deletions = Window(**cursor.get("deletions", {"after": start.isoformat()}))
    uploads = Window(**cursor.get("uploads", {"after": start.isoformat()}))
    pending: dict[str, Pending] = {doc: list(item) for doc, item in cursor.get("pending", {}).items()}
    pages = listed = 0
    last_day: str | None = None
    for kind, window, fetch in (("deletions", deletions, feed.deleted_page), ("uploads", uploads, feed.list_page)):
        if pages >= max_pages or len(pending) >= MAX_PENDING:
            break
        for page in window.pages(now, fetch):
            pages += 1
            if kind == "deletions":
                ids = [document_id(feed.name, d.key) for d in page]
                known = manifest.indexed(ids)
                for doc, deleted in zip(ids, page, strict=True):
                    _note_deletion(pending, doc, deleted, known.get(doc), now)
            else:
                docs = [seen(feed, ref) for ref in page]
                known = manifest.indexed([d.document_id for d in docs])
                for doc in docs:
                    _note_upload(pending, doc.document_id, doc.day, doc.version, known.get(doc.document_id))
                listed += len(docs)
                last_day = docs[-1].day if docs else last_day
            if pages >= max_pages or len(pending) >= MAX_PENDING:
                break
    _settle(pending, manifest.indexed(list(pending)), now)
    days: dict[str, DayChanges] = {}
    for doc, (day, version, kind, _) in sorted(pending.items()):
        if day is not None:
            days.setdefault(day, DayChanges(day)).note(kind, f"{doc}@{version}")
    # The listing is in time order: the last day read may go on in the next page. It waits for the
    # rest, unless the feed is paused on the pending limit (its run will list the whole day).
    open_days = frozenset({last_day}) if uploads.reading and last_day and len(pending) < MAX_PENDING else frozenset()
    state = {"deletions": vars(deletions), "uploads": vars(uploads), "pending": pending}
    return Scan(days, listed, state, open_days)
