"""Hyperion's BM25 for milvus-lite (``index/local_bm25.py``): pure scoring, no Milvus."""

from __future__ import annotations

import math

import pytest

from hyperion_pipelines.ids import LOCAL_BM25_SCORER
from hyperion_pipelines.index.local_bm25 import (
    AVERAGE_TERMS,
    NO_TERMS,
    SCORER,
    TermStatistics,
    document_weights,
    frequency_changes,
    term_id,
    terms,
)

CHUNKS = [
    "zstd compresses files; zstd -T0 uses every core",
    "gzip compresses files",
    "Lighthouse keepers trimmed the lamps at dusk",
]


def lucene_bm25(query: str, chunk: str, chunks: list[str], k1: float = 1.2, b: float = 0.75) -> float:
    """BM25 written out from its definition, with the average length fixed as Hyperion fixes it."""
    words = terms(chunk)
    score = 0.0
    for term in set(terms(query)):
        n = sum(term in terms(other) for other in chunks)
        if not n:
            continue
        idf = math.log(1 + (len(chunks) - n + 0.5) / (n + 0.5))
        tf = words.count(term)
        score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(words) / AVERAGE_TERMS))
    return score


def inner_product(query: dict[int, float], document: dict[int, float]) -> float:
    return sum(weight * document.get(term, 0.0) for term, weight in query.items())


@pytest.mark.parametrize("query", ["zstd", "compresses files", "ZSTD cores -T0", "lamps at dusk", "bzip2"])
def test_the_inner_product_of_query_and_chunk_weights_is_bm25(query: str) -> None:
    statistics = TermStatistics.of(document_weights(chunk) for chunk in CHUNKS)
    for chunk in CHUNKS:
        ours = inner_product(statistics.query_weights(query), document_weights(chunk))
        assert ours == pytest.approx(lucene_bm25(query, chunk, CHUNKS))


def test_rarer_terms_weigh_more_and_repeats_saturate() -> None:
    statistics = TermStatistics.of(document_weights(chunk) for chunk in CHUNKS)
    weights = statistics.query_weights("compresses lamps")
    assert weights[term_id("lamps")] > weights[term_id("compresses")] > 0  # in one chunk, in two
    once, twice, thrice = (document_weights(" ".join(["zstd"] * n))[term_id("zstd")] for n in (1, 2, 3))
    assert once < twice < thrice < 1.2 + 1  # bounded by k1 + 1


def test_words_no_chunk_holds_make_no_query_and_a_wordless_chunk_has_a_placeholder() -> None:
    statistics = TermStatistics.of(document_weights(chunk) for chunk in [*CHUNKS, "« — »"])
    assert statistics.chunks == 4
    assert statistics.query_weights("bzip2 xz") == {}
    assert document_weights("« — »") == {NO_TERMS: 1.0}  # Milvus stores no empty sparse vector
    assert NO_TERMS not in statistics.frequencies
    assert all(0 < term_id(word) < 2**32 - 1 for word in ("zstd", "", "ü", "x" * 1000))


def test_the_scorer_named_in_collection_names_is_the_one_in_use() -> None:
    """A change of tokens, term ids or parameters must change the name of new collections."""
    assert LOCAL_BM25_SCORER == SCORER


def test_frequency_changes_count_chunks_out_and_in() -> None:
    """Replacing a chunk's text counts its old terms out and its new ones in; what a rewrite
    leaves unchanged is no change at all; the wordless placeholder counts a chunk, not a term."""
    old, new = document_weights(CHUNKS[0]), document_weights(CHUNKS[1])
    chunks, changes = frequency_changes(added=[new], removed=[old])
    assert chunks == 0
    assert changes == {term_id("gzip"): 1, term_id("zstd"): -1, term_id("t0"): -1, term_id("uses"): -1,
                       term_id("every"): -1, term_id("core"): -1}  # fmt: skip
    assert frequency_changes(added=[old], removed=[old]) == (0, {})
    assert frequency_changes(added=[document_weights("")]) == (1, {})
    everything = [document_weights(chunk) for chunk in CHUNKS]
    chunks, counts = frequency_changes(added=everything)
    assert TermStatistics(chunks, counts) == TermStatistics.of(everything)
    assert counts[term_id("files")] == 2
