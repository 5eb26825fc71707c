"""A day's entry ids held compactly: a sorted array of their bytes, not a set of strings.

A day of 100,000 documents has millions of chunk ids. As Python strings in a set each costs
about 150 bytes; as a row of a sorted byte array, its length (32). The index sync and the
reconciliation check hold the day's ids once, in this form, and compare the entries Milvus lists
against it a page at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def encode_ids(ids: Iterable[str]) -> np.ndarray:
    """Ids as an array of their bytes (one fixed-width row each)."""
    encoded = [i.encode() for i in ids]
    return np.array(encoded, dtype=bytes) if encoded else np.array([], dtype="S1")


class IdSet:
    """Distinct ids, sorted; built from several encoded batches (a day's parts)."""

    def __init__(self, *encoded: np.ndarray):
        arrays = [a for a in encoded if len(a)]
        self._ids = np.unique(np.concatenate(arrays)) if arrays else np.array([], dtype="S1")

    @classmethod
    def of(cls, ids: Iterable[str]) -> IdSet:
        return cls(encode_ids(ids))

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and bool(self.contains(np.array([value.encode()]))[0])

    def contains(self, encoded: np.ndarray) -> np.ndarray:
        """Which of the encoded ids are members (a boolean mask)."""
        if not len(self._ids) or not len(encoded):
            return np.zeros(len(encoded), dtype=bool)
        at = np.searchsorted(self._ids, encoded).clip(max=len(self._ids) - 1)
        return self._ids[at] == encoded

    def not_in(self, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` that are not members, in their order."""
        encoded = encode_ids(ids)
        return [i for i, known in zip(ids, self.contains(encoded), strict=True) if not known]

    def difference(self, other: IdSet) -> list[str]:
        """Members that ``other`` lacks, sorted."""
        return [i.decode() for i in self._ids[~other.contains(self._ids)]]

    def sample(self, size: int) -> list[str]:
        """An evenly spread, deterministic sample in sorted order (the same day always checks the
        same chunks)."""
        if len(self._ids) <= size:
            return [i.decode() for i in self._ids]
        step = len(self._ids) / size
        return [self._ids[int(i * step)].decode() for i in range(size)]


class IdCounter:
    """Ids seen one page at a time (an id may come twice), kept as bytes until counted."""

    def __init__(self) -> None:
        self._pages: list[np.ndarray] = []
        self.total = 0

    def add(self, ids: Sequence[str]) -> None:
        if ids:
            self._pages.append(encode_ids(ids))
            self.total += len(ids)

    def counted(self) -> tuple[IdSet, list[str]]:
        """The distinct ids seen, and those seen more than once (sorted)."""
        if not self._pages:
            return IdSet(), []
        distinct, counts = np.unique(np.concatenate(self._pages), return_counts=True)
        return IdSet(distinct), [i.decode() for i in distinct[counts > 1]]
