"""``embed_chunks`` with the packaged model: batches of like length in the model's tokens, each
vector back under its chunk's id, stored vectors reused."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hyperion_pipelines.chunking.context import embedding_input
from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder
from hyperion_pipelines.embedding.stage import embed_chunks, input_tokens

from ..support.model_tokenizer import TOKENIZER

# Character counts order these differently from token counts: 26 characters but 12 tokens,
# 25 characters but 3 tokens.
TEXTS = {
    "numbers": "1 2 3 4 5 6 7 8 9 10 11 12",
    "long-words": "Incomprehensibilities",
    "two-words": "thoroughly understandable",
    "bees": "Honeybees cluster in winter",
    "letters": "x y z",
}


class Recording(SentenceTransformerEmbedder):
    """The packaged model (torch: a text's vector does not depend on its batch-mates), noting the
    inputs of each call."""

    def __init__(self) -> None:
        super().__init__(backend="torch")
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return super().embed(texts)


def chunk_frame(contexts: Sequence[str] = ("",) * len(TEXTS)) -> pd.DataFrame:
    texts = list(TEXTS.values())
    counts = TOKENIZER.count_many(texts)  # as the chunker counts a chunk's text
    return pd.DataFrame({"chunk_id": list(TEXTS), "context": list(contexts), "text": texts, "token_count": counts})


def test_batches_follow_the_models_token_counts_and_vectors_come_back_by_chunk_id() -> None:
    embedder = Recording()
    tokens = embedder.tokenizer.count_many(list(TEXTS.values()))
    by_characters = sorted(TEXTS, key=lambda c: len(TEXTS[c]))
    by_tokens = [c for _, _, c in sorted(zip(tokens, range(len(TEXTS)), TEXTS, strict=True))]  # ties: chunk order
    assert by_characters != by_tokens  # the texts tell the two orders apart

    frame, stats = embed_chunks(chunk_frame(), embedder, lambda part: {}, batch_size=2)

    assert [len(call) for call in embedder.calls] == [2, 2, 1]
    assert [text for call in embedder.calls for text in call] == [TEXTS[c] for c in by_tokens]
    assert (stats.embedded, stats.reused) == (5, 0)
    assert frame["chunk_id"].tolist() == list(TEXTS)  # the chunks' order, whatever the batches' order
    alone = embedder.embed([embedding_input("", TEXTS["bees"])])[0]
    assert np.allclose(frame.set_index("chunk_id").loc["bees", "vector"], alone, atol=1e-5)


def test_stored_vectors_are_reused_and_only_the_rest_is_embedded() -> None:
    embedder = Recording()
    stored = np.full(embedder.identity.dimension, 0.05, dtype=np.float32)
    frame, stats = embed_chunks(chunk_frame(), embedder, lambda part: {"bees": stored}, batch_size=64)
    assert (stats.embedded, stats.reused) == (4, 1)
    assert TEXTS["bees"] not in embedder.calls[0] and len(embedder.calls[0]) == 4
    reused = frame.set_index("chunk_id")
    assert bool(reused.loc["bees", "reused"]) and np.array_equal(reused.loc["bees", "vector"], stored)


def test_an_inputs_tokens_are_its_context_lines_and_its_texts() -> None:
    contexts = ["Beekeeping > Winter", "", "Beekeeping > Winter", "A long title: with punctuation, and more", ""]
    chunks = chunk_frame(contexts)
    whole = [TOKENIZER.count(embedding_input(c, t)) for c, t in zip(contexts, TEXTS.values(), strict=True)]
    assert input_tokens(chunks, contexts, Recording()) == whole
