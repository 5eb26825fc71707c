"""What changed at a document source since the index last caught up, grouped by upload day.

Pure logic plus two scanners, no Dagster: the upload sensor (``orchestration/sensors.py``) turns the result
into run requests. A change is judged against the index manifest (what the index reflects), not
against the sensor's own memory, so a sensor restarted without its cursor asks for nothing twice,
and a document whose run failed stays visible as pending.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from hyperion_pipelines.ids import document_id
from hyperion_pipelines.sources.base import DocumentRef, DocumentSource
from hyperion_pipelines.state.manifest import DocumentManifest, IndexedDocument
from hyperion_pipelines.upload_day import upload_day


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


def seen(source: DocumentSource, ref: DocumentRef) -> Seen:
    return Seen(document_id(source.name, ref.key), upload_day(ref.uploaded_at), ref.version)


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
    indexed = manifest.indexed()
    unlisted = tuple(source.unlisted_prefixes)
    # Documents under a sub-folder that could not be listed, or listed from another source the
    # pipeline no longer reads, are not deletions: the run would keep them (see ``held_rows``).
    indexed = {
        doc: known
        for doc, known in indexed.items()
        if known.listed_by(source.identity) and not (unlisted and known.source_key.startswith(unlisted))
    }
    return Scan(pending_changes(listed, indexed, complete=True), len(listed), {})


def dumps(cursor: Mapping) -> str:
    return json.dumps(cursor, sort_keys=True, separators=(",", ":"))
