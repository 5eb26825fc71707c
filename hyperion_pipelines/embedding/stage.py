"""Embed a partition's chunks in batches, reusing vectors the index already holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hyperion_pipelines.chunking.context import embedding_input
from hyperion_pipelines.deadline import Checkpoint, no_deadline
from hyperion_pipelines.embedding.base import Embedder

EMBEDDING_COLUMNS = ["chunk_id", "vector", "reused"]

#: Looks up the stored vectors of a frame's chunks (``chunk_id``, ``document_id``); returns
#: those it has, by chunk id.
VectorLookup = Callable[[pd.DataFrame], dict[str, np.ndarray]]


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
    known = lookup(chunks)
    # The model's input is the chunk's context line and text; a frame from before context lines
    # has none, and its chunk ids were derived from the text alone.
    contexts = chunks["context"].tolist() if "context" in chunks else [""] * len(chunks)
    texts = [embedding_input(context, text) for context, text in zip(contexts, chunks["text"], strict=True)]
    # Batches of similar length in the model's tokens: a batch is padded to its longest input, so
    # mixing a 10-token heading with a 200-token paragraph pays for 200 tokens twice. (Ordered by
    # characters instead, batches of the FAQ corpus were padded to 16 % more tokens and took 30 %
    # longer on ONNX Runtime.) Vectors go back by chunk id.
    lengths = input_tokens(chunks, contexts, embedder)
    missing = sorted((i for i, chunk in enumerate(ids) if chunk not in known), key=lambda i: (lengths[i], i))
    # One matrix for the new vectors, allocated up front: each batch's output is copied in and
    # freed at once. Keeping every batch's small array alive between the model's large
    # short-lived buffers fragmented the heap, and peak memory grew with the partition.
    fresh = np.empty((len(missing), embedder.identity.dimension), dtype=np.float32)
    row_of = {ids[i]: row for row, i in enumerate(missing)}
    started = time.perf_counter()
    step = batch_size * embedder.concurrent_batches  # a remote service takes several batches at once
    for lo in range(0, len(missing), step):
        checkpoint()
        batch = missing[lo : lo + step]
        vectors = embedder.embed([texts[i] for i in batch])
        if vectors.shape != (len(batch), fresh.shape[1]):
            raise ValueError(
                f"the embedder returned vectors of shape {vectors.shape} for {len(batch)} texts; "
                f"{embedder.identity.model_name} has {fresh.shape[1]} dimensions"
            )
        fresh[lo : lo + len(batch)] = vectors
    seconds = time.perf_counter() - started
    frame = pd.DataFrame(
        {
            # Explicit dtypes: an empty partition must still give columns that merge with its chunks.
            "chunk_id": pd.Series(ids, dtype="object"),
            "vector": pd.Series([known[c] if c in known else fresh[row_of[c]] for c in ids], dtype="object"),
            "reused": pd.Series([c in known for c in ids], dtype="bool"),
        },
        columns=EMBEDDING_COLUMNS,
    )
    return frame, EmbeddingStats(embedded=len(missing), reused=len(ids) - len(missing), seconds_embedding=seconds)


def input_tokens(chunks: pd.DataFrame, contexts: list[str], embedder: Embedder) -> list[int]:
    """Tokens of each chunk's model input: its text's, which the chunker counted, plus its context
    line's, counted once per distinct line (a day's chunks share few). A WordPiece tokenizer (the
    packaged model's) splits at whitespace, so the two add up to the input's count exactly; for
    another tokenizer the sum is near it, which only moves a chunk to a neighbouring batch."""
    lines = sorted(set(contexts))
    of_line = dict(zip(lines, embedder.tokenizer.count_many(lines), strict=True))
    return [int(count) + of_line[line] for count, line in zip(chunks["token_count"], contexts, strict=True)]
