"""A run launcher for one machine whose run workers run monitoring can watch.

Dagster's ``DefaultRunLauncher`` starts each run inside the code server and cannot tell run
monitoring whether that process is still alive: a run worker killed by the OOM killer or a
``kill -9`` leaves its run ``STARTED`` for ever, holding its partition's run slot and its
concurrency pool slots. This launcher starts the run worker itself (``dagster api execute_run``,
the command every container-based launcher runs) as a child process and records its process id,
host and start time in the run's tags. Run monitoring then asks :func:`worker_status`, which reads
``/proc``: a worker that is gone while its run is still ``STARTED`` marks the run failed, and the
instance's run retries re-execute it from the failed step.

The embedded default (``dagster.yaml``) uses it; production (``deploy/dagster.yaml``) uses
``DockerRunLauncher``, whose health check reads the container's state.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from dagster import DagsterInstance, DagsterRun

from hyperion_pipelines.dagster_internals import (
    CheckRunHealthResult,
    ConfigurableClass,
    ConfigurableClassData,
    ExecuteRunArgs,
    InstanceRef,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
    get_python_environment_entry_point,
)

PID_TAG = "hyperion/worker_pid"
HOST_TAG = "hyperion/worker_host"
#: The worker's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22): a process id
#: reused by another program after the worker died has another start time.
STARTED_TAG = "hyperion/worker_started"


@dataclass(frozen=True)
class ProcessState:
    alive: bool
    detail: str


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from field 3 (the state) on, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return stat[stat.rindex(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when there is no such process."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def process_state(pid: int, started: int | None) -> ProcessState:
    """Whether the process with this id and start time is still running (a zombie is not)."""
    fields = _stat_fields(pid)
    if fields is None:
        return ProcessState(False, f"run worker process {pid} no longer exists")
    if started is not None and int(fields[19]) != started:
        return ProcessState(False, f"run worker process {pid} no longer exists (its id was reused)")
    if fields[0] in ("Z", "X"):
        return ProcessState(False, f"run worker process {pid} has exited")
    return ProcessState(True, f"run worker process {pid} is running")


def worker_status(tags: Mapping[str, str], this_host: str) -> CheckRunHealthResult:
    """Run monitoring's answer for a run's worker, from the tags :class:`LocalRunLauncher` wrote.

    Monitoring fails a ``STARTED`` run on any answer but RUNNING or SUCCESS, so a worker this
    launcher cannot see is reported RUNNING: a run executed in its own process (``hyperion
    ingest``, ``execute_in_process``) has no worker recorded, and another machine's processes are
    not in this ``/proc``. Those runs are left to ``dagster/max_runtime``.
    """
    if PID_TAG not in tags:
        return CheckRunHealthResult(WorkerStatus.RUNNING, msg="no run worker recorded: not launched by this launcher")
    state = local_worker_state(tags, this_host)
    if state is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, msg=f"the run worker runs on {tags.get(HOST_TAG)}")
    return CheckRunHealthResult(WorkerStatus.RUNNING if state.alive else WorkerStatus.FAILED, msg=state.detail)


def worker_tags(pid: int) -> dict[str, str]:
    """The tags that name a run's worker process on this machine (see :func:`local_worker_state`)."""
    tags = {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}
    started = process_start_ticks(pid)
    if started is not None:
        tags[STARTED_TAG] = str(started)
    return tags


def worker_gone(tags: Mapping[str, str]) -> bool:
    """Whether the run's worker is known to have died (a process of this machine that is gone)."""
    state = local_worker_state(tags, socket.gethostname())
    return state is not None and not state.alive


def local_worker_state(tags: Mapping[str, str], this_host: str) -> ProcessState | None:
    """The recorded worker's state, or None when no worker of this machine is recorded."""
    if PID_TAG not in tags or tags.get(HOST_TAG) != this_host:
        return None
    started = tags.get(STARTED_TAG)
    return process_state(int(tags[PID_TAG]), int(started) if started else None)


