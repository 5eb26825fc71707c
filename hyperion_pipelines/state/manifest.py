"""The index manifest: which version of each document the index reflects, and on which day.

A run writes it after the partition's index sync; the upload sensors read it to find what
changed at the source since (new or edited documents, deletions) without opening Milvus, which
milvus-lite would not allow while a run holds the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Engine, Index, String, Table, Text, delete, select

from hyperion_pipelines.state.database import IN_BATCH, metadata

documents = Table(
    "hyperion_document_manifest",
    metadata,
    Column("pipeline", String(64), primary_key=True),
    Column("document_id", String(64), primary_key=True),
    Column("source_key", Text, nullable=False),
    Column("partition", String(16), nullable=False),
    Column("version", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # indexed | quarantined
    Column("run_id", String(64)),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    # Added later (NULL in rows written before): where the document was listed (a folder, an API's
    # base URL), so a pipeline pointed elsewhere never takes the first source's documents for
    # deleted; and its content and media type, which name its blob and cache entries (storage GC).
    Column("source_identity", Text),
    Column("sha256", String(64)),
    Column("media_type", String(128)),
    Index("ix_hyperion_manifest_partition", "pipeline", "partition"),
)


@dataclass(frozen=True)
class ManifestRecord:
    document_id: str
    source_key: str
    version: str
    status: str
    sha256: str | None = None  # None: the document was not read (a listing defect, too large)
    media_type: str | None = None


@dataclass(frozen=True)
class IndexedDocument:
    partition: str
    version: str
    status: str = "indexed"
    source_key: str = ""
    source_identity: str | None = None  # None: recorded before identities were kept
    sha256: str | None = None
    media_type: str | None = None

    def listed_by(self, identity: str) -> bool:
        """Whether a source with ``identity`` is the one this document was listed from (a row
        from before identities were kept belongs to whichever source lists its day now)."""
        return self.source_identity is None or self.source_identity == identity


_COLUMNS = (
    documents.c.document_id,
    documents.c.partition,
    documents.c.version,
    documents.c.status,
    documents.c.source_key,
    documents.c.source_identity,
    documents.c.sha256,
    documents.c.media_type,
)


def _indexed(row) -> IndexedDocument:  # noqa: ANN001 - a SQLAlchemy row of _COLUMNS
    return IndexedDocument(
        row.partition, row.version, row.status, row.source_key, row.source_identity, row.sha256, row.media_type
    )


class DocumentManifest:
    def __init__(self, engine: Engine, pipeline: str):
        self.engine = engine
        self.pipeline = pipeline

    def record_partition(
        self,
        partition: str,
        records: Sequence[ManifestRecord],
        *,
        run_id: str | None = None,
        keep: Iterable[str] = (),
        source_identity: str | None = None,
    ) -> int:
        """Make ``records`` the partition's documents, leaving the rows of ``keep`` (documents held
        as indexed) as they are; returns how many rows of the day were dropped (documents no
        longer at the source on that day)."""
        now = datetime.now(UTC)
        current = {r.document_id for r in records} | set(keep)
        mine = documents.c.pipeline == self.pipeline
        with self.engine.begin() as conn:
            on_day = set(
                conn.scalars(select(documents.c.document_id).where(mine, documents.c.partition == partition)).all()
            )
            gone = sorted(on_day - current)
            for lo in range(0, len(gone), IN_BATCH):
                conn.execute(delete(documents).where(mine, documents.c.document_id.in_(gone[lo : lo + IN_BATCH])))
            ids = sorted({r.document_id for r in records})
            for lo in range(0, len(ids), IN_BATCH):
                conn.execute(delete(documents).where(mine, documents.c.document_id.in_(ids[lo : lo + IN_BATCH])))
            if records:
                conn.execute(
                    documents.insert(),
                    [
                        {
                            "pipeline": self.pipeline,
                            "document_id": r.document_id,
                            "source_key": r.source_key,
                            "partition": partition,
                            "version": r.version,
                            "status": r.status,
                            "run_id": run_id,
                            "recorded_at": now,
                            "source_identity": source_identity,
                            "sha256": r.sha256,
                            "media_type": r.media_type,
                        }
                        for r in records
                    ],
                )
        return len(gone)

    def indexed(self, document_ids: Iterable[str] | None = None) -> dict[str, IndexedDocument]:
        """Every recorded document, or only ``document_ids``."""
        query = select(*_COLUMNS).where(documents.c.pipeline == self.pipeline)
        found: dict[str, IndexedDocument] = {}
        with self.engine.connect() as conn:
            if document_ids is None:
                batches: Iterable[Sequence[str] | None] = [None]
            else:
                wanted = sorted(set(document_ids))
                batches = [wanted[lo : lo + IN_BATCH] for lo in range(0, len(wanted), IN_BATCH)]
            for batch in batches:
                q = query if batch is None else query.where(documents.c.document_id.in_(batch))
                for row in conn.execute(q):
                    found[row.document_id] = _indexed(row)
        return found

    def on_partition(self, partition: str) -> dict[str, IndexedDocument]:
        """The documents recorded on one upload day."""
        query = select(*_COLUMNS).where(documents.c.pipeline == self.pipeline, documents.c.partition == partition)
        with self.engine.connect() as conn:
            return {row.document_id: _indexed(row) for row in conn.execute(query)}

    def partitions(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(
                conn.scalars(
                    select(documents.c.partition).where(documents.c.pipeline == self.pipeline).distinct()
                ).all()
            )
