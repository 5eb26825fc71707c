"""The state database as a Dagster resource."""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine

from hyperion_pipelines.state.database import open_engine
from hyperion_pipelines.state.manifest import DocumentManifest
from hyperion_pipelines.state.quarantine_ledger import QuarantineLedger


class StateDatabaseResource(ConfigurableResource):
    """The quarantine ledger and the index manifest (``HYPERION_STATE_DB_URL``, a SQLAlchemy URL)."""

    url: str = Field(repr=False, description="SQLAlchemy URL, e.g. sqlite:////data/state.db or postgresql://...")
    _engine: Engine | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._engine = open_engine(self.url)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _ready(self) -> Engine:
        if self._engine is None:  # used outside a Dagster step (CLI, sensors, tests)
            self._engine = open_engine(self.url)
        return self._engine

    def ledger(self, pipeline: str) -> QuarantineLedger:
        return QuarantineLedger(self._ready(), pipeline)

    def manifest(self, pipeline: str) -> DocumentManifest:
        return DocumentManifest(self._ready(), pipeline)
