"""Shared fixtures: an isolated HYPERION_HOME, the sample corpus on a fixed upload day."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, Definitions

from hyperion_pipelines.cli import EMBEDDED_INSTANCE_YAML
from hyperion_pipelines.instance.run_launcher import local_worker_state
from hyperion_pipelines.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = REPO / "hyperion_pipelines" / "sample_corpus"
UPLOAD_DAY = "2026-01-15"
UPLOAD_TIME = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


#: Test modules of pure logic (no pipeline run, browser, Docker or server of their own): the fast
#: tier, ``pytest -m fast``, for the edit-test loop; the whole suite is CI's.
FAST_MODULES = frozenset(
    {
        "test_change_feed", "test_chunking", "test_definitions_snapshot", "test_docs", "test_fusion", "test_id_set",
        "test_ids", "test_layers", "test_local_bm25", "test_parsing", "test_parts", "test_sync", "test_upload_changes",
    }
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in FAST_MODULES:
            item.add_marker(pytest.mark.fast)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # "No tests collected" (exit code 5) must fail CI, not pass it.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def ensure_debian_packages(binary: Path, *packages: str) -> Path:
    """``binary`` from Debian's packages, installed with apt-get when missing. Tests that need it
    fail, never skip, when it cannot be installed: a feature nobody could use is a failure."""
    if not binary.exists():
        apt = ["apt-get", "install", "-y", "-q", *packages]
        command = apt if os.geteuid() == 0 else ["sudo", "-n", *apt]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
        assert binary.exists(), f"{binary} is missing and `{' '.join(command)}` failed: {result.stderr[-2000:]}"
    return binary


def run_ingest(defs: Definitions, instance: DagsterInstance, partition_key: str = UPLOAD_DAY, **kwargs: Any):
    """One run of the ingest job for a day, in this process; failures are returned, not raised."""
    return defs.resolve_job_def("ingest_documents").execute_in_process(
        instance=instance, partition_key=partition_key, raise_on_error=False, **kwargs
    )


def set_upload_time(path: Path, moment: datetime = UPLOAD_TIME) -> None:
    os.utime(path, (moment.timestamp(), moment.timestamp()))


@pytest.fixture(scope="session", autouse=True)
def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One folder of ONNX exports for the whole session (HYPERION_MODELS_DIR, inherited by the
    processes tests start): the default auto backend exports the model there once, on first use,
    instead of once per test home."""
    folder = tmp_path_factory.getbasetemp() / "models"
    saved = os.environ.get("HYPERION_MODELS_DIR")
    os.environ["HYPERION_MODELS_DIR"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("HYPERION_MODELS_DIR", None)
    else:
        os.environ["HYPERION_MODELS_DIR"] = saved


TEST_PART_DOCUMENTS = 4
TEST_PARSE_WORKERS = 2
#: Chunking in the step's process: starting chunker processes costs each pipeline test seconds;
#: the tests that spread chunking over processes set HYPERION_CHUNK_WORKERS themselves.
TEST_CHUNK_WORKERS = 1


@pytest.fixture
def hyperion_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_models_dir: Path) -> Settings:
    """A private HYPERION_HOME with an empty uploads folder; returns the resolved settings."""
    for name in list(os.environ):
        if name.startswith("HYPERION_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HYPERION_MODELS_DIR", str(shared_models_dir))
    home = tmp_path / "hyperion"
    monkeypatch.setenv("HYPERION_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    # Small parts, so that every pipeline test cuts its day into several (the default is 500).
    monkeypatch.setenv("HYPERION_PART_DOCUMENTS", str(TEST_PART_DOCUMENTS))
    # Two parser processes on any machine, so that parsing side by side is what the tests run.
    monkeypatch.setenv("HYPERION_PARSE_WORKERS", str(TEST_PARSE_WORKERS))
    monkeypatch.setenv("HYPERION_CHUNK_WORKERS", str(TEST_CHUNK_WORKERS))
    (home / "uploads").mkdir(parents=True)
    (home / "dagster").mkdir(parents=True)
    return Settings.from_env()


@pytest.fixture
def sample_uploads(hyperion_env: Settings) -> Path:
    """The sample corpus copied into the uploads folder, every file uploaded on UPLOAD_DAY."""
    uploads = hyperion_env.uploads_dir
    shutil.copytree(SAMPLE_CORPUS, uploads, dirs_exist_ok=True)
    for path in uploads.rglob("*"):
        if path.is_file():
            set_upload_time(path)
    return uploads


@pytest.fixture(scope="session")
def postgres_server():
    """PostgreSQL: the local server when reachable, else a throwaway one (pgserver)."""
    from .support.postgres import local_or_throwaway

    yield from local_or_throwaway()


@pytest.fixture
def postgres_database(postgres_server) -> Iterator[str]:
    from .support.postgres import fresh_database

    yield from fresh_database(postgres_server)


DONE = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def finished(run: DagsterRun) -> bool:
    """The run has ended and so has its run worker process. A worker records the run's end before it
    exits and lets go of milvus-lite's database file; a test that opens that file the moment the
    status reads SUCCESS can find it still locked."""
    if run.status not in DONE:
        return False
    worker = local_worker_state(run.tags, socket.gethostname())
    return worker is None or not worker.alive


@pytest.fixture
def start_daemon(hyperion_env: Settings) -> Iterator[Callable[[], None]]:
    """Starts ``dagster-daemon run`` on the repository's workspace; stops it and its children.
    The instance is the embedded default unless the test wrote its own ``dagster.yaml`` first."""
    config = hyperion_env.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(EMBEDDED_INSTANCE_YAML)
    started: list[subprocess.Popen] = []

    def start() -> None:
        started.append(
            subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                cwd=REPO,
                env=dict(os.environ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # it starts a code server and run workers: stop them all
            )
        )

    yield start
    for process in started:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_for_runs(count: int, timeout_s: float = 240) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with DagsterInstance.get() as instance:
            runs = instance.get_runs(ascending=True)
        if len(runs) >= count and all(finished(r) for r in runs):
            return runs
        time.sleep(2)
    raise AssertionError(f"expected {count} finished runs within {timeout_s} s, have {[r.status for r in runs]}")
