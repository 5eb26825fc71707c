"""Ranking metrics (recall@k, MRR@k, nDCG@k) computed by the ``ir_measures`` library.

Two traps of the underlying evaluators are closed here rather than left to callers:

* Rankings are ordered by score, and ties are broken by document id, differently per provider
  (pytrec_eval, which computes R and nDCG, sorts tied ids descending; the MS MARCO evaluator that
  computes RR@k sorts them ascending). A run is therefore given as an ordered list and turned into
  strictly decreasing synthetic scores, so every metric sees exactly the order it was given.
* pytrec_eval leaves out queries that have no entry in the run (ir_measures 0.4.3 happens to fill
  them in with the measure's default, but that is not a documented promise). A query with nothing
  retrieved must count as 0, or the averages are inflated: every query of the qrels is scored
  here explicitly, and the averages are taken over all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ir_measures
from ir_measures import RR, R, nDCG


@dataclass(frozen=True)
class QueryScores:
    query_id: str
    recall_at_k: float
    reciprocal_rank: float  # of the first relevant document within the top k; 0 if none
    ndcg_at_k: float


@dataclass(frozen=True)
class EvaluationResult:
    k: int
    queries: int
    recall_at_k: float
    mrr: float  # mean reciprocal rank, cut at k (RR@k)
    ndcg_at_k: float
    per_query: tuple[QueryScores, ...]  # in the order of the qrels


def evaluate_run(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Sequence[str]], k: int) -> EvaluationResult:
    """Score ``run`` against ``qrels`` at cutoff ``k``.

    ``qrels``: query id -> {document id: grade}; grade >= 1 is relevant, higher grades count more
    in nDCG. ``run``: query id -> retrieved document ids, best first (repeats after the first
    occurrence are ignored). Queries absent from ``run`` score 0; run entries for queries not in
    ``qrels`` are ignored. Averages are over every query of ``qrels``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    _check_qrels(qrels)
    recall, rr, ndcg = R @ k, RR @ k, nDCG @ k
    ranked = {qid: _scored(run.get(qid, ())) for qid in qrels}
    ranked = {qid: docs for qid, docs in ranked.items() if docs}
    values: dict[tuple[str, object], float] = {}
    if ranked:
        judged = {qid: dict(items) for qid, items in qrels.items()}
        for metric in ir_measures.iter_calc([recall, rr, ndcg], judged, ranked):
            values[(metric.query_id, metric.measure)] = float(metric.value)

    per_query = tuple(
        QueryScores(
            query_id=qid,
            recall_at_k=values.get((qid, recall), 0.0),
            reciprocal_rank=values.get((qid, rr), 0.0),
            ndcg_at_k=values.get((qid, ndcg), 0.0),
        )
        for qid in qrels
    )
    count = len(per_query)
    return EvaluationResult(
        k=k,
        queries=count,
        recall_at_k=sum(q.recall_at_k for q in per_query) / count,
        mrr=sum(q.reciprocal_rank for q in per_query) / count,
        ndcg_at_k=sum(q.ndcg_at_k for q in per_query) / count,
        per_query=per_query,
    )


def _check_qrels(qrels: Mapping[str, Mapping[str, int]]) -> None:
    if not qrels:
        raise ValueError("no queries to evaluate: the qrels are empty")
    for qid, items in qrels.items():
        if not isinstance(qid, str):
            raise ValueError(f"query ids must be strings, got {qid!r}")
        grades = list(items.values())
        if any(isinstance(g, bool) or not isinstance(g, int) for g in grades):
            raise ValueError(f"query {qid!r}: relevance grades must be integers")
        # A query nothing can satisfy would score 0 whatever is retrieved and drag the mean down.
        if not any(g >= 1 for g in grades):
            raise ValueError(f"query {qid!r} has no relevant document (grade >= 1)")


def _scored(ranking: Sequence[str]) -> dict[str, float]:
    """Ranked ids as strictly decreasing scores (first occurrence wins), so ties cannot reorder them."""
    unique = list(dict.fromkeys(ranking))
    return {doc: float(len(unique) - position) for position, doc in enumerate(unique)}
