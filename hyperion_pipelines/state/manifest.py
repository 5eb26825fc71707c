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
    Index("ix_hyperion_manifest_partition", "pipeline", "partition"),
)


@dataclass(frozen=True)
class ManifestRecord:
    document_id: str
    source_key: str
    version: str
    status: str


@dataclass(frozen=True)
class IndexedDocument:
    partition: str
    version: str
    status: str = "indexed"
    source_key: str = ""


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
                        }
                        for r in records
                    ],
                )
        return len(gone)

    def indexed(self, document_ids: Iterable[str] | None = None) -> dict[str, IndexedDocument]:
        """Every recorded document, or only ``document_ids``."""
        query = select(
            documents.c.document_id,
            documents.c.partition,
            documents.c.version,
            documents.c.status,
            documents.c.source_key,
        ).where(documents.c.pipeline == self.pipeline)
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
                    found[row.document_id] = IndexedDocument(row.partition, row.version, row.status, row.source_key)
        return found

    def on_partition(self, partition: str) -> dict[str, IndexedDocument]:
        """The documents recorded on one upload day."""
        query = select(documents.c.document_id, documents.c.version, documents.c.status, documents.c.source_key).where(
            documents.c.pipeline == self.pipeline, documents.c.partition == partition
        )
        with self.engine.connect() as conn:
            return {
                row.document_id: IndexedDocument(partition, row.version, row.status, row.source_key)
                for row in conn.execute(query)
            }

    def partitions(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(
                conn.scalars(
                    select(documents.c.partition).where(documents.c.pipeline == self.pipeline).distinct()
                ).all()
            )
