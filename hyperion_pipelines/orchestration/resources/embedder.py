"""Dagster resources that hand the asset graph an :class:`Embedder`."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from hyperion_pipelines.embedding.base import Embedder
from hyperion_pipelines.embedding.onnx_export import FP32_FILE
from hyperion_pipelines.embedding.openai_compatible import OpenAICompatibleEmbedder
from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder, packaged_model_dir
from hyperion_pipelines.spec import DEFAULT_EMBED_BATCH_SIZE


class EmbedderResource(ConfigurableResource):
    @abstractmethod
    def get(self) -> Embedder:
        """The embedder, built once per step process."""


class SentenceTransformerResource(EmbedderResource):
    """Local sentence-transformers model (default: packaged all-MiniLM-L6-v2), CPU or GPU."""

    model_path: str = Field(default="", description="Model folder; empty means the packaged model.")
    device: str = Field(default="auto", description="'auto' (GPU when present), 'cpu' or 'cuda'.")
    batch_size: int = Field(
        default=DEFAULT_EMBED_BATCH_SIZE,
        gt=0,
        description="Most texts per forward pass (the onnx backend also caps the padded tokens of one).",
    )
    backend: Literal["auto", "torch", "onnx"] = Field(
        default="auto",
        description=(
            "'auto' (int8 ONNX where ONNX Runtime is installed and no GPU is present, else torch), 'torch', "
            "or 'onnx': ONNX Runtime on an export made by 'hyperion export-onnx'."
        ),
    )
    onnx_file: str = Field(default=FP32_FILE, description="With backend onnx: the export's file (fp32 or int8).")
    exports_dir: str = Field(
        default="", description="Where ONNX exports live; empty means HYPERION_MODELS_DIR ($HYPERION_HOME/models)."
    )

    _embedder: SentenceTransformerEmbedder | None = PrivateAttr(default=None)

    def get(self) -> Embedder:
        if self._embedder is None:
            model_dir = Path(self.model_path) if self.model_path else None
            self._embedder = SentenceTransformerEmbedder(
                model_dir,
                device=self.device,
                batch_size=self.batch_size,
                backend=self.backend,
                onnx_file=self.onnx_file,
                exports_root=Path(self.exports_dir) if self.exports_dir else None,
            )
        return self._embedder


class OpenAICompatibleEmbedderResource(EmbedderResource):
    """A remote OpenAI-compatible ``/embeddings`` endpoint, e.g. a GPU inference service."""

    base_url: str = Field(description="Endpoint root, e.g. http://gpu-host:8000/v1.")
    model: str = Field(description="Model name sent with every request.")
    api_key: str | None = Field(
        default=None, repr=False, description="Bearer token (HYPERION_OPENAI_API_KEY); never in repr or str."
    )
    tokenizer_path: str = Field(default="", description="Folder with the model's tokenizer.json.")
    max_tokens: int = Field(default=254, gt=0, description="Longest input the model embeds whole.")
    batch_size: int = Field(default=DEFAULT_EMBED_BATCH_SIZE, gt=0, description="Texts per request.")
    timeout_s: float = Field(default=60.0, gt=0)
    concurrency: int = Field(default=4, gt=0, description="Batches in flight at once (HYPERION_OPENAI_CONCURRENCY).")

    _embedder: OpenAICompatibleEmbedder | None = PrivateAttr(default=None)

    def get(self) -> Embedder:
        if self._embedder is None:
            self._embedder = OpenAICompatibleEmbedder(
                self.base_url,
                self.model,
                api_key=self.api_key,
                tokenizer_dir=Path(self.tokenizer_path) if self.tokenizer_path else packaged_model_dir(),
                max_tokens=self.max_tokens,
                batch_size=self.batch_size,
                timeout_s=self.timeout_s,
                concurrency=self.concurrency,
            )
        return self._embedder

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._embedder is not None:
            self._embedder.close()
