"""BM25 scored over the whole collection where Milvus scores it per segment (milvus-lite).

milvus-lite 3.2.2 computes a BM25 field's statistics segment by segment: a document written after
a flush sits in a small segment and scores far below its match. Here the field is an ordinary
sparse vector, searched by inner product: each chunk stores its terms' BM25 term-frequency
parts (against a fixed length, :data:`AVERAGE_TERMS`), and each query carries its terms' IDF,
computed from the document frequencies of the whole collection (:class:`TermStatistics`, kept
beside the collection by :mod:`.document_frequencies`). The inner product of the two is the chunk's
BM25 score.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: BM25's usual saturation and length normalisation (Lucene's defaults, as Milvus's).
K1 = 1.2
B = 0.75
#: The length a chunk's term counts are normalised against. A chunk's weights are written once,
#: so the collection's running average cannot be used; the default chunks (200 model tokens and a
#: context line) hold about this many words.
AVERAGE_TERMS = 150
#: The term of a chunk without words: Milvus stores no empty sparse vector, and no query holds it.
NO_TERMS = 0
_TERM_IDS = 2**32 - 1  # Milvus's sparse indices are below 2**32 - 1
#: What the stored weights depend on (tokens, term ids, k1, b, length): part of the name of a
#: collection of this kind (``ids.collection_fingerprint``), so a change is a new collection.
SCORER = f"local-bm25-v1 words crc32 k1={K1} b={B} length={AVERAGE_TERMS}"
_WORD = re.compile(r"\w+")


def terms(text: str) -> list[str]:
    """Lower-cased word tokens, as Milvus's standard analyzer splits them (near enough)."""
    return _WORD.findall(text.casefold())


def term_id(term: str) -> int:
    """A term's index in the sparse vector: a hash, never :data:`NO_TERMS`."""
    return zlib.crc32(term.encode("utf-8")) % (_TERM_IDS - 1) + 1


def document_weights(text: str) -> dict[int, float]:
    """Each term's BM25 term-frequency part: tf (k1 + 1) / (tf + k1 (1 - b + b len / average))."""
    counts = Counter(term_id(t) for t in terms(text))
    length = sum(counts.values())
    if not counts:
        return {NO_TERMS: 1.0}
    norm = K1 * (1 - B + B * length / AVERAGE_TERMS)
    return {term: tf * (K1 + 1) / (tf + norm) for term, tf in counts.items()}


def frequency_changes(
    *, added: Iterable[Mapping[int, float]] = (), removed: Iterable[Mapping[int, float]] = ()
) -> tuple[int, Counter[int]]:
    """How the chunk count and each term's document frequency change when chunks with the stored
    weights ``removed`` go and chunks with ``added`` come (a chunk rewritten is in both)."""
    changes: Counter[int] = Counter()
    chunks = 0
    for vector in added:
        chunks += 1
        changes.update(term for term in vector if term != NO_TERMS)
    for vector in removed:
        chunks -= 1
        changes.subtract(term for term in vector if term != NO_TERMS)
    return chunks, Counter({term: n for term, n in changes.items() if n})


@dataclass(frozen=True)
class TermStatistics:
    """How many chunks the collection holds, and how many hold each term."""

    chunks: int
    frequencies: Mapping[int, int]

    @classmethod
    def of(cls, stored: Iterable[Mapping[int, float]]) -> TermStatistics:
        """From the stored sparse vectors of every chunk."""
        chunks, frequencies = frequency_changes(added=stored)
        return cls(chunks, frequencies)

    def idf(self, term: int) -> float:
        """Lucene's BM25 IDF, never below 0: log(1 + (N - n + 0.5) / (n + 0.5))."""
        n = self.frequencies.get(term, 0)
        return math.log(1 + (self.chunks - n + 0.5) / (n + 0.5))

    def query_weights(self, text: str) -> dict[int, float]:
        """The query's terms that some chunk holds, each weighted by its IDF (each term once, as
        Milvus's BM25 counts a query); empty when no chunk holds any."""
        return {term: self.idf(term) for term in query_terms(text) if self.frequencies.get(term)}


def query_terms(text: str) -> set[int]:
    """The term ids of a query, each once."""
    return {term_id(t) for t in terms(text)}
