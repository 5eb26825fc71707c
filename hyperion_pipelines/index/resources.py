"""The Milvus resource: milvus-lite for a file path, a Milvus server for an http(s) URI."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from pymilvus import MilvusClient

from hyperion_pipelines.index.milvus_index import MilvusIndex
from hyperion_pipelines.spec import IndexSpec


def connect(uri: str, token: str | None = None) -> MilvusClient:
    """A file path opens milvus-lite (one process per file); an http(s):// URI a Milvus server."""
    if uri.startswith(("http://", "https://", "tcp://", "unix:")):
        return MilvusClient(uri=uri, token=token or "")
    path = Path(uri).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return MilvusClient(uri=str(path))


class MilvusResource(ConfigurableResource):
    """pymilvus ``MilvusClient``, built once per step (``HYPERION_MILVUS_URI``)."""

    uri: str = Field(description="milvus-lite database file, or http(s):// URI of a Milvus server.")
    token: str | None = Field(
        default=None, repr=False, description="Server token (HYPERION_MILVUS_TOKEN); never in repr or str."
    )

    _client: MilvusClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._client = connect(self.uri, self.token)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def index(self, spec: IndexSpec) -> MilvusIndex:
        if self._client is None:  # used outside a Dagster step (CLI, tests)
            self._client = connect(self.uri, self.token)
        return MilvusIndex(self._client, spec)
