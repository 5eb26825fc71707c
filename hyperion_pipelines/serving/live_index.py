"""What ``hyperion serve`` keeps between requests: the model, loaded once, and the index.

Each search asks Milvus which collection the pipeline's alias names at that moment, so a
blue/green switch (``hyperion reindex``) is seen by the next request without a restart. A Milvus
server's connection is kept open. The embedded milvus-lite file takes one process at a time: the
service opens it for a request, keeps it while requests follow, and lets it go after
``idle_release_s`` without one, so that runs write in between; a request that comes while a run
holds it waits up to ``lock_wait_s``, then is answered 503 (a Milvus server has no such wait).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from hyperion_pipelines.index.connection import connect, release_local
from hyperion_pipelines.index.milvus_index import MilvusIndex
from hyperion_pipelines.serving.live_note import live_collection_note
from hyperion_pipelines.serving.queries import SearchQuery, milvus_filter, result_row
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import PipelineSpec

DEFAULT_IDLE_RELEASE_S = 2.0
DEFAULT_LOCK_WAIT_S = 30.0


class NothingIndexed(LookupError):
    """The pipeline's alias does not exist yet: nothing has been ingested."""


@dataclass
class Answer:
    collection: str  # the collection behind the alias that answered
    results: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


class LiveSearch:
    def __init__(
        self,
        settings: Settings,
        spec: PipelineSpec,
        *,
        idle_release_s: float = DEFAULT_IDLE_RELEASE_S,
        lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    ):
        from hyperion_pipelines.orchestration.resources import build_resources

        self.spec = spec
        self.idle_release_s = idle_release_s
        resources = build_resources(settings, spec)
        self._stack = ExitStack()
        # Initialised as Dagster would (secrets resolved from their environment variables).
        milvus = resources[spec.resources.milvus].model_copy(update={"lock_wait_s": lock_wait_s})
        self._milvus = self._stack.enter_context(milvus.process_config_and_initialize_cm())
        embedder = self._stack.enter_context(resources[spec.resources.embedder].process_config_and_initialize_cm())
        self.embedder = embedder.get()
        self.embedder.embed(["warm up"])  # the first call loads what is lazy: not a user's request
        self.embedded = "://" not in self._milvus.uri and not self._milvus.uri.startswith("unix:")
        self._client: Any = None
        self._opened: MilvusIndex | None = None  # on _client: remembers which collections are hybrid
        self._term_statistics: dict = {}  # kept across reconnections (MilvusIndex.term_statistics)
        self._index_lock = threading.Lock()  # the embedded file: one request at a time
        self._model_lock = threading.Lock()
        self._last_used = 0.0
        self._closed = threading.Event()
        if self.embedded:
            threading.Thread(target=self._release_when_idle, name="release-embedded-index", daemon=True).start()

    # -- the index connection ---------------------------------------------------------------
    def _connect(self) -> Any:
        return connect(self._milvus.uri, self._milvus.token, self._milvus.timeout_s, self._milvus.lock_wait_s)

    def _open(self) -> MilvusIndex:
        if self._client is None:
            self._client = self._connect()
            self._opened = MilvusIndex(
                self._client, self.spec.index, self._milvus.timeout_s, term_statistics=self._term_statistics
            )
        return self._opened

    @contextmanager
    def _index(self) -> Iterator[MilvusIndex]:
        if not self.embedded:  # a server's client is shared by the requests in flight
            with self._index_lock:
                index = self._open()
            yield index
            return
        with self._index_lock:
            try:
                yield self._open()
            finally:
                self._last_used = time.monotonic()

    def _release_when_idle(self) -> None:
        while not self._closed.wait(min(0.25, self.idle_release_s)):
            with self._index_lock:
                if self._client is not None and time.monotonic() - self._last_used >= self.idle_release_s:
                    self._let_go()

    def _let_go(self) -> None:
        self._client.close()
        self._client = None
        if self.embedded:
            release_local(self._milvus.uri)  # stops this process's milvus-lite: the lock is free

    # -- requests ---------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> Answer:
        with self._model_lock:  # one encoding at a time: the model uses every core already
            vector = self.embedder.embed([query.query])
        with self._index() as index:
            live = index.live_collection()
            if live is None:
                raise NothingIndexed(f"nothing is indexed under '{self.spec.index.alias}' yet: run 'hyperion ingest'")
            found = index.search(vector, limit=query.k, collection=live, expr=milvus_filter(query), texts=[query.query])
            note = live_collection_note(index, self.spec, self.embedder.identity, live)
        return Answer(live, [result_row(hit) for hit in found[0]], [note] if note else [])

    def close(self) -> None:
        self._closed.set()
        with self._index_lock:
            if self._client is not None:
                self._let_go()
        self._stack.close()
