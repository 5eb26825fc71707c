"""A real HTTP server on 127.0.0.1 at a free port, for the test doubles of remote services."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """``with LoopbackServer(Handler) as url:`` serves ``Handler`` until the block ends."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def recording_server(method: str, status: int = 200) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A server that answers every ``method`` request with ``status`` and records (path, body)."""
    received: list[tuple[str, bytes]] = []

    def record(handler: BaseHTTPRequestHandler) -> None:
        received.append((handler.path, handler.rfile.read(int(handler.headers.get("Content-Length", 0)))))
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    handler = type(
        "Recorder",
        (BaseHTTPRequestHandler,),
        {f"do_{method}": record, "log_message": lambda self, *args: None},
    )
    with LoopbackServer(handler) as url:
        yield url, received
