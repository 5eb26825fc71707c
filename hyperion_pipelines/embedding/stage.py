"""Embed a partition's chunks in batches, reusing vectors the index already holds."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hyperion_pipelines.deadline import Checkpoint, no_deadline
from hyperion_pipelines.embedding.base import Embedder

EMBEDDING_COLUMNS = ["chunk_id", "vector", "reused"]

#: Looks up stored vectors by chunk id; returns those it has.
VectorLookup = Callable[[Sequence[str]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class EmbeddingStats:
    embedded: int
    reused: int
    seconds_embedding: float


def embed_chunks(
    chunks: pd.DataFrame,
    embedder: Embedder,
    lookup: VectorLookup,
    *,
    batch_size: int,
    checkpoint: Checkpoint = no_deadline,
) -> tuple[pd.DataFrame, EmbeddingStats]:
    """A chunk id encodes its text and embedding space, so a stored vector under the same id is
    exactly the vector the model would produce again: reuse it instead of re-embedding."""
    ids = chunks["chunk_id"].tolist()
    known = lookup(ids)
    texts = chunks["text"].tolist()
    # Batches of similar length: a batch is padded to its longest text, so mixing a 10-token
    # heading with a 200-token paragraph pays for 200 tokens twice. Vectors go back by chunk id.
    missing = sorted((i for i, chunk in enumerate(ids) if chunk not in known), key=lambda i: len(texts[i]))
    fresh: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    for lo in range(0, len(missing), batch_size):
        checkpoint()
        batch = missing[lo : lo + batch_size]
        vectors = embedder.embed([texts[i] for i in batch])
        fresh.update((ids[i], vectors[k]) for k, i in enumerate(batch))
    seconds = time.perf_counter() - started
    frame = pd.DataFrame(
        {
            # Explicit dtypes: an empty partition must still give columns that merge with its chunks.
            "chunk_id": pd.Series(ids, dtype="object"),
            "vector": pd.Series([known[c] if c in known else fresh[c] for c in ids], dtype="object"),
            "reused": pd.Series([c in known for c in ids], dtype="bool"),
        },
        columns=EMBEDDING_COLUMNS,
    )
    return frame, EmbeddingStats(embedded=len(fresh), reused=len(ids) - len(missing), seconds_embedding=seconds)
