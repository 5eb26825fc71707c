"""The quarantine ledger as a Dagster resource."""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine

from hyperion_pipelines.quarantine.ledger import QuarantineLedger, open_engine


class QuarantineLedgerResource(ConfigurableResource):
    """Where quarantine history is kept (``HYPERION_QUARANTINE_DB_URL``, a SQLAlchemy URL)."""

    url: str = Field(description="SQLAlchemy URL, e.g. sqlite:////data/quarantine.db or postgresql://...")
    _engine: Engine | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._engine = open_engine(self.url)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def ledger(self, pipeline: str) -> QuarantineLedger:
        if self._engine is None:
            self._engine = open_engine(self.url)
        return QuarantineLedger(self._engine, pipeline)
