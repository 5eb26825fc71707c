"""Deterministic identifiers: documents, chunks and the embedding-space fingerprint.

Ids are hashes of what defines the thing, so re-running a partition yields the same ids
(upserts overwrite instead of duplicating) and a change in model or chunking yields new ones.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

_SEP = "\x1f"  # unit separator: cannot appear in the parts we join


FINGERPRINT_LENGTH = 12  # hex digits of an embedding-space fingerprint (collection-name suffix)


def _digest(*parts: str, length: int = 32) -> str:
    # surrogateescape: a file name that is not UTF-8 reaches Python with its bytes escaped as
    # surrogates; this hashes those raw bytes (lossless and stable) and every UTF-8 name as before.
    return hashlib.sha256(_SEP.join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:length]


def document_id(source_name: str, source_key: str) -> str:
    """Stable id of a document: which source, and its key there (relative path or API id).

    The content is deliberately not part of it: an edited document keeps its id, which is
    what lets the index replace its old chunks.
    """
    return _digest("doc", source_name, source_key)


def embedding_fingerprint(
    *, model_name: str, dimension: int, normalized: bool, parsing: dict[str, Any], chunking: dict[str, Any]
) -> str:
    """Fingerprint of the embedding space: vectors are comparable only within one fingerprint."""
    canonical = json.dumps(
        {
            "model": model_name,
            "dimension": dimension,
            "normalized": normalized,
            "parsing": parsing,
            "chunking": chunking,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return _digest("space", canonical, length=FINGERPRINT_LENGTH)


#: What the BM25 field of a hybrid collection reads (``milvus_index.BM25_TEXT_FIELD``): part of its
#: fingerprint, so that a change of it is a new collection, filled by the blue/green re-index.
BM25_INPUT = "context+text"
#: ``index.local_bm25.SCORER``, written out here so that ids imports nothing of the index layer
#: (test_local_bm25 checks the two agree).
LOCAL_BM25_SCORER = "local-bm25-v1 words crc32 k1=1.2 b=0.75 length=150"


def collection_fingerprint(space: str, retrieval: str) -> str:
    """Fingerprint of a collection: its embedding space, and whether it holds a BM25 field beside
    the vectors (``retrieval``: who scores it, see ``milvus_index.resolved_retrieval``; and what it
    reads). A dense collection keeps its space's fingerprint (the
    collections made before hybrid retrieval existed), so the two kinds never share a collection."""
    if retrieval == "dense":
        return space
    if retrieval == "hybrid-local":  # the weights Hyperion writes (index.local_bm25.SCORER)
        return _digest("collection", space, retrieval, BM25_INPUT, LOCAL_BM25_SCORER, length=FINGERPRINT_LENGTH)
    return _digest("collection", space, retrieval, BM25_INPUT, length=FINGERPRINT_LENGTH)


def earlier_hybrid_fingerprint(space: str) -> str:
    """The name's suffix of a hybrid collection made when BM25 read the chunk text alone: its
    vectors are the space's, so a re-index reuses them."""
    return _digest("collection", space, "hybrid", length=FINGERPRINT_LENGTH)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_id(*, fingerprint: str, document_id: str, chunk_text_sha256: str, occurrence: int) -> str:
    """Id of a chunk: its document, its content (plus which repeat of that content) and the space.

    Content rather than position keeps ids (and so vectors) stable when an edit shifts later
    chunks; ``occurrence`` separates identical chunks within one document.
    """
    return _digest("chunk", fingerprint, document_id, chunk_text_sha256, str(occurrence))
