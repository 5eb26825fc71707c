"""PostgreSQL for the tests: the server on 127.0.0.1:5432 when one is running, else a throwaway
one started with ``pgserver``. Each test gets its own fresh database."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
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
    import pgserver

    with tempfile.TemporaryDirectory(prefix="hyperion-pg-") as data:
        server = pgserver.get_server(data, cleanup_mode="stop")
        try:
            uri = urlsplit(server.get_uri())
            yield Postgres(parse_qs(uri.query)["host"][0], uri.port or 5432, uri.username or "postgres")
        finally:
            server.cleanup()


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
