"""Relative-score fusion of a dense and a BM25 ranking, computed here rather than by Milvus.

Milvus's weighted ranker scales BM25 scores by arctan, which puts every match of a query between
about 0.85 and 1: the best keyword match and a passing one differ by little, so BM25 either
barely moves the dense ranking or, weighted up, swamps it. Dividing each side by its best score
among the query's candidates keeps the gaps each side sees: on the four query styles of
``benchmarks/peer_fair.py`` it led the baselines by more, on average, than the weighted ranker
at any weight tried (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Scored(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def score(self) -> float: ...


HitT = TypeVar("HitT", bound=Scored)


def relative_scores(scores: Sequence[float]) -> list[float]:
    """Each score over the best one (scores higher-better and at least 0; all 0 stays 0)."""
    best = max(scores, default=0.0)
    return [score / best if best > 0 else 0.0 for score in scores]


def similarity(distance: float, metric_type: str) -> float:
    """A dense hit's score as a similarity of at least 0: L2 distances turned round, cosine and
    inner products below 0 (no likeness) counted as 0."""
    if metric_type == "L2":
        return 1.0 / (1.0 + max(distance, 0.0))
    return max(distance, 0.0)


def relative_fusion(
    dense: Sequence[HitT], keyword: Sequence[HitT], *, dense_weight: float, metric_type: str, limit: int
) -> list[tuple[float, HitT]]:
    """The ``limit`` best of both candidate lists by ``dense_weight`` x the dense score over the
    best dense score, plus the rest of the weight x the BM25 score over the best BM25 score; a
    candidate one side did not offer gets 0 from it. BM25 scores count by magnitude: milvus-lite
    reports them negated."""
    fused: dict[str, float] = {}
    hits: dict[str, HitT] = {}
    dense_scores = relative_scores([similarity(hit.score, metric_type) for hit in dense])
    keyword_scores = relative_scores([abs(hit.score) for hit in keyword])
    for side, weight, scores in ((dense, dense_weight, dense_scores), (keyword, 1 - dense_weight, keyword_scores)):
        for hit, score in zip(side, scores, strict=True):
            hits.setdefault(hit.id, hit)
            fused[hit.id] = fused.get(hit.id, 0.0) + weight * score
    # Ties keep the order of first appearance (dense first): sorted() is stable.
    ranked = sorted(fused, key=lambda hit_id: -fused[hit_id])[:limit]
    return [(fused[hit_id], hits[hit_id]) for hit_id in ranked]
