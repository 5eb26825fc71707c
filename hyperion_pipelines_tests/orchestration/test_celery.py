"""Runs on Dagster's Celery executor: real RabbitMQ, two workers (one on a second host, a network
namespace), PostgreSQL instance and state storage, a Milvus server (2.3.5 standalone), Flower
watching the tasks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import suppress
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from kombu import Connection
from kombu.exceptions import ChannelError
from pymilvus import MilvusClient

from hyperion_pipelines.settings import Settings

from ..conftest import REPO, UPLOAD_DAY, UPLOAD_TIME, set_upload_time
from ..support import netns
from ..support.celery_workers import BROKER_PORT, postgres_url, running, start_run, start_worker, wait_for_workers
from ..support.exact_index import assert_index_matches_uploads, generated_text
from ..support.milvus_standalone import MilvusStandalone
from ..support.ports import free_port, wait_for_port
from ..support.postgres import Postgres, fresh_database

SECOND_DAY = "2026-01-16"
STEPS = {"raw_documents", "parsed_documents", "quarantined_documents", "document_chunks", "chunk_embeddings"}
RUN_TAG = uuid.uuid4().hex[:6]  # worker names are the broker's: unique per test run
WORKERS = (f"w1-{RUN_TAG}@host", f"w2-{RUN_TAG}@second-host")

pytestmark = pytest.mark.skipif(
    not netns.port_open(BROKER_PORT) or netns.available() is not None,
    reason=f"needs RabbitMQ on 127.0.0.1:{BROKER_PORT} and {netns.available() or 'namespaces'}",
)


def write_day(uploads: Path, day_offset: int, count: int) -> None:
    for i in range(count):
        path = uploads / f"day{day_offset}/doc-{i:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Day {day_offset} document {i}\n\n{generated_text(100 * day_offset + i, 40)}\n")
        set_upload_time(path, UPLOAD_TIME + timedelta(days=day_offset))


def purge_step_queue(broker: str) -> None:
    """Empty dagster-celery's queue on the shared RabbitMQ: a step an earlier, interrupted test
    run left there would go to this test's workers (acknowledged late, it stays until done)."""
    with Connection(broker) as connection, suppress(ChannelError):  # ChannelError: no such queue yet
        connection.default_channel.queue_purge("dagster")


@pytest.fixture
def celery_stack(
    hyperion_env: Settings, postgres_server: Postgres, postgres_database: str, tmp_path: Path, monkeypatch
) -> Iterator[dict]:
    """Environment and services of a Celery deployment; yields what the test needs to reach them."""
    purge_step_queue(hyperion_env.celery_broker)
    milvus = MilvusStandalone(tmp_path / "milvus")
    milvus.start()
    state = fresh_database(postgres_server)
    state_db = next(state)
    monkeypatch.setenv("HYPERION_EXECUTOR", "celery")
    monkeypatch.setenv("HYPERION_MILVUS_URI", milvus.uri)
    monkeypatch.setenv("HYPERION_STATE_DB_URL", postgres_url(postgres_server, state_db, "postgresql+psycopg"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    instance_yaml = {
        "telemetry": {"enabled": False},
        "storage": {
            "postgres": {"postgres_url": postgres_url(postgres_server, postgres_database, "postgresql+psycopg2")}
        },
    }
    (hyperion_env.dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml))
    ports = [BROKER_PORT, milvus.port] + ([] if postgres_server.host.startswith("/") else [postgres_server.port])
    try:
        yield {"milvus": milvus, "ports": ports}
    finally:
        milvus.kill()
        next(state, None)


def worker_prefetch(broker: str) -> dict[str, int]:
    """Each worker's prefetch count, as the workers report it (``celery inspect stats``)."""
    stats = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "dagster_celery.app", "-b", broker,
         "inspect", "stats", "--json", "--timeout", "5"],
        capture_output=True, text=True, cwd=REPO, check=True,
    )  # fmt: skip
    return {name: found["prefetch_count"] for name, found in json.loads(stats.stdout.strip().splitlines()[-1]).items()}


