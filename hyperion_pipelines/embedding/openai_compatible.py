"""Remote embeddings from an OpenAI-compatible ``POST {base_url}/embeddings`` endpoint.

For a GPU inference service (vLLM, TEI, Infinity, ...). Vectors are L2-normalised here so the
index sees the same kind of vectors whichever embedder produced them. Vectors are asked for as
base64 (a quarter of the bytes of JSON numbers, and no float parsing); a service that answers in
numbers, or refuses the encoding, is read as well. Up to ``concurrency`` batches are in flight at
once, so a GPU service is not left idle while one answer travels and the next batch is read.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import httpx
import numpy as np

from hyperion_pipelines.chunking.tokenizer import HuggingFaceTokenizer
from hyperion_pipelines.embedding.base import Embedder, EmbedderIdentity
from hyperion_pipelines.spec import DEFAULT_EMBED_BATCH_SIZE


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
        batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        concurrency: int = 4,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
        self.model = model
        self.tokenizer_dir = tokenizer_dir
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.concurrency = concurrency
        self._encoding = "base64"  # "float" once the service has refused base64
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="embed") if concurrency > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    @property
    def concurrent_batches(self) -> int:
        return self.concurrency

    @property
    def backend_note(self) -> str:
        return f"OpenAI-compatible service at {self._client.base_url} (model {self.model})"

    @cached_property
    def tokenizer(self) -> HuggingFaceTokenizer:
        return HuggingFaceTokenizer.from_model_dir(self.tokenizer_dir)

    @cached_property
    def identity(self) -> EmbedderIdentity:
        dimension = self._request(["dimension probe"]).shape[1]
        return EmbedderIdentity(f"openai:{self.model}", int(dimension), True, self.max_tokens)

    def _post(self, texts: list[str]) -> np.ndarray:
        encoding = self._encoding
        body = {"model": self.model, "input": texts, "encoding_format": encoding}
        response = self._client.post("/embeddings", json=body)
        if encoding == "base64" and response.status_code in (400, 422):
            self._encoding = "float"  # an older service that knows only numbers
            return self._post(texts)
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
        vectors = np.stack([_vector(item["embedding"]) for item in data])
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
        if self._pool is None or len(batches) == 1:
            return np.concatenate([self._request(batch) for batch in batches])
        return np.concatenate(list(self._pool.map(self._request, batches)))


def _vector(embedding: str | list[float]) -> np.ndarray:
    """One embedding as float32: base64 of little-endian float32 (OpenAI's ``encoding_format``),
    or a list of numbers."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32)
    return np.asarray(embedding, dtype=np.float32)
