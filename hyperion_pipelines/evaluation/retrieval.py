"""Run a golden query set against the Milvus index and score it per document.

The index stores chunks, but users judge documents: a chunk ranking is collapsed to a document
ranking (a document's score is its best chunk's, documents in order of first appearance) before
the metrics see it. A relevant item matches a retrieved document by ``document_id`` or ``source``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hyperion_pipelines.embedding.base import Embedder
from hyperion_pipelines.evaluation.golden import GoldenQuery, qrels_of
from hyperion_pipelines.evaluation.metrics import EvaluationResult, evaluate_run
from hyperion_pipelines.index.milvus_index import MilvusIndex, SearchHit

#: Milvus refuses a search ``limit`` (top-k) above this.
MILVUS_MAX_LIMIT = 16384
#: Chunks fetched per wanted document: several chunks of one document often rank side by side.
CHUNKS_PER_DOCUMENT = 5
#: Queries per search request; each hit carries its chunk text, so requests are kept moderate.
_SEARCH_BATCH = 32


@dataclass(frozen=True)
class RetrievedDocument:
    document_id: str
    source: str
    score: float  # the best score of its chunks, as the index's metric reports it


@dataclass(frozen=True)
class QueryRetrieval:
    """What one golden query retrieved: the top documents, best first."""

    query_id: str
    query: str
    documents: tuple[RetrievedDocument, ...]
    chunks_searched: int  # the search limit used; fewer than k documents may still come back

    @property
    def top_source(self) -> str | None:
        return self.documents[0].source if self.documents else None


def search_limit(k: int) -> int:
    """Chunks to fetch so that ``k`` distinct documents are usually among them."""
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > MILVUS_MAX_LIMIT:
        raise ValueError(f"k must be at most {MILVUS_MAX_LIMIT} (Milvus' search limit), got {k}")
    return min(k * CHUNKS_PER_DOCUMENT, MILVUS_MAX_LIMIT)


def collapse_to_documents(hits: Sequence[SearchHit], k: int) -> tuple[RetrievedDocument, ...]:
    """The first ``k`` distinct documents of a chunk ranking (hits best first, whatever the metric)."""
    documents: dict[str, RetrievedDocument] = {}
    for hit in hits:
        document_id = str(hit.fields["document_id"])
        if document_id not in documents:
            # Hits come best first, so the first chunk seen is the document's best one.
            documents[document_id] = RetrievedDocument(document_id, str(hit.fields["source"]), hit.score)
            if len(documents) == k:
                break
    return tuple(documents.values())


def retrieve_documents(
    index: MilvusIndex,
    embedder: Embedder,
    queries: Sequence[GoldenQuery],
    k: int,
    collection: str | None = None,
) -> list[QueryRetrieval]:
    """Search every query (embedded in one call) and keep its top ``k`` documents."""
    limit = search_limit(k)
    if not queries:
        return []
    vectors = embedder.embed([q.query for q in queries])
    retrievals: list[QueryRetrieval] = []
    for start in range(0, len(queries), _SEARCH_BATCH):
        batch = queries[start : start + _SEARCH_BATCH]
        texts = [q.query for q in batch]
        results = index.search(vectors[start : start + len(batch)], limit=limit, collection=collection, texts=texts)
        for query, hits in zip(batch, results, strict=True):
            retrievals.append(QueryRetrieval(query.query_id, query.query, collapse_to_documents(hits, k), limit))
    return retrievals


def score_retrievals(queries: Sequence[GoldenQuery], retrievals: Sequence[QueryRetrieval], k: int) -> EvaluationResult:
    """Metrics of ``retrievals`` against the judgements of ``queries`` (matched by query id)."""
    qrels = qrels_of(queries)
    if len(qrels) != len(queries):
        raise ValueError("golden queries must have distinct ids")
    run: dict[str, list[str]] = {}
    for retrieval in retrievals:
        relevant = qrels.get(retrieval.query_id, {})
        seen: set[str] = set()
        run[retrieval.query_id] = [_judged_key(doc, relevant, seen) for doc in retrieval.documents]
    return evaluate_run(qrels, run, k)


def evaluate_golden_set(
    index: MilvusIndex,
    embedder: Embedder,
    queries: Sequence[GoldenQuery],
    k: int,
    collection: str | None = None,
) -> EvaluationResult:
    """Recall@k, MRR@k and nDCG@k of the index on a golden set (``collection``: default the alias)."""
    return score_retrievals(queries, retrieve_documents(index, embedder, queries, k, collection), k)


def report_rows(
    queries: Sequence[GoldenQuery], retrievals: Sequence[QueryRetrieval], result: EvaluationResult
) -> list[dict[str, Any]]:
    """One row per query for a report table: scores, the top source, and relevant items missed."""
    by_id = {r.query_id: r for r in retrievals}
    scores = {s.query_id: s for s in result.per_query}
    rows: list[dict[str, Any]] = []
    for query in queries:
        retrieval = by_id.get(query.query_id)
        documents = retrieval.documents if retrieval else ()
        found = {key for doc in documents for key in (doc.document_id, doc.source)}
        score = scores[query.query_id]
        rows.append(
            {
                "query_id": query.query_id,
                "query": query.query,
                f"recall@{result.k}": round(score.recall_at_k, 4),
                "reciprocal_rank": round(score.reciprocal_rank, 4),
                f"ndcg@{result.k}": round(score.ndcg_at_k, 4),
                "top_source": retrieval.top_source if retrieval else None,
                "missed": sorted(item for item in query.relevant if item not in found),
            }
        )
    return rows


def _judged_key(document: RetrievedDocument, relevant: dict[str, int], seen: set[str]) -> str:
    """The name the judgements know ``document`` by: its id, else its source path.

    A source path is used at most once per ranking: two documents from different sources can
    share a display path, and the second must not be credited (nor vanish as a duplicate).
    """
    if document.document_id in relevant:
        key = document.document_id
    elif document.source in relevant and document.source not in seen:
        key = document.source
    else:
        key = document.document_id
    seen.add(key)
    return key
