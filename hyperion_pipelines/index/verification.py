"""Checks on what a partition left in Milvus: exactly the expected entries, and searchable."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hyperion_pipelines.index.id_set import IdCounter, IdSet
from hyperion_pipelines.index.milvus_index import MilvusIndex, SearchHit

_TIE = 1e-4  # float32 scores of identical vectors agree to about this


@dataclass(frozen=True)
class ReconciliationReport:
    expected: int
    found: int
    missing: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.missing or self.orphans or self.duplicates)


def reconcile_partition(
    index: MilvusIndex,
    collection: str,
    expected_ids: IdSet | Sequence[str],
    *,
    partition_date: str,
    document_ids: Sequence[str],
) -> ReconciliationReport:
    """Entries dated ``partition_date`` or of its documents must be exactly ``expected_ids``.
    The entries are read a page at a time and held as bytes: a day can have millions."""
    expected = expected_ids if isinstance(expected_ids, IdSet) else IdSet.of(expected_ids)
    seen = IdCounter()
    for page in index.entry_pages(collection, partition_date=partition_date, document_ids=document_ids):
        seen.add(page)
    found, duplicates = seen.counted()
    return ReconciliationReport(
        expected=len(expected),
        found=seen.total,
        missing=expected.difference(found),
        orphans=found.difference(expected),
        duplicates=duplicates,
    )


@dataclass(frozen=True)
class SelfRetrievalMiss:
    chunk_id: str
    top_id: str | None
    top_score: float | None
    own_score: float | None


#: A chunk's own text, searched in the BM25 field, must bring it back among this many hits: a
#: chunk shares words with its neighbours (the overlap) and with repeated boilerplate.
KEYWORD_TOP = 5


@dataclass(frozen=True)
class SelfRetrievalReport:
    sampled: int
    found_first: int
    misses: list[SelfRetrievalMiss]
    #: Of a hybrid collection: sampled chunks found among the top KEYWORD_TOP by their own text
    #: in the BM25 field, and how many were searched. None for a dense collection.
    keyword_found: int | None = None
    keyword_sampled: int = 0

    @property
    def ratio(self) -> float:
        return self.found_first / self.sampled if self.sampled else 1.0

    @property
    def keyword_ratio(self) -> float | None:
        if self.keyword_found is None:
            return None
        return self.keyword_found / self.keyword_sampled if self.keyword_sampled else 1.0


def self_retrieval(index: MilvusIndex, collection: str, ids: Sequence[str], vectors: np.ndarray) -> SelfRetrievalReport:
    """Search each chunk by its own vector: it (or an identical twin) must come back first."""
    if not len(ids):
        return SelfRetrievalReport(sampled=0, found_first=0, misses=[])
    vectors = np.asarray(vectors, dtype=np.float32)
    results = index.search(vectors, limit=5, collection=collection)
    misses = []
    for n, (chunk, hits) in enumerate(zip(ids, results, strict=True)):
        top = hits[0] if hits else None
        own = next((h for h in hits if h.id == chunk), None)
        if own is None and top is not None and hits[-1].score >= top.score - _TIE:
            # Every hit ties the top (more identical twins than the window holds): the chunk's own
            # score, asked for alone, so a twin's ordering never counts as a miss.
            own = _own_hit(index, collection, vectors[n : n + 1], chunk)
        if top is not None and own is not None and own.score >= top.score - _TIE:
            continue
        misses.append(
            SelfRetrievalMiss(
                chunk_id=chunk,
                top_id=top.id if top else None,
                top_score=round(top.score, 5) if top else None,
                own_score=round(own.score, 5) if own else None,
            )
        )
    keyword_found, keyword_sampled = _keyword_self_retrieval(index, collection, ids)
    return SelfRetrievalReport(
        sampled=len(ids),
        found_first=len(ids) - len(misses),
        misses=misses,
        keyword_found=keyword_found,
        keyword_sampled=keyword_sampled,
    )


def _own_hit(index: MilvusIndex, collection: str, vector: np.ndarray, chunk: str) -> SearchHit | None:
    found = index.search(vector, limit=1, collection=collection, expr=f"id == {json.dumps(chunk)}")[0]
    return found[0] if found else None


_WORD = re.compile(r"\w")
#: How far down the BM25 ranking a sampled chunk is looked for: repeated boilerplate ("Report a
#: Bug / Show Source" on every page of a manual) ties dozens of chunks with the same score.
_KEYWORD_WINDOW = 50


def _keyword_self_retrieval(index: MilvusIndex, collection: str, ids: Sequence[str]) -> tuple[int | None, int]:
    """The BM25 field's side of the check: each sampled chunk searched by its stored text."""
    if not index.is_hybrid(collection):
        return None, 0
    texts = index.texts_of(collection, ids)
    # A chunk without a word (a rule of dashes) has nothing for BM25 to find it by.
    searched = [chunk for chunk in ids if _WORD.search(texts.get(chunk, ""))]
    queries = [texts[c] for c in searched]
    results = index.keyword_search(collection, queries, limit=_KEYWORD_WINDOW) if searched else []
    found = sum(_among_top(chunk, hits) for chunk, hits in zip(searched, results, strict=True))
    return found, len(searched)


def _among_top(chunk: str, hits: Sequence[SearchHit]) -> bool:
    """Whether ``chunk`` ranks in the top KEYWORD_TOP, or ties with the hit there: chunks whose
    words are the same score the same, and their order among themselves means nothing."""
    if len(hits) <= KEYWORD_TOP or any(hit.id == chunk for hit in hits[:KEYWORD_TOP]):
        return any(hit.id == chunk for hit in hits)
    last = hits[KEYWORD_TOP - 1].score
    own = next((hit for hit in hits if hit.id == chunk), None)
    limit = _TIE * max(1.0, abs(last))
    # Not in the window at all: found when the whole window is one tie (a block of repeats).
    score = own.score if own is not None else hits[-1].score
    return abs(score - last) <= limit
