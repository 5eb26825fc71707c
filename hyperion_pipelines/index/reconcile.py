"""Which index entries a partition run must write and which it must delete (pure logic)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SyncPlan:
    upsert_ids: list[str]
    delete_ids: list[str]
    unchanged_ids: list[str]


def plan_sync(expected_ids: Iterable[str], indexed_ids: Iterable[str]) -> SyncPlan:
    """``expected_ids``: every current chunk of the partition's documents.
    ``indexed_ids``: what the index holds for this partition or for any of those documents.

    Every expected id is upserted (idempotent, refreshes metadata such as positions); whatever the
    index holds beyond them belongs to an old version of a document, or a document no longer in
    this partition, and is deleted once the upserts have landed.
    """
    expected = list(dict.fromkeys(expected_ids))
    expected_set = set(expected)
    indexed = set(indexed_ids)
    return SyncPlan(
        upsert_ids=expected,
        delete_ids=sorted(indexed - expected_set),
        unchanged_ids=sorted(indexed & expected_set),
    )