def flower_tasks(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks", timeout=10) as response:
        return json.loads(response.read())


def test_two_days_run_on_celery_workers_on_two_hosts_and_the_index_is_exact(
    hyperion_env: Settings, celery_stack: dict, tmp_path: Path
) -> None:
    write_day(hyperion_env.uploads_dir, 0, 12)
    write_day(hyperion_env.uploads_dir, 1, 12)
    settings = Settings.from_env()
    flower_port = free_port()
    with netns.second_host(celery_stack["ports"]) as host, running() as processes:
        flower = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dagster_celery.app", "-b", settings.celery_broker, "flower",
             f"--port={flower_port}", "--address=127.0.0.1"],
            env={**os.environ, "FLOWER_UNAUTHENTICATED_API": "true"}, cwd=REPO,
            stdout=(tmp_path / "flower.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(flower)
        wait_for_port(flower_port, flower)
        processes.append(start_worker(WORKERS[0], tmp_path / "w1.log"))
        remote = start_worker(WORKERS[1], tmp_path / "w2.log", prefix=host.command())
        processes.append(remote)
        wait_for_workers(WORKERS)
        assert netns.namespace_of(remote.pid) == host.name  # the second worker lives on the other host
        # A worker reserves no step beyond the one it runs: a step held by a busy worker would
        # wait while another worker idles (Celery sizes the prefetch by the concurrency, which
        # defaults to the cores whatever the pool).
        prefetch = worker_prefetch(settings.celery_broker)
        assert {name: prefetch.get(name) for name in WORKERS} == {name: 1 for name in WORKERS}

        runs = {day: start_run(day, tmp_path / f"run-{day}.log") for day in (UPLOAD_DAY, SECOND_DAY)}
        outputs = {day: run.communicate(timeout=900)[0] for day, run in runs.items()}
        results = {day: json.loads(out.strip().splitlines()[-1]) for day, out in outputs.items()}
        assert {day: r["success"] for day, r in results.items()} == {UPLOAD_DAY: True, SECOND_DAY: True}, (
            tmp_path / f"run-{UPLOAD_DAY}.log"
        ).read_text()[-3000:]
        tasks = flower_tasks(flower_port)

    # Every step of both runs ran as a Celery task; both workers, on both hosts, took some.
    with DagsterInstance.get() as instance:
        for result in results.values():
            run = instance.get_run_by_id(result["run_id"])
            assert run is not None and run.status == DagsterRunStatus.SUCCESS
    taken = [workers_by_step(result["run_id"]) for result in results.values()]
    assert [set(steps) for steps in taken] == [{*STEPS, "vector_index"}] * 2
    ran_on = [worker for steps in taken for workers in steps.values() for worker in workers]
    assert len(ran_on) == 2 * (len(STEPS) + 1) and set(ran_on) == set(WORKERS)
    succeeded = [t for t in tasks.values() if t.get("state") == "SUCCESS"]
    assert len(succeeded) == len(ran_on) and {t["worker"] for t in succeeded} == set(WORKERS)
    assert assert_index_matches_uploads(Settings.from_env()) > 0  # the Milvus server's, not the file's
    # A server before Milvus 2.4: the lookup fields are indexed with the Trie it builds for strings.
    client = MilvusClient(uri=celery_stack["milvus"].uri)
    assert client.get_server_version().startswith("v2.3.")
    [collection] = client.list_collections()
    for field in ("document_id", "partition_date"):
        assert client.describe_index(collection, field)["index_type"] == "Trie"


def workers_by_step(run_id: str) -> dict[str, set[str]]:
    """The Celery workers that took each step of the run (from the executor's engine events)."""
    taken: dict[str, set[str]] = {}
    with DagsterInstance.get() as instance:
        for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
            data = entry.dagster_event.engine_event_data if entry.dagster_event else None
            worker = data.metadata.get("Celery worker") if data else None
            if worker is not None and entry.step_key:
                taken.setdefault(entry.step_key, set()).add(worker.value)
    return taken


def wait_for_step_start(step: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with DagsterInstance.get() as instance:
            for run in instance.get_runs():
                starts = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
                if any(event.step_key == step for event in starts):
                    return
        time.sleep(0.2)
    raise AssertionError(f"no run started {step} within {timeout_s} s")


def test_a_worker_killed_mid_step_leaves_the_step_to_another_and_the_index_is_exact(
    hyperion_env: Settings, celery_stack: dict, tmp_path: Path
) -> None:
    """The second host's worker dies (SIGKILL) while it runs ``chunk_embeddings``: the step was
    not acknowledged, so the broker hands it to the worker started after, the run succeeds and
    the index is exact."""
    write_day(hyperion_env.uploads_dir, 0, 40)
    with netns.second_host(celery_stack["ports"]) as host, running() as processes:
        remote = start_worker(WORKERS[1], tmp_path / "w2.log", prefix=host.command())
        processes.append(remote)
        wait_for_workers(WORKERS[1:])
        run = start_run(UPLOAD_DAY, tmp_path / "run.log")
        processes.append(run)
        wait_for_step_start("chunk_embeddings")
        os.kill(remote.pid, signal.SIGKILL)  # `ip netns exec` became the worker (no fork)
        remote.wait(timeout=30)
        processes.append(start_worker(WORKERS[0], tmp_path / "w1.log"))
        out, _ = run.communicate(timeout=600)
        result = json.loads(out.strip().splitlines()[-1])
        assert result["success"], (tmp_path / "run.log").read_text()[-3000:]

    taken = workers_by_step(result["run_id"])
    assert taken["chunk_embeddings"] == {WORKERS[1], WORKERS[0]}  # begun on the dead worker, done on the other
    assert taken["vector_index"] == {WORKERS[0]}
    assert assert_index_matches_uploads(Settings.from_env()) > 0


def run_status(run_id: str) -> DagsterRunStatus:
    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        return run.status


def rerun_if_failed(result: dict, day: str, log: Path) -> dict:
    """A run that failed cleanly is run again, as an operator (or run retries) would."""
    if result["success"]:
        return result
    assert run_status(result["run_id"]) == DagsterRunStatus.FAILURE  # ended, not left running
    again = start_run(day, log)
    out, _ = again.communicate(timeout=600)
    return json.loads(out.strip().splitlines()[-1])


def restart_rabbitmq() -> None:
    """Stop and start the broker application, as a RabbitMQ restart does: every connection to it
    (workers, the run's executor) is dropped and must be made again."""
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    time.sleep(3)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    deadline = time.monotonic() + 60
    while not netns.port_open(BROKER_PORT):
        assert time.monotonic() < deadline, "RabbitMQ did not come back"
        time.sleep(0.5)


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to restart the broker")
def test_a_rabbitmq_restart_mid_run_ends_the_run_cleanly_and_a_rerun_leaves_the_index_exact(
    hyperion_env: Settings, celery_stack: dict, tmp_path: Path
) -> None:
    write_day(hyperion_env.uploads_dir, 0, 40)
    with running() as processes:
        processes.extend(start_worker(name, tmp_path / f"w{i}.log") for i, name in enumerate(WORKERS))
        wait_for_workers(WORKERS)
        run = start_run(UPLOAD_DAY, tmp_path / "run.log")
        processes.append(run)
        wait_for_step_start("chunk_embeddings")
        restart_rabbitmq()
        out, _ = run.communicate(timeout=600)  # the run ends: it does not wait forever on a lost reply
        result = rerun_if_failed(json.loads(out.strip().splitlines()[-1]), UPLOAD_DAY, tmp_path / "rerun.log")
        assert result["success"], (tmp_path / "run.log").read_text()[-3000:]
        wait_for_workers(WORKERS)  # both workers found the broker again
    assert assert_index_matches_uploads(Settings.from_env()) > 0


def test_a_milvus_restart_under_two_parallel_writers_is_retried_and_the_index_is_exact(
    hyperion_env: Settings, celery_stack: dict, tmp_path: Path
) -> None:
    """Two days index at once on two workers; the Milvus server is killed as the first of them
    starts writing and comes back on the same data three seconds later. ``vector_index`` retries
    (its retry policy); a run that still fails is run again; the index is exact."""
    write_day(hyperion_env.uploads_dir, 0, 24)
    write_day(hyperion_env.uploads_dir, 1, 24)
    milvus = celery_stack["milvus"]
    with running() as processes:
        processes.extend(start_worker(name, tmp_path / f"w{i}.log") for i, name in enumerate(WORKERS))
        wait_for_workers(WORKERS)
        runs = {day: start_run(day, tmp_path / f"run-{day}.log") for day in (UPLOAD_DAY, SECOND_DAY)}
        processes.extend(runs.values())
        wait_for_step_start("vector_index")
        milvus.kill()
        time.sleep(3)
        milvus.start()
        results = {}
        for day, run in runs.items():
            out, _ = run.communicate(timeout=900)
            results[day] = rerun_if_failed(json.loads(out.strip().splitlines()[-1]), day, tmp_path / f"rerun-{day}.log")
        assert all(r["success"] for r in results.values()), (tmp_path / f"run-{UPLOAD_DAY}.log").read_text()[-3000:]
    assert assert_index_matches_uploads(Settings.from_env()) > 0
