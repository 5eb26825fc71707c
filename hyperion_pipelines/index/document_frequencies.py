"""A local-BM25 collection's document frequencies, kept beside it in Milvus as it is written.

A query's IDF needs the collection's chunk count and how many chunks hold each of the query's
terms. Counting them from every chunk's stored weights takes time in proportion to the collection
(0.7 s for 8,278 chunks), on every search of a new process. Instead the writer keeps the counts in
a companion collection (``<collection>__terms``, one row per term), changing only the terms of
what it writes or deletes, and a searcher reads the rows of its query's terms by primary key.

Two rows are not terms: :data:`CHUNKS` (``local_bm25.NO_TERMS``, a term no query holds) holds the
chunk count, and :data:`WRITING` is 0 when the counts are complete, a writer's token while it
changes them, and :data:`BROKEN` when they cannot be trusted: left so by a writer that fails
part-way, or that finds another's token at its end (two writers through one milvus-lite server
may each read a count before the other writes it back). A writer killed outright leaves its
token. Either way searchers count from the stored weights, and the next writer counts afresh
before it writes.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from pymilvus import DataType, MilvusClient, MilvusException

from hyperion_pipelines.index.concurrent_create import made_by_another
from hyperion_pipelines.index.local_bm25 import NO_TERMS, TermStatistics
from hyperion_pipelines.index.query_pages import query_pages

#: The companion's name is its collection's with this suffix: never ``<alias>__<fingerprint>``,
#: so ``MilvusIndex.collections`` does not list it.
SUFFIX = "__terms"
#: The row holding the collection's chunk count.
CHUNKS = NO_TERMS
#: The row holding 0, a writer's token, or :data:`BROKEN`.
WRITING = -1
BROKEN = 1
_BATCH = 1000
# Milvus keeps no collection without a vector field: a constant two-dimensional one, never searched.
_NO_VECTOR = [0.0, 0.0]


def companion_name(collection: str) -> str:
    return f"{collection}{SUFFIX}"


def _rows(counts: Mapping[int, int]) -> list[dict[str, Any]]:
    return [{"term": int(term), "chunks": int(n), "vector": _NO_VECTOR} for term, n in counts.items()]


class DocumentFrequencies:
    """The counts of one local-BM25 collection. Written by one writer at a time, as milvus-lite
    takes; writers that overlap (through one milvus-lite server) leave them broken by the time
    the later one ends."""

    def __init__(self, client: MilvusClient, collection: str, timeout_s: float):
        self.client = client
        self.name = companion_name(collection)
        self.timeout_s = timeout_s
        self._loaded = False

    # -- reads -------------------------------------------------------------------------------
    def statistics(self, terms: Collection[int]) -> TermStatistics | None:
        """The chunk count and the frequencies of ``terms`` (those no chunk holds left out);
        None when there are no counts to trust (never built, or a write under way or broken off)."""
        if not self.client.has_collection(self.name, timeout=self.timeout_s):
            return None
        counts = self._counts([WRITING, CHUNKS, *terms])
        if counts.get(WRITING, 1) or CHUNKS not in counts:
            return None
        return TermStatistics(counts[CHUNKS], {t: n for t, n in counts.items() if t not in (WRITING, CHUNKS)})

    def is_sound(self, chunks: int) -> bool:
        """Whether the counts exist, were left complete, and count ``chunks`` chunks (the
        collection's row count: rows written by a Hyperion before this module would not be)."""
        if not self.client.has_collection(self.name, timeout=self.timeout_s):
            return False
        counts = self._counts([WRITING, CHUNKS])
        return counts.get(WRITING, 1) == 0 and counts.get(CHUNKS) == chunks

    def _counts(self, terms: Sequence[int]) -> dict[int, int]:
        self._ensure_loaded()
        counts: dict[int, int] = {}
        unique = list(dict.fromkeys(terms))
        for start in range(0, len(unique), _BATCH):
            batch = unique[start : start + _BATCH]
            rows = self.client.get(self.name, ids=batch, output_fields=["chunks"], timeout=self.timeout_s)
            counts.update((int(row["term"]), int(row["chunks"])) for row in rows)
        return counts

    # -- writes ------------------------------------------------------------------------------
    def begin(self) -> int:
        """Mark the counts as being changed (before the collection is written); the writer's token."""
        token = secrets.randbelow(2**62) + BROKEN + 1
        self.client.upsert(self.name, _rows({WRITING: token}), timeout=self.timeout_s)
        return token

    def finish(self, token: int) -> None:
        """Mark the counts complete again (after the collection and the counts are written), or
        broken where another writer began meanwhile."""
        left = self._counts([WRITING]).get(WRITING)
        self.client.upsert(self.name, _rows({WRITING: 0 if left == token else BROKEN}), timeout=self.timeout_s)

    def abandon(self) -> None:
        """Mark the counts broken after a write that failed part-way (its rows may be written,
        its counts not): best effort, as the failure may be the server's."""
        with contextlib.suppress(Exception):  # the write's own error is the one to raise
            self.client.upsert(self.name, _rows({WRITING: BROKEN}), timeout=self.timeout_s)

    def apply(self, chunks: int, changes: Mapping[int, int]) -> None:
        """Change the chunk count by ``chunks`` and each term's count by its change
        (``local_bm25.frequency_changes``)."""
        changes = {term: n for term, n in changes.items() if n}
        if not chunks and not changes:
            return
        current = self._counts([CHUNKS, *changes])
        changed = {term: current.get(term, 0) + n for term, n in changes.items()}
        changed[CHUNKS] = current.get(CHUNKS, 0) + chunks
        if any(n < 0 for n in changed.values()):  # counts lost to a concurrent writer
            self.client.upsert(self.name, _rows({WRITING: BROKEN}), timeout=self.timeout_s)
            return
        kept = {term: n for term, n in changed.items() if n or term == CHUNKS}
        gone = [term for term, n in changed.items() if not n and term != CHUNKS]
        items = list(kept.items())
        for start in range(0, len(items), _BATCH):
            self.client.upsert(self.name, _rows(dict(items[start : start + _BATCH])), timeout=self.timeout_s)
        for start in range(0, len(gone), _BATCH):
            self.client.delete(self.name, ids=gone[start : start + _BATCH], timeout=self.timeout_s)

    def rebuild(self, stored: Iterable[Mapping[int, float]]) -> None:
        """Count afresh from every chunk's stored weights. In place, not dropped and made again:
        runs that begin at once may each count afresh (their tokens then leave the counts broken)."""
        self._create()
        token = self.begin()
        statistics = TermStatistics.of(stored)
        counts = {CHUNKS: statistics.chunks, **statistics.frequencies}
        items = list(counts.items())
        for start in range(0, len(items), _BATCH):
            self.client.upsert(self.name, _rows(dict(items[start : start + _BATCH])), timeout=self.timeout_s)
        gone = [term for term in self._terms() if term not in counts and term != WRITING]
        for start in range(0, len(gone), _BATCH):
            self.client.delete(self.name, ids=gone[start : start + _BATCH], timeout=self.timeout_s)
        self.finish(token)

    def _terms(self) -> list[int]:
        """Every row's term (a full scan, for :meth:`rebuild` only)."""
        pages = query_pages(self.client, self.name, "term >= 0", ["term"], self.timeout_s)
        return [int(row["term"]) for page in pages for row in page]

    def drop(self) -> None:
        self._loaded = False
        if self.client.has_collection(self.name, timeout=self.timeout_s):
            try:
                self.client.drop_collection(self.name, timeout=self.timeout_s)
            except MilvusException:
                if self.client.has_collection(self.name, timeout=self.timeout_s):
                    raise  # not dropped by another writer meanwhile

    def _create(self) -> None:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("term", DataType.INT64, is_primary=True)
        schema.add_field("chunks", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=len(_NO_VECTOR))
        if self.client.has_collection(self.name, timeout=self.timeout_s):
            self._ensure_loaded()
            return
        # Another writer counting afresh at the same moment may make it first.
        try:
            self.client.create_collection(self.name, schema=schema, consistency_level="Strong", timeout=self.timeout_s)
        except MilvusException:
            if not made_by_another(self.client, self.name, self.timeout_s):
                raise
        if not self.client.list_indexes(self.name, field_name="vector", timeout=self.timeout_s):
            index = self.client.prepare_index_params()
            index.add_index(field_name="vector", index_name="vector", index_type="FLAT", metric_type="L2")
            try:
                self.client.create_index(self.name, index, timeout=self.timeout_s)
            except MilvusException:
                if not self.client.list_indexes(self.name, field_name="vector", timeout=self.timeout_s):
                    raise
        self._ensure_loaded()

    def _ensure_loaded(self) -> None:
        """Reopened from disk, the companion starts released, as its collection does."""
        if not self._loaded:
            state = self.client.get_load_state(self.name, timeout=self.timeout_s).get("state")
            if getattr(state, "name", str(state)) != "Loaded":
                self.client.load_collection(self.name, timeout=self.timeout_s)
            self._loaded = True
