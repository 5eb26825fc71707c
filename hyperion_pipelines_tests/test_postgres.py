"""The production path as far as this machine allows: the instance settings of
``deploy/dagster.yaml`` on a real PostgreSQL (runs, event log, schedule and sensor state), the code
location served over gRPC, the daemon running the upload sensor, Milvus reached by a server URI
(milvus-lite's gRPC server: the code path a Milvus standalone gets) and the state database on
PostgreSQL. Only the DockerRunLauncher is swapped for the default launcher: no Docker engine here."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from hyperion_pipelines.settings import Settings

from .conftest import REPO
from .postgres import Postgres

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.args} exited with {process.returncode}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listened on {port} within {timeout_s} s")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in reversed(started):
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)


def start(processes: list[subprocess.Popen], *args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A background process, its output in ``log`` (shown when the test fails)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(args), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    processes.append(process)
    return process


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def production_instance_yaml(artifacts: Path, server: Postgres, database: str) -> dict:
    """deploy/dagster.yaml without its run launcher (DockerRunLauncher needs a Docker engine), its
    artifacts in a temporary folder instead of the containers' /data volume."""
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    if server.host.startswith("/"):  # a throwaway server on a Unix socket: no host:port URL form
        scheme = config["storage"]["postgres"]["postgres_db"]["scheme"]
        url = server.sqlalchemy_url(database).replace("postgresql+psycopg", scheme, 1)
        config["storage"]["postgres"] = {"postgres_url": url}
    assert config["run_launcher"]["class"] == "DockerRunLauncher"
    del config["run_launcher"]
    config["local_artifact_storage"]["config"]["base_dir"] = str(artifacts)
    config["compute_logs"]["config"]["base_dir"] = str(artifacts / "compute_logs")
    return config


def test_production_instance_on_postgres_runs_the_sensor_into_a_milvus_server(
    hyperion_env: Settings,
    postgres_server: Postgres,
    postgres_database: str,
    processes: list[subprocess.Popen],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    milvus_port, code_port = free_port(), free_port()
    state_url = postgres_server.sqlalchemy_url(postgres_database)
    for name, value in {
        **postgres_server.env(postgres_database),
        "HYPERION_MILVUS_URI": f"http://127.0.0.1:{milvus_port}",
        "HYPERION_STATE_DB_URL": state_url,
    }.items():
        monkeypatch.setenv(name, value)
    (hyperion_env.dagster_home / "dagster.yaml").write_text(
        yaml.safe_dump(production_instance_yaml(tmp_path / "artifacts", postgres_server, postgres_database))
    )
    workspace = tmp_path / "workspace.yaml"
    grpc = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    workspace.write_text(
        yaml.safe_dump({"load_from": [{"grpc_server": {**grpc, "host": "127.0.0.1", "port": code_port}}]})
    )
    env = dict(os.environ)

    milvus = start(
        processes, sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "milvus"),
        "--host", "127.0.0.1", "--port", str(milvus_port), env=env, log=tmp_path / "milvus.log",
    )  # fmt: skip
    code = start(
        processes, str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port),
        "-m", "hyperion_pipelines.definitions", env=env, log=tmp_path / "code-server.log",
    )  # fmt: skip
    wait_for_port(milvus_port, milvus)
    wait_for_port(code_port, code)
    uploads = hyperion_env.uploads_dir
    (uploads / "bees.txt").write_text("Honeybees cluster in winter and shiver to keep the queen warm in the hive.")
    (uploads / "tides.txt").write_text("Tides rise and fall twice a day as the moon's gravity pulls on the oceans.")
    daemon_log = tmp_path / "daemon.log"
    start(processes, str(BIN / "dagster-daemon"), "run", "-w", str(workspace), env=env, log=daemon_log)

    deadline = time.monotonic() + float(os.environ.get("PGTEST_WAIT", 240))
    runs: list = []
    while time.monotonic() < deadline:
        with DagsterInstance.get() as instance:
            runs = instance.get_runs()
            if runs and all(r.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) for r in runs):
                break
        time.sleep(2)
    assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS], tail(daemon_log) + tail(tmp_path / "code-server.log")

    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        states = {s.instigator_name: s for s in instance.all_instigator_state()}
    # The sensor's state (with its cursor) and the schedules' state live in PostgreSQL.
    assert json.loads(states["documents_uploads"].instigator_data.cursor)["last_tick"]["documents_seen"] == 2
    assert {"reconcile_documents_daily", "alert_on_run_failure"} <= set(states), sorted(states)
    engine = sa.create_engine(state_url.replace(postgres_database, postgres_database))
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from job_ticks")).scalar() > 0
        assert conn.execute(sa.text("select count(*) from runs")).scalar() == 1
        manifest = conn.execute(sa.text("select count(*) from hyperion_document_manifest")).scalar()
    engine.dispose()
    assert manifest == 2  # the state database is PostgreSQL too

    search = subprocess.run(
        [str(BIN / "hyperion"), "search", "how do bees survive the winter", "-k", "2", "--json"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    assert search.returncode == 0, search.stderr
    assert [hit["source"] for hit in json.loads(search.stdout)][0] == "bees.txt"


def test_the_state_database_on_a_throwaway_postgres(tmp_path: Path) -> None:
    """The fallback a machine without PostgreSQL gets, exercised everywhere: a pgserver instance
    holding the quarantine ledger and the index manifest."""
    from hyperion_pipelines.quarantine.ledger import QuarantineLedger, Rejection
    from hyperion_pipelines.state.database import open_engine
    from hyperion_pipelines.state.manifest import DocumentManifest, IndexedDocument, ManifestRecord

    from .postgres import fresh_database, throwaway

    servers = throwaway()
    server = next(servers)
    databases = fresh_database(server)
    try:
        engine = open_engine(server.sqlalchemy_url(next(databases)))
        manifest = DocumentManifest(engine, "documents")
        manifest.record_partition("2026-03-02", [ManifestRecord("a", "a.md", "1:1", "indexed")])
        assert manifest.indexed() == {"a": IndexedDocument("2026-03-02", "1:1", "indexed")}
        ledger = QuarantineLedger(engine, "documents")
        update = ledger.record_partition("2026-03-02", [Rejection("b", "b.pdf", None, "encrypted", "locked")], ["a"])
        assert update.new == 1 and [e.reason for e in ledger.entries()] == ["encrypted"]
        engine.dispose()
    finally:
        databases.close()
        servers.close()
