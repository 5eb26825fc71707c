"""milvus-lite served by URI in a process of its own, which a test can kill and start again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .ports import free_port, wait_for_port


class MilvusLiteServer:
    """milvus-lite's gRPC server in its own process, on a fixed port and data folder, so that it
    can be killed and started again where the pipeline expects it."""

    def __init__(self, data_dir: Path, log: Path):
        self.data_dir, self.log, self.port = data_dir, log, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for_port(self.port, self.process)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
