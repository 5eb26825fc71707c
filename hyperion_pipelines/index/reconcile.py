"""Which index entries a partition run must write and which it must delete (pure logic)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SyncPlan:
    upsert_ids: list[str]
    delete_ids: list[str]
    unchanged_ids: list[str]


def plan_sync(expected_ids: Iterable[str], indexed_ids: Iterable[str]) -> SyncPlan:
    """``expected_ids``: every current chunk of the partition's documents.
    ``indexed_ids``: what the index holds for this partition or for any of those documents.

    Every expected id is written unless the index already holds it with the same values (see
    :func:`rows_to_write`); whatever the index holds beyond them belongs to an old version of a
    document, or a document no longer in this partition, and is deleted once the writes have landed.
    """
    expected = list(dict.fromkeys(expected_ids))
    expected_set = set(expected)
    indexed = set(indexed_ids)
    return SyncPlan(
        upsert_ids=expected,
        delete_ids=sorted(indexed - expected_set),
        unchanged_ids=sorted(indexed & expected_set),
    )


def rows_to_write(
    rows: Sequence[Mapping[str, Any]], stored: Mapping[str, Mapping[str, Any]], fields: Iterable[str]
) -> list[Mapping[str, Any]]:
    """The rows the index lacks or holds with other values in ``fields``.

    A chunk id fixes the text and the embedding space, hence the vector; what else a row holds
    (title, offsets, heading path) can change with an edit elsewhere in its document, so those
    values are compared. Re-writing identical rows would cost as much as the first write.
    """
    compared = list(fields)
    return [
        row for row in rows if (held := stored.get(row["id"])) is None or any(held.get(f) != row[f] for f in compared)
    ]
