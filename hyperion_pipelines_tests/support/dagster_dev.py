"""``dagster dev`` (webserver and daemon) started in the repository root for a test, waited for
until its webserver answers, and stopped with its whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..conftest import REPO


@contextmanager
def dagster_dev(
    port: int, env: Mapping[str, str], log: Path, extra_args: Sequence[str] = (), timeout_s: float = 240
) -> Iterator[subprocess.Popen]:
    """Serve ``workspace.yaml`` on ``port`` (with ``extra_args``, e.g. ``-h 127.0.0.1``); output goes to ``log``."""
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "dev",
        *extra_args,
        "-p",
        str(port),
        "-w",
        "workspace.yaml",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, f"the webserver did not answer: {log.read_text()[-3000:]}"
                time.sleep(1)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
