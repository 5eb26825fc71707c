"""The embedder interface the asset graph depends on."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hyperion_pipelines.chunking.tokenizer import HuggingFaceTokenizer


@dataclass(frozen=True)
class EmbedderIdentity:
    """What makes two embedders' vectors comparable; it enters the embedding-space fingerprint."""

    model_name: str
    dimension: int
    normalized: bool
    max_tokens: int  # the longest input, in model tokens without special tokens, it embeds whole


class Embedder(ABC):
    @property
    @abstractmethod
    def identity(self) -> EmbedderIdentity: ...

    @property
    @abstractmethod
    def tokenizer(self) -> HuggingFaceTokenizer:
        """The tokenizer the model counts tokens with (chunk sizes are measured in it)."""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A float32 array of shape ``(len(texts), dimension)``."""

    @property
    def backend_note(self) -> str:
        """How this embedder computes vectors here, for the run's log (a local model's backend)."""
        return type(self).__name__

    @property
    def concurrent_batches(self) -> int:
        """Batches :meth:`embed` works on at once: hand it that many batches per call."""
        return 1

    def preload(self) -> threading.Thread | None:
        """Start loading whatever :meth:`embed` needs in the background, if that is slow: the
        loading thread, or None (nothing to load, as here)."""
        return None
