"""Dagster resources that hand the asset graph a :class:`DocumentSource`."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from hyperion_pipelines.chunking.cache import ChunkCache
from hyperion_pipelines.parsing.cache import ParseCache
from hyperion_pipelines.sources.backend_api import BackendDocumentApi, api_identity
from hyperion_pipelines.sources.base import DocumentSource
from hyperion_pipelines.sources.blob_store import BlobStore
from hyperion_pipelines.sources.uploads_folder import UploadsFolder, folder_identity
from hyperion_pipelines.spec import ParsingSpec


class DocumentSourceResource(ConfigurableResource):
    """Where a pipeline's documents come from."""

    @abstractmethod
    @contextmanager
    def open(self, budget_s: float | None = None) -> Iterator[DocumentSource]:
        """A ready source for the duration of a step. ``budget_s``: roughly how long the caller
        can wait on a failing source in total (a sensor tick must end well within its timeout)."""

    @abstractmethod
    def identity(self) -> str:
        """The opened source's :attr:`DocumentSource.identity`, without opening it."""


class UploadsFolderResource(DocumentSourceResource):
    """Documents dropped into a local folder (``HYPERION_UPLOADS_DIR``); sub-folders included."""

    path: str = Field(description="The uploads folder.")

    @contextmanager
    def open(self, budget_s: float | None = None) -> Iterator[DocumentSource]:
        yield UploadsFolder(Path(self.path))

    def identity(self) -> str:
        return folder_identity(Path(self.path))


class BackendApiResource(DocumentSourceResource):
    """Hyperion's backend document API over HTTP (``HYPERION_BACKEND_URL``)."""

    base_url: str = Field(description="API root, e.g. https://docs.internal/api/v1.")
    token: str | None = Field(
        default=None, repr=False, description="Bearer token (HYPERION_BACKEND_TOKEN); never in repr or str."
    )
    timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(default=4, ge=0, description="Retries on 5xx, 429 and timeouts.")
    backoff_base_s: float = Field(default=0.5, ge=0, description="First backoff; doubles per retry.")

    def identity(self) -> str:
        return api_identity(self.base_url)

    @contextmanager
    def open(self, budget_s: float | None = None) -> Iterator[DocumentSource]:
        timeout_s, max_retries = self.timeout_s, self.max_retries
        if budget_s is not None:  # one retry, and requests short enough that both fit the budget
            max_retries = min(max_retries, 1)
            timeout_s = min(timeout_s, budget_s / 4)
        with BackendDocumentApi(
            self.base_url,
            self.token,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_base_s=self.backoff_base_s,
        ) as api:
            yield api


class BlobStoreResource(ConfigurableResource):
    """The raw zone: content-addressed copies of landed documents."""

    path: str = Field(description="Folder for document blobs (HYPERION_HOME/blobs).")

    def store(self) -> BlobStore:
        return BlobStore(Path(self.path))

    def parse_cache(self, spec: ParsingSpec) -> ParseCache:
        """Successful parses beside the blobs they came from (``_parsed`` never clashes with the
        two-hex-digit blob folders)."""
        return ParseCache(Path(self.path) / "_parsed", spec)

    def chunk_cache(self, fingerprint: str) -> ChunkCache:
        """Chunk boundaries of texts chunked before, per embedding-space fingerprint."""
        return ChunkCache(Path(self.path) / "_chunks", fingerprint)
