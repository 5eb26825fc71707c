"""Celery workers, runs whose steps go to them, and the PostgreSQL URLs they share: used by the
Celery tests and by ``benchmarks/workers_bench.py``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hyperion_pipelines.cli import worker_command, worker_environment
from hyperion_pipelines.settings import Settings

from ..conftest import REPO
from .postgres import Postgres

BROKER_PORT = 5672


def postgres_url(server: Postgres, database: str, driver: str) -> str:
    return server.sqlalchemy_url(database).replace("postgresql+psycopg", driver, 1)


@contextmanager
def running() -> Iterator[list[subprocess.Popen]]:
    """Processes the test starts, stopped when it leaves (before their namespace goes)."""
    processes: list[subprocess.Popen] = []
    try:
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_worker(name: str, log: Path, prefix: list[str] | None = None) -> subprocess.Popen:
    env = worker_environment(Settings.from_env())
    command = worker_command(name, loglevel="INFO")
    with log.open("ab") as out:
        return subprocess.Popen([*(prefix or []), *command], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def wait_for_workers(names: tuple[str, ...], timeout_s: float = 120) -> None:
    settings = Settings.from_env()
    deadline = time.monotonic() + timeout_s
    seen: set[str] = set()
    while time.monotonic() < deadline:
        ping = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "dagster_celery.app", "-b", settings.celery_broker,
             "inspect", "ping", "--json", "--timeout", "2"],
            capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        if ping.returncode == 0 and ping.stdout.strip():
            seen = set(json.loads(ping.stdout.strip().splitlines()[-1]))
            if set(names) <= seen:
                return
        time.sleep(1)
    raise AssertionError(f"workers {names} did not answer within {timeout_s} s; answered: {seen}")


RUN_DAY = """
import json, sys
from dagster import DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository
job = ReconstructableRepository.for_module(
    "hyperion_pipelines.definitions", "defs", working_directory=sys.argv[2]
).get_reconstructable_job("ingest_documents")
with DagsterInstance.get() as instance:
    result = execute_job(job, instance, tags={"dagster/partition": sys.argv[1]})
print(json.dumps({"success": result.success, "run_id": result.run_id}))
"""


def start_run(day: str, log: Path) -> subprocess.Popen:
    """A run of the ingest job for ``day`` in its own process (the run worker a launcher starts),
    whose executor hands every step to the Celery workers."""
    return subprocess.Popen(
        [sys.executable, "-c", RUN_DAY, day, str(REPO)], cwd=REPO, stdout=subprocess.PIPE, stderr=log.open("ab"),
        text=True,
    )  # fmt: skip
