"""The index sync on a real milvus-lite: exact entries part by part, lookups only where needed."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymilvus import MilvusClient

from hyperion_pipelines.index.milvus_index import MilvusIndex
from hyperion_pipelines.index.sync import sync_partition
from hyperion_pipelines.spec import IndexSpec

DIMENSION = 8


class CountingIndex(MilvusIndex):
    """A real index that counts the lookups and flushes the sync asks for."""

    def __init__(self, client: MilvusClient):
        super().__init__(client, IndexSpec(alias="docs"))
        self.looked_up: list[list[str]] = []
        self.flushes = 0
        self.dated_reads: list[str | None] = []  # the day each read-back for leftovers covered

    def stored_rows(self, collection: str, *, document_ids, partition_date=None):  # noqa: ANN001
        self.looked_up.append(sorted(document_ids))
        return super().stored_rows(collection, document_ids=document_ids, partition_date=partition_date)

    def id_pages(self, collection: str, *, partition_date, document_ids):  # noqa: ANN001
        self.dated_reads.append(partition_date)
        return super().id_pages(collection, partition_date=partition_date, document_ids=document_ids)

    def flush(self, collection: str) -> None:
        self.flushes += 1
        super().flush(collection)


def part(document: str, version: str, chunks: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One document's chunks and unit vectors; chunk ids name the document and its version."""
    ids = [f"{document}{version}{i:02d}".ljust(32, "0") for i in range(chunks)]
    frame = pd.DataFrame(
        {
            "chunk_id": ids,
            "document_id": document,
            "source": f"{document}.md",
            "title": document,
            "heading_path": "",
            "document_sha256": version * 64,
            "chunk_index": range(chunks),
            "char_start": 0,
            "char_end": 10,
            "token_count": 3,
            "text": [f"{document} {version} {i}" for i in range(chunks)],
        }
    )
    vectors = np.random.default_rng(zlib.crc32(f"{document}{version}".encode())).standard_normal((chunks, DIMENSION))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return frame, pd.DataFrame({"chunk_id": ids, "vector": list(vectors.astype(np.float32))})


def entries(index: MilvusIndex, collection: str) -> dict[str, str]:
    rows = index.client.query(collection, filter='id != ""', output_fields=["id", "partition_date"])
    return {row["id"]: row["partition_date"] for row in rows}


@pytest.fixture
def index(tmp_path: Path) -> CountingIndex:
    return CountingIndex(MilvusClient(uri=str(tmp_path / "index.db")))


def test_a_day_of_new_documents_is_written_without_lookups_and_flushed_once(index: CountingIndex) -> None:
    collection = index.ensure_collection("0123456789abcdef", DIMENSION)
    parts = [part("a", "1", 3), part("b", "1", 2), part("c", "1", 4)]
    report = sync_partition(index, collection, parts, partition_date="2026-01-15", document_ids=["a", "b", "c"])
    assert (report.upserted, report.deleted, report.total_entries) == (9, 0, 9)
    assert index.looked_up == [] and index.flushes == 1
    assert index.dated_reads == [None]  # the day had no entries before: none can be left over
    assert set(entries(index, collection)) == {i for chunks, _ in parts for i in chunks["chunk_id"]}


def test_documents_with_entries_are_looked_up_and_their_old_versions_go(index: CountingIndex) -> None:
    collection = index.ensure_collection("0123456789abcdef", DIMENSION)
    sync_partition(
        index,
        collection,
        [part("a", "1", 3), part("b", "1", 2), part("gone", "1", 2)],
        partition_date="2026-01-15",
        document_ids=["a", "b", "gone"],
    )
    index.looked_up.clear()
    # Next day: "a" moved here in a new version, "b" stays on its day, "new" is new; "gone" has no
    # chunks any more (rejected) but is still one of the day's documents.
    parts = [part("a", "2", 2), part("new", "1", 1)]
    report = sync_partition(index, collection, parts, partition_date="2026-01-16", document_ids=["a", "new", "gone"])
    assert index.looked_up == [["a"]]  # "new" had no entries; "gone" is in no part
    stored = entries(index, collection)
    current = {i for chunks, _ in parts for i in chunks["chunk_id"]}
    assert {i for i, day in stored.items() if day == "2026-01-16"} == current
    # a's old version and gone's entries went; b's day is untouched.
    assert {i for i, day in stored.items() if day == "2026-01-15"} == set(part("b", "1", 2)[0]["chunk_id"])
    assert (report.upserted, report.deleted) == (3, 3 + 2)


def test_a_rerun_of_the_same_day_changes_nothing(index: CountingIndex) -> None:
    collection = index.ensure_collection("0123456789abcdef", DIMENSION)
    parts = [part("a", "1", 3), part("b", "1", 2)]
    sync_partition(index, collection, parts, partition_date="2026-01-15", document_ids=["a", "b"])
    flushes = index.flushes
    again = sync_partition(index, collection, parts, partition_date="2026-01-15", document_ids=["a", "b"])
    assert (again.upserted, again.deleted, again.unchanged, again.total_entries) == (0, 0, 5, 5)
    assert index.looked_up == [["a"], ["b"]] and index.flushes == flushes  # nothing written, nothing sealed


def test_a_document_gone_from_its_day_loses_its_entries(index: CountingIndex) -> None:
    """Entries dated the day before the run: the day is read back, and what no part holds goes."""
    collection = index.ensure_collection("0123456789abcdef", DIMENSION)
    sync_partition(index, collection, [part("a", "1", 3), part("b", "1", 2)], partition_date="2026-01-15",
                   document_ids=["a", "b"])  # fmt: skip
    report = sync_partition(index, collection, [part("a", "1", 3)], partition_date="2026-01-15", document_ids=["a"])
    assert index.dated_reads == [None, "2026-01-15"]
    assert set(entries(index, collection)) == set(part("a", "1", 3)[0]["chunk_id"])
    assert (report.deleted, report.total_entries) == (2, 3)
