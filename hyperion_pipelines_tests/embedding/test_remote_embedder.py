"""The OpenAI-compatible embedder against a real loopback service: vectors in either encoding,
an older service that refuses base64, and several batches in flight at once."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from hyperion_pipelines.embedding.openai_compatible import OpenAICompatibleEmbedder
from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder, packaged_model_dir
from hyperion_pipelines.embedding.stage import embed_chunks

from ..support.embedding_server import EmbeddingService, serve_embeddings

TEXTS = [f"sentence number {i} about {topic}" for i, topic in enumerate(["milvus", "dagster", "tokens"] * 6)]


@pytest.fixture(scope="module")
def model() -> SentenceTransformerEmbedder:
    # torch: a float model's vector of a text does not depend on the texts batched with it (an int8
    # one's does a little), so the service's batches must give exactly the vectors of one call.
    return SentenceTransformerEmbedder(backend="torch")


@pytest.fixture
def remote(model: SentenceTransformerEmbedder, request: pytest.FixtureRequest) -> Iterator[tuple]:
    options = getattr(request, "param", {})
    service = EmbeddingService(embedder=model, **options.get("service", {}))
    with serve_embeddings(service) as url:
        embedder = OpenAICompatibleEmbedder(
            url, "m", tokenizer_dir=packaged_model_dir(), batch_size=4, **options.get("client", {})
        )
        yield embedder, service
        embedder.close()


@pytest.mark.parametrize(
    ("remote", "formats"),
    [
        ({"service": {"encoding": "honour"}}, {"base64"}),
        ({"service": {"encoding": "ignore"}}, {"base64"}),
        ({"service": {"encoding": "refuse_base64"}}, {"base64", "float"}),
    ],
    indirect=["remote"],
    ids=["base64", "numbers", "refuses-base64"],
)
def test_vectors_are_the_models_whichever_encoding_the_service_answers_in(
    remote: tuple, formats: set[str], model: SentenceTransformerEmbedder
) -> None:
    embedder, service = remote
    got = embedder.embed(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(got, model.embed(TEXTS), atol=1e-6)
    assert set(service.formats) == formats
    if "float" in formats:
        # Only batches already in flight when the first refusal came back were sent as base64 (the
        # service sees them in any order), each batch is answered once in numbers, and the next
        # call asks for numbers only.
        batches = -(-len(TEXTS) // embedder.batch_size)
        assert 1 <= service.formats.count("base64") <= embedder.concurrency
        assert service.formats.count("float") == batches
        before = len(service.formats)
        embedder.embed(TEXTS)
        assert service.formats[before:] == ["float"] * batches


@pytest.mark.parametrize(
    ("remote", "most"),
    [
        ({"service": {"delay_s": 0.2}, "client": {"concurrency": 3}}, 3),
        ({"service": {"delay_s": 0.05}, "client": {"concurrency": 1}}, 1),
    ],
    indirect=["remote"],
    ids=["three", "one"],
)
def test_batches_are_in_flight_at_once_up_to_the_concurrency_and_come_back_in_order(
    remote: tuple, most: int, model: SentenceTransformerEmbedder
) -> None:
    embedder, service = remote
    chunks = pd.DataFrame(
        {
            "chunk_id": [f"c{i}" for i in range(len(TEXTS))],
            "text": TEXTS,
            "context": [""] * len(TEXTS),
            "token_count": model.tokenizer.count_many(TEXTS),
        }
    )
    frame, stats = embed_chunks(chunks, embedder, lambda part: {}, batch_size=4)
    assert stats.embedded == len(TEXTS) and service.most_in_flight == most
    by_id = dict(zip(frame["chunk_id"], frame["vector"], strict=True))
    np.testing.assert_allclose(np.stack([by_id[f"c{i}"] for i in range(len(TEXTS))]), model.embed(TEXTS), atol=1e-6)
