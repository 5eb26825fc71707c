"""The embedded instance's run launcher tells run monitoring whether a run's worker process lives,
from the process id, host and start time it recorded (the end-to-end case, a run worker killed
under the daemon, is in test_faults.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml
from dagster import DagsterInstance
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id

from hyperion_pipelines.cli import EMBEDDED_INSTANCE_YAML
from hyperion_pipelines.instance.run_launcher import (
    HOST_TAG,
    PID_TAG,
    STARTED_TAG,
    LocalRunLauncher,
    _stop_worker,
    process_start_ticks,
    worker_status,
)
from hyperion_pipelines.settings import Settings

HOST = socket.gethostname()


def tags_of(process: subprocess.Popen, started: int | None = None) -> dict[str, str]:
    ticks = process_start_ticks(process.pid) if started is None else started
    return {PID_TAG: str(process.pid), HOST_TAG: HOST, STARTED_TAG: str(ticks)}


def test_a_live_worker_is_running_and_a_killed_one_failed_before_and_after_it_is_reaped() -> None:
    process = subprocess.Popen(["sleep", "60"])
    tags = tags_of(process)
    try:
        assert worker_status(tags, HOST).status == WorkerStatus.RUNNING
        os.kill(process.pid, signal.SIGKILL)
        # Not yet reaped, the killed worker is a zombie: gone all the same.
        deadline = time.monotonic() + 10
        while (health := worker_status(tags, HOST)).status == WorkerStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        assert health.status == WorkerStatus.FAILED and "has exited" in health.msg
    finally:
        process.kill()
        process.wait()
    gone = worker_status(tags, HOST)
    assert gone.status == WorkerStatus.FAILED and "no longer exists" in gone.msg


def test_a_process_id_reused_by_another_program_is_not_taken_for_the_worker() -> None:
    process = subprocess.Popen(["sleep", "60"])
    try:
        ticks = process_start_ticks(process.pid)
        assert ticks is not None
        reused = worker_status(tags_of(process, started=ticks - 1), HOST)
        assert reused.status == WorkerStatus.FAILED and "reused" in reused.msg
    finally:
        process.kill()
        process.wait()


def test_runs_it_cannot_see_are_left_alone() -> None:
    """Run monitoring fails a run on any answer but RUNNING: a run executed in its own process
    (``hyperion ingest``) has no worker recorded, and another host's processes are not visible."""
    on_another_host = worker_status({PID_TAG: "1", HOST_TAG: "some-other-host", STARTED_TAG: "1"}, HOST)
    assert on_another_host.status == WorkerStatus.RUNNING and "some-other-host" in on_another_host.msg
    in_process = worker_status({}, HOST)
    assert in_process.status == WorkerStatus.RUNNING and "not launched by this launcher" in in_process.msg


def test_the_embedded_instance_uses_it_with_run_monitoring_on(hyperion_env: Settings) -> None:
    (hyperion_env.dagster_home / "dagster.yaml").write_text(EMBEDDED_INSTANCE_YAML)
    with DagsterInstance.get() as instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
    config = yaml.safe_load(EMBEDDED_INSTANCE_YAML)
    assert config["run_monitoring"]["max_resume_run_attempts"] == 0  # retried as a new run, from failure


def started_run() -> DagsterRun:
    return DagsterRun(job_name="ingest", run_id=make_new_run_id(), status=DagsterRunStatus.STARTED)


def test_a_terminated_worker_that_does_not_stop_is_killed_after_the_grace_period_and_its_run_canceled(
    tmp_path: Path,
) -> None:
    ignores_sigterm = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen([sys.executable, "-c", ignores_sigterm], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        started = process_start_ticks(process.pid)
        with DagsterInstance.local_temp(str(tmp_path)) as instance:
            run = instance.add_run(started_run())
            instance.report_run_canceling(run)
            os.kill(process.pid, signal.SIGTERM)  # ignored
            time.sleep(0.5)
            assert process.poll() is None
            _stop_worker(instance.get_ref(), run.run_id, process.pid, started, grace_s=1.0)
            assert process.wait(timeout=10) == -signal.SIGKILL
            canceled = instance.get_run_by_id(run.run_id)
            assert canceled is not None and canceled.status == DagsterRunStatus.CANCELED
    finally:
        process.kill()
        process.wait()


def test_a_worker_that_stops_by_itself_is_left_to_report_its_own_end(tmp_path: Path) -> None:
    process = subprocess.Popen(["sleep", "0.2"])
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        run = instance.add_run(started_run())
        instance.report_run_canceling(run)
        _stop_worker(instance.get_ref(), run.run_id, process.pid, process_start_ticks(process.pid), grace_s=5.0)
        assert process.wait(timeout=10) == 0
        still = instance.get_run_by_id(run.run_id)
        assert still is not None and still.status == DagsterRunStatus.CANCELING
