"""Remote embeddings from an OpenAI-compatible ``POST {base_url}/embeddings`` endpoint.

For a GPU inference service (vLLM, TEI, Infinity, ...). Vectors are L2-normalised here so the
index sees the same kind of vectors whichever embedder produced them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import httpx
import numpy as np

from hyperion_pipelines.chunking.tokenizer import HuggingFaceTokenizer
from hyperion_pipelines.embedding.base import Embedder, EmbedderIdentity


class RemoteEmbeddingError(RuntimeError):
    pass


class OpenAICompatibleEmbedder(Embedder):
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        tokenizer_dir: Path,
        max_tokens: int = 254,
        batch_size: int = 64,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
    ):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
        self.model = model
        self.tokenizer_dir = tokenizer_dir
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s

    def close(self) -> None:
        self._client.close()

    @cached_property
    def tokenizer(self) -> HuggingFaceTokenizer:
        return HuggingFaceTokenizer.from_model_dir(self.tokenizer_dir)

    @cached_property
    def identity(self) -> EmbedderIdentity:
        dimension = self._request(["dimension probe"]).shape[1]
        return EmbedderIdentity(f"openai:{self.model}", int(dimension), True, self.max_tokens)

    def _post(self, texts: list[str]) -> np.ndarray:
        response = self._client.post("/embeddings", json={"model": self.model, "input": texts})
        if response.status_code >= 500 or response.status_code == 429:
            raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
        if response.status_code >= 400:
            raise RemoteEmbeddingError(f"embedding service returned HTTP {response.status_code}")
        if response.status_code >= 300:  # texts are never sent on to a host the configuration did not name
            location = response.headers.get("Location", "?")
            raise RemoteEmbeddingError(
                f"embedding service redirected to {location!r} (HTTP {response.status_code}), not followed"
            )
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        if len(data) != len(texts):
            raise RemoteEmbeddingError(f"asked for {len(texts)} embeddings, got {len(data)}")
        vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def _request(self, texts: list[str]) -> np.ndarray:
        for attempt in range(self.max_retries + 1):
            try:
                return self._post(texts)
            except (httpx.TransportError, httpx.HTTPStatusError, ValueError, KeyError, TypeError) as exc:
                if attempt == self.max_retries:
                    raise RemoteEmbeddingError(f"embedding request failed: {exc}") from exc
                time.sleep(random.uniform(0, self.backoff_base_s * 2**attempt))
        raise AssertionError("unreachable")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        batches = [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        if not batches:
            return np.zeros((0, self.identity.dimension), dtype=np.float32)
        return np.concatenate([self._request(batch) for batch in batches])
