"""The quarantine ledger: every rejected document, why, when, and when it was released.

A partition's ``quarantined_documents`` asset is its *current* dead letters; the ledger keeps the
*history* across runs, so a user can see that a document was quarantined on Monday as encrypted
and indexed on Tuesday after a fixed version was uploaded. SQLite in the embedded setup,
PostgreSQL (or any SQLAlchemy database) in production.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    select,
    update,
)

from hyperion_pipelines.state.database import IN_BATCH as _IN_BATCH
from hyperion_pipelines.state.database import metadata

events = Table(
    "hyperion_quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(64), nullable=False),
    Column("partition", String(16), nullable=False),
    Column("document_id", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("sha256", String(64)),
    Column("reason", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("quarantined_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("released_at", DateTime(timezone=True)),
    # parsed: indexed after a fix; removed: no longer at the source for that day;
    # superseded: quarantined again for another reason or another version.
    Column("resolution", String(16)),
    Column("run_id", String(64)),
    Index("ix_hyperion_quarantine_open", "pipeline", "partition", "released_at"),
    Index("ix_hyperion_quarantine_document", "pipeline", "document_id"),
)
# At most one open entry per document and day, even if two runs of a day race.
Index(
    "ux_hyperion_quarantine_open_document",
    events.c.pipeline,
    events.c.partition,
    events.c.document_id,
    unique=True,
    sqlite_where=events.c.released_at.is_(None),
    postgresql_where=events.c.released_at.is_(None),
)


@dataclass(frozen=True)
class Rejection:
    document_id: str
    source: str
    sha256: str | None
    reason: str
    message: str


@dataclass(frozen=True)
class QuarantineEntry:
    pipeline: str
    partition: str
    document_id: str
    source: str
    reason: str
    message: str
    quarantined_at: datetime
    released_at: datetime | None
    resolution: str | None

    def as_json(self, history: bool = False) -> dict[str, str | None]:
        row = {
            "source": self.source,
            "reason": self.reason,
            "message": self.message,
            "partition": self.partition,
            "quarantined_at": self.quarantined_at.isoformat(),
        }
        if history:
            row |= {
                "document_id": self.document_id,
                "released_at": self.released_at.isoformat() if self.released_at else None,
                "resolution": self.resolution,
            }
        return row


@dataclass(frozen=True)
class LedgerUpdate:
    quarantined: int  # open entries for the partition after the update
    new: int  # of which were added by this update
    released: int  # entries closed because their document is now parsed or gone


def _utc(moment: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were written as UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class QuarantineLedger:
    def __init__(self, engine: Engine, pipeline: str):
        self.engine = engine
        self.pipeline = pipeline

    def record_partition(
        self,
        partition: str,
        rejections: Sequence[Rejection],
        parsed_document_ids: Iterable[str],
        *,
        run_id: str | None = None,
        now: datetime | None = None,
        kept_document_ids: Iterable[str] = (),
    ) -> LedgerUpdate:
        """Bring the partition's open entries in line with its latest parse.

        A rejection already open for the same version and reason keeps its entry and its first
        ``quarantined_at``; anything else opens a new entry and supersedes the document's other
        open entries (on this day or another: a document re-uploaded on a later day moves there),
        carrying the first ``quarantined_at`` over when version and reason are unchanged. Open
        entries whose document parsed this time, in this partition or any other (a fixed version
        uploaded on a later day), are released as ``parsed``; open entries of documents no longer
        in the partition as ``removed``, except ``kept_document_ids`` (documents held as they were:
        their sub-folder could not be listed).
        """
        now = now or datetime.now(UTC)
        parsed = set(parsed_document_ids)
        rejected = {r.document_id: r for r in rejections}
        new = released = 0
        with self.engine.begin() as conn:
            open_here = {
                row.document_id: row
                for row in conn.execute(select(events).where(self._open(), events.c.partition == partition)).fetchall()
            }
            unchanged = {
                doc for doc, r in rejected.items()
                if doc in open_here and (open_here[doc].sha256, open_here[doc].reason) == (r.sha256, r.reason)
            }  # fmt: skip
            for doc in unchanged:
                r = rejected[doc]
                conn.execute(
                    update(events)
                    .where(events.c.id == open_here.pop(doc).id)
                    .values(last_seen_at=now, message=r.message, source=r.source)
                )
            changed = [r for doc, r in rejected.items() if doc not in unchanged]
            earlier = self._open_entries_of(conn, [r.document_id for r in changed])
            for rejection in changed:
                previous = earlier.get(rejection.document_id, [])
                same = [
                    e.quarantined_at for e in previous if (e.sha256, e.reason) == (rejection.sha256, rejection.reason)
                ]
                released += self._release(conn, [e.id for e in previous], now, "superseded")
                open_here.pop(rejection.document_id, None)
                conn.execute(
                    events.insert().values(
                        pipeline=self.pipeline,
                        partition=partition,
                        document_id=rejection.document_id,
                        source=rejection.source,
                        sha256=rejection.sha256,
                        reason=rejection.reason,
                        message=rejection.message,
                        quarantined_at=min(same, default=now),
                        last_seen_at=now,
                        run_id=run_id,
                    )  # fmt: skip
                )
                new += 1
            kept = set(kept_document_ids)
            gone = [row.id for doc, row in open_here.items() if doc not in parsed and doc not in kept]
            released += self._release(conn, gone, now, "removed")
            fixed = [e.id for entries in self._open_entries_of(conn, sorted(parsed)).values() for e in entries]
            released += self._release(conn, fixed, now, "parsed")
        return LedgerUpdate(quarantined=len(rejected), new=new, released=released)

    def _open_entries_of(self, conn: Connection, document_ids: Sequence[str]) -> dict[str, list[Any]]:
        """Open entries of these documents, on any day."""
        found: dict[str, list[Any]] = {}
        for lo in range(0, len(document_ids), _IN_BATCH):
            batch = list(document_ids[lo : lo + _IN_BATCH])
            for row in conn.execute(select(events).where(self._open(), events.c.document_id.in_(batch))):
                found.setdefault(row.document_id, []).append(row)
        return found

    def entries(self, *, partition: str | None = None, history: bool = False) -> list[QuarantineEntry]:
        """Open entries (or, with ``history``, every entry), oldest first."""
        query = select(events).where(events.c.pipeline == self.pipeline)
        if not history:
            query = query.where(events.c.released_at.is_(None))
        if partition is not None:
            query = query.where(events.c.partition == partition)
        query = query.order_by(events.c.quarantined_at, events.c.id)
        with self.engine.connect() as conn:
            return [
                QuarantineEntry(
                    pipeline=row.pipeline,
                    partition=row.partition,
                    document_id=row.document_id,
                    source=row.source,
                    reason=row.reason,
                    message=row.message,
                    quarantined_at=_utc(row.quarantined_at),
                    released_at=_utc(row.released_at) if row.released_at else None,
                    resolution=row.resolution,
                )  # fmt: skip
                for row in conn.execute(query)
            ]

    def _open(self) -> ColumnElement[bool]:
        return and_(events.c.pipeline == self.pipeline, events.c.released_at.is_(None))

    @staticmethod
    def _release(conn: Connection, ids: list[int], now: datetime, resolution: str) -> int:
        if not ids:
            return 0
        conn.execute(update(events).where(events.c.id.in_(ids)).values(released_at=now, resolution=resolution))
        return len(ids)


def rejections_in(parsed: pd.DataFrame) -> list[Rejection]:
    """The rejected rows of a ``parsed_documents`` frame."""
    rejected = parsed[parsed["status"] == "rejected"]
    return [
        Rejection(
            document_id=row.document_id,
            source=row.source,
            sha256=row.sha256 if isinstance(row.sha256, str) else None,
            reason=row.reason,
            message=row.message or "",
        )
        for row in rejected.itertuples(index=False)
    ]


QUARANTINE_COLUMNS = [
    "document_id", "source", "partition", "reason", "message", "media_type", "size_bytes", "uploaded_at",
    "quarantined_at",
]  # fmt: skip


def quarantine_frame(raw: pd.DataFrame, partition: str, entries: Sequence[QuarantineEntry]) -> pd.DataFrame:
    """The partition's open entries, with what landing knew about each document."""
    frame = pd.DataFrame(
        [
            {
                "document_id": e.document_id,
                "source": e.source,
                "partition": e.partition,
                "reason": e.reason,
                "message": e.message,
                "quarantined_at": e.quarantined_at,
            }  # fmt: skip
            for e in entries
            if e.partition == partition
        ],
        columns=["document_id", "source", "partition", "reason", "message", "quarantined_at"],
    )
    details = raw[["document_id", "media_type", "size_bytes", "uploaded_at"]]
    frame = frame.merge(details, on="document_id", how="left")
    frame["quarantined_at"] = pd.to_datetime(frame["quarantined_at"], utc=True)
    frame["size_bytes"] = frame["size_bytes"].astype("Int64")
    return frame[QUARANTINE_COLUMNS].sort_values("source", kind="stable").reset_index(drop=True)
