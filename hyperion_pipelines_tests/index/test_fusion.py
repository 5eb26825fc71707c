"""Relative-score fusion (``index/fusion.py``): pure ranking logic, no Milvus."""

from __future__ import annotations

import pytest

from hyperion_pipelines.index.fusion import relative_fusion, relative_scores, similarity
from hyperion_pipelines.index.milvus_index import SearchHit


def hits(*scored: tuple[str, float]) -> list[SearchHit]:
    return [SearchHit(score, hit_id, {"document_id": hit_id}) for hit_id, score in scored]


def ranked(fused: list[tuple[float, SearchHit]]) -> list[str]:
    return [hit.id for _, hit in fused]


def test_each_side_counts_relative_to_its_best_candidate() -> None:
    # BM25 in milvus-lite's sign (negated); its best match is "b", worth a full share of BM25.
    dense = hits(("a", 0.60), ("b", 0.54), ("c", 0.30))
    keyword = hits(("b", -12.0), ("c", -3.0))
    fused = relative_fusion(dense, keyword, dense_weight=0.75, metric_type="COSINE", limit=3)
    assert ranked(fused) == ["b", "a", "c"]
    assert fused[0][0] == pytest.approx(0.75 * 0.54 / 0.60 + 0.25)
    assert fused[1][0] == pytest.approx(0.75)  # "a": no BM25 match
    assert fused[2][0] == pytest.approx(0.75 * 0.5 + 0.25 * 0.25)


def test_weights_at_the_ends_give_one_side_alone_and_limit_cuts() -> None:
    dense = hits(("a", 0.9), ("b", 0.8), ("c", 0.7))
    keyword = hits(("c", 5.0), ("b", 4.0), ("d", 1.0))
    assert ranked(relative_fusion(dense, keyword, dense_weight=1.0, metric_type="COSINE", limit=3)) == ["a", "b", "c"]
    assert ranked(relative_fusion(dense, keyword, dense_weight=0.0, metric_type="COSINE", limit=2)) == ["c", "b"]


def test_l2_distances_and_negative_similarities_and_empty_sides() -> None:
    assert similarity(0.0, "L2") == 1.0 and similarity(3.0, "L2") == 0.25  # nearer is better
    assert similarity(-0.2, "COSINE") == 0.0  # unlike, not "less than nothing"
    assert relative_scores([0.0, 0.0]) == [0.0, 0.0]
    l2 = hits(("near", 0.1), ("far", 2.0))
    assert ranked(relative_fusion(l2, [], dense_weight=0.75, metric_type="L2", limit=5)) == ["near", "far"]
    assert relative_fusion([], [], dense_weight=0.5, metric_type="COSINE", limit=5) == []
