"""Write a partition's chunks to its collection and remove what is no longer current."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from hyperion_pipelines.deadline import Checkpoint, no_deadline
from hyperion_pipelines.index.id_set import IdSet, encode_ids
from hyperion_pipelines.index.milvus_index import COMPARED_FIELDS, MilvusIndex
from hyperion_pipelines.index.reconcile import rows_to_write


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
    parts: Iterable[tuple[pd.DataFrame, pd.DataFrame]],
    *,
    partition_date: str,
    document_ids: Sequence[str],
    checkpoint: Checkpoint = no_deadline,
    keep_ids: Sequence[str] = (),
) -> SyncReport:
    """Write the day part by part, ``parts`` being each part's chunks and their embeddings.

    Upsert first, delete after: a part's documents get their new entries before their old ones
    go, so a failure part-way never leaves a document without vectors, and a re-run converges
    to exactly the current chunks. Entries dated the day that no part holds (documents gone from
    the day) are deleted after the last part. ``keep_ids``: stored entries left as they are
    (documents held because the source could not list them). Memory: one part's rows, and the
    day's chunk ids as bytes (:class:`IdSet`).
    """
    keep = set(keep_ids)
    # Which of the day's documents have entries at all, asked once before anything is written,
    # while every entry is sealed and indexed. A document with none (a new upload) needs no
    # lookup of its part: its entries can only be the ones written now. Skipping those lookups
    # also spares the flush after each part, which is there for the next part's lookups: a
    # flush seals a small segment whose vector index Milvus builds, then builds again once it
    # merges the segments.
    present = index.documents_with_entries(collection, document_ids)
    # A day with no entries dated it before this run (a new upload day) can have no leftovers
    # of other documents afterwards: every entry dated it was written by the parts below, so
    # the pass that reads the day's entries back for leftovers is skipped (on a day of 100,000
    # new documents it read 2.58 million ids; the check after the sync still reads them all).
    dated_before = index.has_entries_dated(collection, partition_date)
    written = [encode_ids(keep)]  # the day's current ids, compactly (see IdSet)
    synced: set[str] = set()  # documents whose entries are known: looked up, or none before
    upserted = deleted = unchanged = 0
    unflushed = False
    for chunks, embeddings in parts:
        part_ids = chunks["chunk_id"].tolist()
        part_documents = chunks["document_id"].unique().tolist()
        looked_up = [d for d in part_documents if d in present]
        stored = index.stored_rows(collection, document_ids=looked_up) if looked_up else {}
        rows = [{**row, **index.scalar_values(row)} for row in index_rows(chunks, embeddings, partition_date)]
        changed = rows_to_write(rows, stored, COMPARED_FIELDS)
        upserted += index.upsert(collection, changed, checkpoint) if changed else 0
        unchanged += len(rows) - len(changed)
        written.append(encode_ids(part_ids))
        synced.update(part_documents)
        # Old versions of the part's documents (a chunk id names its document, so no other
        # part holds one of their chunks).
        stale = sorted(stored.keys() - set(part_ids) - keep)
        deleted += index.delete(collection, stale) if stale else 0
        unflushed = unflushed or bool(changed or stale)
        if unflushed and not present <= synced:
            index.flush(collection)  # the next parts' lookups then use the indexes
            unflushed = False
    if unflushed:
        index.flush(collection)  # the passes below, and the checks after, read sealed entries
    # Left: entries dated the day that no part holds, and entries on other days of the day's
    # documents that no part looked up (those with no chunks now: rejected, or emptied).
    current = IdSet(*written)
    unsynced = [d for d in document_ids if d not in synced and d in present]
    leftover: set[str] = set()
    dated = partition_date if dated_before else None
    for page in index.id_pages(collection, partition_date=dated, document_ids=unsynced):
        leftover.update(current.not_in(page))
    deleted += index.delete(collection, sorted(leftover)) if leftover else 0
    return SyncReport(
        collection=collection,
        upserted=upserted,
        deleted=deleted,
        unchanged=unchanged,
        total_entries=index.count(collection),
    )
