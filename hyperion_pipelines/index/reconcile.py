"""Which index entries a partition run must write (pure logic)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


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
