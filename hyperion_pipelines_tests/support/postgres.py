"""PostgreSQL for the tests: the server on 127.0.0.1:5432 when one is running, else a throwaway
one started with ``pgserver``. Each test gets its own fresh database."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg2
from psycopg2 import sql


@dataclass(frozen=True)
class Postgres:
    host: str  # a hostname, or the folder of a Unix socket
    port: int
    user: str
    password: str = "unused"  # trust authentication ignores it; Dagster's config wants one

    def connect(self, database: str = "postgres"):  # noqa: ANN201 - a psycopg2 connection
        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=database, connect_timeout=5
        )

    def sqlalchemy_url(self, database: str) -> str:
        if self.host.startswith("/"):
            return f"postgresql+psycopg://{self.user}:{self.password}@/{database}?host={self.host}&port={self.port}"
        return f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def env(self, database: str) -> dict[str, str]:
        """The variables the production dagster.yaml reads its storage settings from."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": database,
        }


def local_or_throwaway() -> Iterator[Postgres]:
    local = Postgres("127.0.0.1", 5432, "postgres")
    try:
        local.connect().close()
    except psycopg2.OperationalError:
        yield from throwaway()
    else:
        yield local


def throwaway() -> Iterator[Postgres]:
    """A PostgreSQL server of its own, from the ``pgserver`` wheel: no system install needed."""
    with own_server() as own:
        yield own.postgres


def fresh_database(server: Postgres) -> Iterator[str]:
    name = f"hyperion_test_{uuid.uuid4().hex[:10]}"
    conn = server.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield name
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()


@dataclass
class OwnServer:
    """A throwaway server this test may stop and start again (the shared one it must not)."""

    server: Any  # pgserver.PostgresServer
    postgres: Postgres

    def _pg_ctl(self, *args: str) -> None:
        from pgserver import _commands

        _commands.pg_ctl(["-w", *args], pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        # The options pgserver starts it with: no TCP listener, the same Unix socket folder.
        self._pg_ctl("-o", '-h ""', "-o", f"-k {self.postgres.host}", "-l", str(self.server.log), "start")


@contextmanager
def own_server() -> Iterator[OwnServer]:
    import pgserver

    with tempfile.TemporaryDirectory(prefix="hyperion-pg-") as data:
        server = pgserver.get_server(data, cleanup_mode="stop")
        uri = urlsplit(server.get_uri())
        own = OwnServer(server, Postgres(parse_qs(uri.query)["host"][0], uri.port or 5432, uri.username or "postgres"))
        try:
            yield own
        finally:
            with suppress(subprocess.CalledProcessError):
                own.stop()  # pgserver only stops the process it started, not a restarted one
            server.cleanup()
