"""Resources configured from ``HYPERION_*`` settings; secrets are bound with ``EnvVar``."""

from __future__ import annotations

import os
from typing import Any

from dagster import EnvVar

from hyperion_pipelines.embedding.resources import OpenAICompatibleEmbedderResource, SentenceTransformerResource
from hyperion_pipelines.index.resources import MilvusResource
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.sources.resources import BackendApiResource, BlobStoreResource, UploadsFolderResource
from hyperion_pipelines.spec import ResourceKeys
from hyperion_pipelines.state.resources import StateDatabaseResource


def secret(name: str) -> EnvVar | None:
    """Bind a secret by name so Dagster resolves it at run time and never shows its value."""
    return EnvVar(name) if os.environ.get(name) else None


def build_resources(settings: Settings, keys: ResourceKeys = ResourceKeys()) -> dict[str, Any]:
    if settings.source == "backend":
        source: Any = BackendApiResource(
            base_url=settings.backend_url,
            token=secret("HYPERION_BACKEND_TOKEN"),
            timeout_s=settings.backend_timeout_s,
            max_retries=settings.backend_max_retries,
        )
    else:
        source = UploadsFolderResource(path=str(settings.uploads_dir))
    if settings.embedder == "openai":
        embedder: Any = OpenAICompatibleEmbedderResource(
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            api_key=secret("HYPERION_OPENAI_API_KEY"),
            batch_size=settings.embedding_batch_size,
        )
    else:
        embedder = SentenceTransformerResource(
            model_path=settings.embedding_model_path,
            device=settings.embedding_device,
            batch_size=settings.embedding_batch_size,
        )
    return {
        keys.source: source,
        keys.embedder: embedder,
        keys.milvus: MilvusResource(uri=settings.milvus_uri, token=secret("HYPERION_MILVUS_TOKEN")),
        keys.blob_store: BlobStoreResource(path=str(settings.blob_dir)),
        keys.state: StateDatabaseResource(url=secret("HYPERION_STATE_DB_URL") or settings.state_db_url),
    }
