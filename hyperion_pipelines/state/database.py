"""One SQLAlchemy database for the pipeline's durable state.

SQLite (WAL) in the embedded setup, PostgreSQL or any SQLAlchemy database in production
(``HYPERION_STATE_DB_URL``). Sensors read it while runs write it, so it must take concurrent
readers; milvus-lite, which allows one process per file, could not serve that role.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, inspect
from sqlalchemy.engine import make_url

_log = logging.getLogger(__name__)

IN_BATCH = 500  # ids per IN (...) clause, well inside every database's parameter limit

metadata = MetaData()
#: The advisory lock key that serialises creating the tables (any constant of our own).
_SCHEMA_LOCK = 0x48595045  # "HYPE"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, start transactions, so they can begin IMMEDIATE (below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (sensors, the CLI) do not block a run's writes
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_engine(url: str) -> Engine:
    """An engine with every state table created."""
    # The table modules register their tables on ``metadata`` when imported.
    from hyperion_pipelines.state import (
        manifest,  # noqa: F401
        quarantine_ledger,  # noqa: F401
    )

    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        # Take the write lock when the transaction starts: two runs of one day then update the
        # state one after the other instead of both reading, then both writing.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    if engine.dialect.name == "postgresql":
        # Processes on several hosts (Celery workers) open a fresh database at once, and
        # PostgreSQL's CREATE TABLE races on its catalog: one creates, the others wait for it.
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            metadata.create_all(conn)
            _add_missing_columns(conn)
    else:
        metadata.create_all(engine)
        add_missing_columns(engine)
    return engine


def readable_engine(url: str) -> Engine:
    """An engine for reading, that works on a full disk too: when the database cannot be opened
    for writing (SQLite must create its shared-memory file), a SQLite file whose journal was
    checkpointed is read as it is on disk. Used to find what may be freed."""
    from sqlalchemy.exc import OperationalError

    try:
        return open_engine(url)
    except OperationalError as exc:
        path = make_url(url).database if url.startswith("sqlite") else None
        wal = Path(f"{path}-wal") if path else None
        if path is None or not Path(path).exists() or (wal is not None and wal.exists() and wal.stat().st_size):
            raise  # not SQLite, or changes still in the journal that a read-only open would miss
        _log.warning("state database opened read-only as it is on disk: %s", exc.orig)
        return create_engine(f"sqlite:///file:{path}?mode=ro&immutable=1&uri=true", future=True)


def add_missing_columns(engine: Engine) -> list[str]:
    """Add the nullable columns a newer release declares to tables an older one created; returns
    ``table.column`` of each added. Rows written before read NULL there, which every reader takes
    as "not known" (the state of a database from before the column)."""
    with engine.begin() as conn:  # one connection: SQLite's write lock is taken when it begins
        return _add_missing_columns(conn)


def _add_missing_columns(conn: Connection) -> list[str]:
    added = []
    existing = inspect(conn)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in existing.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(f"{table.name}.{column.name} is missing and cannot be added to existing rows")
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
            added.append(f"{table.name}.{column.name}")
    return added