#: Seconds a terminated run worker has to stop by itself before it is sent SIGKILL.
TERMINATE_GRACE_S = 30.0


def _kill_if_lingering(pid: int, started: int | None, grace_s: float) -> bool:
    """SIGKILL the worker when it is still alive after ``grace_s``; whether it had to be killed."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not process_state(pid, started).alive:
            return False
        time.sleep(0.5)
    if not process_state(pid, started).alive:
        return False
    os.kill(pid, signal.SIGKILL)
    return True


def _stop_worker(instance_ref: InstanceRef, run_id: str, pid: int, started: int | None, grace_s: float) -> None:
    """Wait for a terminated worker to exit, kill it when it lingers, and then mark its run canceled
    if the worker did not: a killed worker reports nothing, and the run would otherwise stay
    ``CANCELING`` until run monitoring's cancel timeout."""
    if not _kill_if_lingering(pid, started, grace_s):
        return
    with DagsterInstance.from_ref(instance_ref) as instance:
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            instance.report_run_canceled(
                run, message=f"Run worker process {pid} did not stop within {grace_s:.0f} s of SIGTERM: killed"
            )


class LocalRunLauncher(RunLauncher, ConfigurableClass):
    """Each run in its own ``dagster api execute_run`` process on this machine, watched by run
    monitoring (``run_monitoring: enabled: true`` in ``dagster.yaml``)."""

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        # Children of this process, reaped when checked so that they do not linger as zombies.
        self._children: dict[int, subprocess.Popen] = {}
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = context.job_code_origin
        if origin is None:  # Dagster gives one for every run it launches through a code location
            raise ValueError(f"run {run.run_id} has no code location origin to launch")
        args = ExecuteRunArgs(job_origin=origin, run_id=run.run_id, instance_ref=self._instance.get_ref())
        # The code location's own interpreter, by path: its entry point is a bare `dagster`, which
        # need not be on the launching process's PATH.
        *_, api, execute, payload = args.get_command_args()
        command = [*get_python_environment_entry_point(origin.executable_path or sys.executable), api, execute, payload]
        # In the launcher's process group, as the default launcher's workers are: stopping the
        # daemon or `dagster dev` stops its runs, and run monitoring marks them failed afterwards.
        process = subprocess.Popen(command)
        self._reap()
        self._children[process.pid] = process
        tags = worker_tags(process.pid)
        self._instance.add_run_tags(run.run_id, tags)
        self._instance.report_engine_event(
            message=f"Launched the run worker, process {process.pid} on {tags[HOST_TAG]}",
            dagster_run=run,
            cls=self.__class__,
        )

    def _reap(self) -> None:
        for pid, process in list(self._children.items()):
            if process.poll() is not None:
                del self._children[pid]

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        self._reap()
        return worker_status(run.tags, socket.gethostname())

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        state = local_worker_state(run.tags, socket.gethostname())
        if state is None or not state.alive:
            detail = state.detail if state else "its worker was not started by this launcher on this machine"
            self._instance.report_engine_event(
                message=f"No run worker to stop: {detail}", dagster_run=run, cls=self.__class__
            )
            return False
        # The run worker turns SIGTERM into an interrupt: its steps stop and it marks the run canceled.
        pid, started = int(run.tags[PID_TAG]), run.tags.get(STARTED_TAG)
        os.kill(pid, signal.SIGTERM)
        # A terminated worker was once seen to mark its run canceled and not exit for minutes,
        # keeping milvus-lite's database file locked (cause not found); one still there after
        # the grace period is killed, as a container runtime's stop does.
        threading.Thread(
            target=_stop_worker,
            args=(self._instance.get_ref(), run_id, pid, int(started) if started else None, TERMINATE_GRACE_S),
            name=f"hyperion-terminate-{pid}",
            daemon=True,
        ).start()
        return True

    def dispose(self) -> None:
        self._reap()
