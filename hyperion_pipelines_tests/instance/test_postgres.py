"""The production path as far as this machine allows: the instance settings of
``deploy/dagster.yaml`` on a real PostgreSQL (runs, event log, schedule and sensor state), the code
location served over gRPC, the daemon running the upload sensor, Milvus reached by a server URI
(milvus-lite's gRPC server: the code path a Milvus standalone gets) and the state database on
PostgreSQL. Only the DockerRunLauncher is swapped for the default launcher: no Docker engine here."""

from __future__ import annotations

import json
import os
import signal
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

from ..conftest import REPO, wait_for_runs
from ..support.ports import free_port, wait_for_port
from ..support.postgres import Postgres

BIN = Path(sys.executable).parent


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
    from hyperion_pipelines.state.database import open_engine
    from hyperion_pipelines.state.manifest import DocumentManifest, IndexedDocument, ManifestRecord
    from hyperion_pipelines.state.quarantine_ledger import QuarantineLedger, Rejection

    from ..support.postgres import fresh_database, throwaway

    servers = throwaway()
    server = next(servers)
    databases = fresh_database(server)
    try:
        engine = open_engine(server.sqlalchemy_url(next(databases)))
        manifest = DocumentManifest(engine, "documents")
        manifest.record_partition("2026-03-02", [ManifestRecord("a", "a.md", "1:1", "indexed")])
        assert manifest.indexed() == {"a": IndexedDocument("2026-03-02", "1:1", "indexed", "a.md")}
        ledger = QuarantineLedger(engine, "documents")
        update = ledger.record_partition("2026-03-02", [Rejection("b", "b.pdf", None, "encrypted", "locked")], ["a"])
        assert update.new == 1 and [e.reason for e in ledger.entries()] == ["encrypted"]
        engine.dispose()
    finally:
        databases.close()
        servers.close()


def test_processes_that_open_a_fresh_state_database_at_once_all_get_its_tables(
    postgres_server: Postgres, postgres_database: str
) -> None:
    """Celery workers on several hosts start their first steps together on a new deployment:
    PostgreSQL's CREATE TABLE races on its catalog unless one creates and the others wait."""
    opener = (
        "import sys; from hyperion_pipelines.state.database import open_engine; "
        "from hyperion_pipelines.state.manifest import DocumentManifest; "
        "print(DocumentManifest(open_engine(sys.argv[1]), 'documents').indexed())"
    )
    url = postgres_server.sqlalchemy_url(postgres_database)
    openers = [
        subprocess.Popen([sys.executable, "-c", opener, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outcomes = [
        (p.wait(timeout=120), p.stdout.read() if p.stdout else "", p.stderr.read() if p.stderr else "") for p in openers
    ]
    assert [(code, out.strip()) for code, out, _ in outcomes] == [(0, "{}")] * 6, [err[-500:] for *_, err in outcomes]


EVERY_MINUTE_LOCATION = """
from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines_tests.support.sample_pipeline import default_spec
from hyperion_pipelines.settings import Settings

settings = Settings.from_env()
spec = default_spec(settings)
spec = spec.model_copy(update={"schedules": spec.schedules.model_copy(update={"reconcile_cron": "* * * * *"})})
defs = build_definitions(settings, [spec])
"""


def tick_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select type, count(*) from job_ticks group by type")).all()
    finally:
        engine.dispose()
    return {kind: count for kind, count in rows}


def test_the_daemon_carries_on_when_postgres_restarts_under_it(
    hyperion_env: Settings, processes: list[subprocess.Popen], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The instance storage and the state database on a PostgreSQL server of the test's own, which
    goes away for longer than a sensor interval while the daemon runs. Without a restart of its
    own, the daemon carries on: an upload made during the outage is indexed after it, the
    reconcile schedule (every minute here) and the sensors tick again, and every daemon
    heartbeats."""
    from dagster._daemon.types import DaemonHeartbeat

    from hyperion_pipelines.cli import EMBEDDED_INSTANCE_YAML

    from ..support.exact_index import assert_index_matches_uploads
    from ..support.postgres import fresh_database, own_server

    with own_server() as own:
        database = next(fresh_database(own.postgres))
        url = own.postgres.sqlalchemy_url(database)
        monkeypatch.setenv("HYPERION_STATE_DB_URL", url)
        config = yaml.safe_load(EMBEDDED_INSTANCE_YAML)
        config["storage"] = {"postgres": {"postgres_url": url.replace("postgresql+psycopg", "postgresql+psycopg2", 1)}}
        (hyperion_env.dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "location.py").write_text(EVERY_MINUTE_LOCATION)
        workspace = tmp_path / "workspace.yaml"
        workspace.write_text(yaml.safe_dump({"load_from": [{"python_file": str(tmp_path / "location.py")}]}))
        uploads = hyperion_env.uploads_dir
        (uploads / "bees.txt").write_text("Honeybees cluster in winter and shiver to keep the queen warm in the hive.")
        daemon_log = tmp_path / "daemon.log"
        daemon = start(
            processes, str(BIN / "dagster-daemon"), "run", "-w", str(workspace), env=dict(os.environ), log=daemon_log
        )

        def sensor_runs(count: int) -> list:
            """The upload sensor's runs once there are ``count`` of them, every run finished. The
            reconcile schedule's runs come in between: wait for one more run in all each time."""
            total = count
            while True:
                runs = [r for r in wait_for_runs(total) if r.tags.get("hyperion/trigger") == "upload-sensor"]
                if len(runs) >= count:
                    return runs
                total += 1

        assert [r.status for r in sensor_runs(1)] == [DagsterRunStatus.SUCCESS], tail(daemon_log)
        own.stop()
        time.sleep(10)
        (uploads / "tides.txt").write_text("Tides rise and fall twice a day as the moon's gravity pulls on the oceans.")
        time.sleep(15)  # at least one sensor interval with the database gone
        own.start()
        back, after_restart = time.time(), tick_counts(url)

        runs = sensor_runs(2)
        assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] * 2, tail(daemon_log)
        assert runs[1].tags["hyperion/changes"] == "1 added, 0 edited, 0 deleted"
        deadline = time.monotonic() + 150
        beats: dict[str, DaemonHeartbeat] = {}
        ticks = after_restart
        while time.monotonic() < deadline:
            with DagsterInstance.get() as instance:
                beats = instance.get_daemon_heartbeats()
            ticks = tick_counts(url)
            fresh = beats and all(beat.timestamp > back for beat in beats.values())
            if fresh and all(ticks.get(kind, 0) > after_restart.get(kind, 0) for kind in ("SCHEDULE", "SENSOR")):
                break
            time.sleep(3)
        assert daemon.poll() is None, tail(daemon_log)
        assert "Retrying failed database connection" in daemon_log.read_text()  # the outage was felt
        assert ticks.get("SCHEDULE", 0) > after_restart.get("SCHEDULE", 0), (after_restart, ticks)
        assert ticks.get("SENSOR", 0) > after_restart.get("SENSOR", 0), (after_restart, ticks)
        assert {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR", "MONITORING"} <= set(beats), sorted(beats)
        stale = {name: beat.timestamp for name, beat in beats.items() if beat.timestamp <= back}
        assert not stale, (stale, back, tail(daemon_log))
        assert assert_index_matches_uploads(hyperion_env) == 2
