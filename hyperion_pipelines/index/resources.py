"""The Milvus resource: milvus-lite for a file path, a Milvus server for an http(s) URI."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from pymilvus import MilvusClient

from hyperion_pipelines.index.milvus_index import DEFAULT_TIMEOUT_S, MilvusIndex
from hyperion_pipelines.spec import IndexSpec


def connect(uri: str, token: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> MilvusClient:
    """A file path opens milvus-lite (one process per file); an http(s):// URI a Milvus server."""
    if uri.startswith(("http://", "https://", "tcp://", "unix:")):
        return MilvusClient(uri=uri, token=token or "", timeout=timeout_s)
    path = Path(uri).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return MilvusClient(uri=str(path), timeout=timeout_s)


class MilvusResource(ConfigurableResource):
    """pymilvus ``MilvusClient`` (``HYPERION_MILVUS_URI``), connected when a step first uses it.

    Connecting inside the step, not when the run sets up its resources, puts an unreachable
    Milvus under the step's retry policy: a server that is down or restarting fails one attempt,
    which Dagster retries with backoff, instead of failing the run before any step starts.
    """

    uri: str = Field(description="milvus-lite database file, or http(s):// URI of a Milvus server.")
    token: str | None = Field(
        default=None, repr=False, description="Server token (HYPERION_MILVUS_TOKEN); never in repr or str."
    )
    timeout_s: float = Field(
        default=DEFAULT_TIMEOUT_S,
        gt=0,
        description="Seconds one Milvus call may take, pymilvus's retries included, before the attempt fails.",
    )

    _client: MilvusClient | None = PrivateAttr(default=None)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def index(self, spec: IndexSpec) -> MilvusIndex:
        if self._client is None:
            self._client = connect(self.uri, self.token, self.timeout_s)
        return MilvusIndex(self._client, spec, self.timeout_s)
