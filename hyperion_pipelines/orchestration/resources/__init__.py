"""Resources: each pipeline's own source, embedder and Milvus connection, and the shared ones.

A pipeline's spec says *which* source, model and Milvus it uses; it arrives resolved (what its
declaration left unset was filled from the ``HYPERION_*`` settings once, by ``resolve_spec``), so
these read the spec alone; the settings give only what is the deployment's, not a pipeline's
(timeouts, the models folder, concurrency). Secrets are bound by environment-variable name with
``EnvVar``, so Dagster resolves them at run time and never shows their values.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

from dagster import EnvVar

from hyperion_pipelines.orchestration.io_manager import ParquetIOManager
from hyperion_pipelines.orchestration.resources.embedder import (
    OpenAICompatibleEmbedderResource,
    SentenceTransformerResource,
)
from hyperion_pipelines.orchestration.resources.milvus import MilvusResource
from hyperion_pipelines.orchestration.resources.sources import (
    BackendApiResource,
    BlobStoreResource,
    UploadsFolderResource,
)
from hyperion_pipelines.orchestration.resources.state import StateDatabaseResource
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import BackendApiSource, OpenAICompatibleEmbedding, PipelineSpec

T = TypeVar("T")


def resolved(value: T | None, field: str) -> T:
    """A spec field ``resolve_spec`` fills from the settings; unset means the spec skipped it."""
    if value is None:
        raise ValueError(
            f"the pipeline spec leaves {field} unset: resolve it first (resolve_spec, or build_definitions(specs=...))"
        )
    return value


def secret(name: str) -> EnvVar | None:
    """Bind a secret by name so Dagster resolves it at run time and never shows its value."""
    return EnvVar(name) if os.environ.get(name) else None


def source_resource(spec: PipelineSpec, settings: Settings) -> Any:
    source = spec.source
    if isinstance(source, BackendApiSource):
        return BackendApiResource(
            base_url=resolved(source.base_url, "source.base_url"),
            token=secret(source.token_env),
            timeout_s=resolved(source.timeout_s, "source.timeout_s"),
            max_retries=resolved(source.max_retries, "source.max_retries"),
        )
    return UploadsFolderResource(path=resolved(source.path, "source.path"))


def embedder_resource(spec: PipelineSpec, settings: Settings) -> Any:
    from hyperion_pipelines.embedding.onnx_export import FP32_FILE

    embedding = spec.embedding
    batch_size = resolved(embedding.batch_size, "embedding.batch_size")
    if isinstance(embedding, OpenAICompatibleEmbedding):
        return OpenAICompatibleEmbedderResource(
            base_url=resolved(embedding.base_url, "embedding.base_url"),
            model=resolved(embedding.model, "embedding.model"),
            api_key=secret(embedding.api_key_env),
            batch_size=batch_size,
            concurrency=settings.openai_concurrency,
        )
    return SentenceTransformerResource(
        model_path=embedding.model_path or "",  # unset: the packaged model
        device=resolved(embedding.device, "embedding.device"),
        batch_size=batch_size,
        backend=resolved(embedding.backend, "embedding.backend"),
        onnx_file=embedding.onnx_file or FP32_FILE,
        exports_dir=str(settings.models_dir),
    )


def milvus_resource(spec: PipelineSpec, settings: Settings) -> MilvusResource:
    return MilvusResource(
        uri=resolved(spec.index.milvus_uri, "index.milvus_uri"),
        token=secret(spec.index.token_env),
        timeout_s=settings.milvus_timeout_s,
        lock_wait_s=settings.milvus_lock_wait_s,
    )


def pipeline_resources(spec: PipelineSpec, settings: Settings) -> dict[str, Any]:
    """The resources only this pipeline uses, under its own keys."""
    keys = spec.resources
    return {
        keys.source: source_resource(spec, settings),
        keys.embedder: embedder_resource(spec, settings),
        keys.milvus: milvus_resource(spec, settings),
    }


def shared_resources(settings: Settings) -> dict[str, Any]:
    """The raw zone, the state database and the step-output store, shared by every pipeline (rows
    and files are keyed by pipeline)."""
    return {
        "io_manager": ParquetIOManager(base_uri=settings.step_output_uri, part_documents=settings.part_documents),
        "blob_store": BlobStoreResource(path=str(settings.blob_dir)),
        "state_db": StateDatabaseResource(url=secret("HYPERION_STATE_DB_URL") or settings.state_db_url),
    }


def build_resources(settings: Settings, spec: PipelineSpec) -> dict[str, Any]:
    """Everything one pipeline's runs need (what the command line opens outside Dagster)."""
    return {**shared_resources(settings), **pipeline_resources(spec, settings)}
