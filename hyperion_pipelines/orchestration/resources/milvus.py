"""The Milvus resource: milvus-lite for a file path, a Milvus server for an http(s) URI."""

from __future__ import annotations

import logging
from collections.abc import Callable

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from pymilvus import MilvusClient

from hyperion_pipelines.index.connection import DEFAULT_LOCK_WAIT_S, connect
from hyperion_pipelines.index.milvus_index import DEFAULT_TIMEOUT_S, MilvusIndex
from hyperion_pipelines.spec import IndexSpec

_log = logging.getLogger(__name__)


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

    lock_wait_s: float = Field(
        default=DEFAULT_LOCK_WAIT_S,
        ge=0,
        description="milvus-lite only: seconds to wait for another process to release the database file.",
    )

    _client: MilvusClient | None = PrivateAttr(default=None)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def index(self, spec: IndexSpec, on_wait: Callable[[str], None] | None = None) -> MilvusIndex:
        if self._client is None:
            self._client = connect(self.uri, self.token, self.timeout_s, self.lock_wait_s, on_wait or _log.warning)
        return MilvusIndex(self._client, spec, self.timeout_s)
