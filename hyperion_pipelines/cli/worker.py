"""``hyperion worker``: a Celery worker that runs steps of runs on ``HYPERION_EXECUTOR=celery``."""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sys

from hyperion_pipelines.cli.common import CommandError
from hyperion_pipelines.settings import Settings


def worker_command(name: str, loglevel: str) -> list[str]:
    """The Celery worker that runs steps of runs on ``HYPERION_EXECUTOR=celery``: dagster-celery's
    app and queue, with the settings of :func:`worker_environment`. One step at a time, in one
    thread of the worker's process (``threads`` pool, concurrency 1), not in its main thread
    (``solo``): the main thread keeps the broker connection alive (heartbeats, acknowledgements,
    reconnecting) while a step runs for minutes. Under ``solo`` a step blocked all of that: a
    step that ended while RabbitMQ restarted could not be acknowledged and the worker never
    consumed again (seen in test_celery; celery/celery#3773), and a step longer than two missed
    heartbeats would lose its connection. Not prefork: the parser sandbox starts child processes,
    which a prefork pool's daemonic children may not. Start more workers for more steps at once.
    ``--concurrency 1`` also sizes the prefetch (multiplier x concurrency): with more, a busy
    worker reserved a second step while another worker sat idle (seen with ``rabbitmqctl
    list_channels``)."""
    return [
        sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker",
        "--pool", "threads", "--concurrency", "1", "-n", name, "-l", loglevel,
        "--task-events",  # for Flower
    ]  # fmt: skip


def worker_environment(settings: Settings) -> dict[str, str]:
    """The environment of a worker: this one, plus the folder of the ``dagster_celery_config``
    module (broker, result backend, late acknowledgement) on PYTHONPATH."""
    from hyperion_pipelines.orchestration.execution import celery_config_module

    folder = settings.home / "celery"
    folder.mkdir(parents=True, exist_ok=True)
    # Atomically: workers starting together (compose replicas) share the folder on one volume.
    partial = folder / f"dagster_celery_config.py.{os.getpid()}"
    partial.write_text(celery_config_module(settings))
    os.replace(partial, folder / "dagster_celery_config.py")
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker here (it replaces this process, so signals reach it directly)."""
    if importlib.util.find_spec("dagster_celery") is None:
        raise CommandError("the worker needs dagster-celery: pip install 'hyperion-pipelines[celery]'")
    settings = Settings.from_env()
    command = worker_command(args.name or f"hyperion@{socket.gethostname()}", args.loglevel)
    os.execve(sys.executable, command, worker_environment(settings))
    return 0  # not reached
