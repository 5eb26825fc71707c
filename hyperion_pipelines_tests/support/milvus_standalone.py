"""A real Milvus server for the tests that need one: Milvus 2.3.5 standalone from the PyPI
package ``milvus`` (the server binary with embedded etcd and local storage), on a fixed port and
data folder, so that a test can kill it and start it again where the pipeline expects it.

It is older than the Milvus a deployment runs (docker-compose.yml: 2.6) and the newest Milvus
server that installs from PyPI: the pipeline meets it with its fallbacks for servers before 2.4
(Trie scalar indexes, see ``scalar_index_type``)."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from milvus import MilvusServer, MilvusServerConfig

from .ports import free_port, wait_for_port


class _Config(MilvusServerConfig):
    def try_bind_port(self, port: int) -> socket.socket | None:
        # The package probes each port by binding it. A restarted server's port still has the
        # killed one's connections in TIME_WAIT, which only SO_REUSEADDR (the server's own
        # listener sets it) may bind over.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            return sock
        except OSError:
            sock.close()
            return None


class MilvusStandalone:
    """Same interface as ``milvus_lite_server.MilvusLiteServer``: ``uri``, ``port``, ``start``, ``kill``."""

    def __init__(self, data_dir: Path):
        """``data_dir``: the data, and the server's logs under ``logs/``."""
        self.data_dir, self.port = data_dir, free_port()
        self.server: MilvusServer | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = _Config(proxy_port=self.port)
        server = MilvusServer(config)
        server.show_startup_banner = False
        server.set_base_dir(str(self.data_dir))
        server.start()  # returns once the server's health endpoint answers
        self.server = server
        wait_for_port(self.port, server.server_proc)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        if self.server is not None and self.server.server_proc is not None:
            process = self.server.server_proc
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
            self.server.server_proc = None
            self.server.stop()  # closes its log files
            self.server = None
