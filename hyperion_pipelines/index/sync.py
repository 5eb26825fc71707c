"""Write a partition's chunks to its collection and remove what is no longer current."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from hyperion_pipelines.deadline import Checkpoint, no_deadline
from hyperion_pipelines.index.milvus_index import COMPARED_FIELDS, MilvusIndex
from hyperion_pipelines.index.reconcile import plan_sync, rows_to_write


@dataclass(frozen=True)
class SyncReport:
    collection: str
    upserted: int
    deleted: int
    unchanged: int
    total_entries: int


def index_rows(chunks: pd.DataFrame, embeddings: pd.DataFrame, partition_date: str) -> list[dict]:
    merged = chunks.merge(embeddings[["chunk_id", "vector"]], on="chunk_id", how="left", validate="one_to_one")
    if merged["vector"].isna().any():
        raise ValueError("some chunks have no embedding; re-materialise chunk_embeddings")
    merged = merged.rename(columns={"chunk_id": "id"})
    merged["partition_date"] = partition_date
    return merged.to_dict("records")


def sync_partition(
    index: MilvusIndex,
    collection: str,
    chunks: pd.DataFrame,
    embeddings: pd.DataFrame,
    *,
    partition_date: str,
    document_ids: Sequence[str],
    checkpoint: Checkpoint = no_deadline,
    keep_ids: Sequence[str] = (),
) -> SyncReport:
    """Upsert first, delete after: a failure part-way never leaves a document without vectors,
    and a re-run converges to exactly the current chunks. ``keep_ids``: stored entries left as
    they are (documents held because the source could not list them)."""
    stored = index.stored_rows(collection, partition_date=partition_date, document_ids=document_ids)
    plan = plan_sync([*chunks["chunk_id"], *keep_ids], stored)
    rows = [{**row, **index.scalar_values(row)} for row in index_rows(chunks, embeddings, partition_date)]
    changed = rows_to_write(rows, stored, COMPARED_FIELDS)
    upserted = index.upsert(collection, changed, checkpoint) if changed else 0
    deleted = index.delete(collection, plan.delete_ids) if plan.delete_ids else 0
    return SyncReport(
        collection=collection,
        upserted=upserted,
        deleted=deleted,
        unchanged=len(rows) - len(changed),
        total_entries=index.count(collection),
    )
