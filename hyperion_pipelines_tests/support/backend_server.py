"""A real HTTP server on loopback that implements the backend document API contract.

Faults are injected per path: a queue of responses (status codes, delays, truncated bodies) served
before the normal answer, so tests can prove retries against real sockets and real timeouts.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .loopback import LoopbackServer


@dataclass
class Fault:
    status: int = 503
    delay_s: float = 0.0
    body: bytes = b"temporarily unavailable"
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"
    content_length: int | None = None  # declared instead of the body's true length (a lying server)


@dataclass
class StoredDocument:
    id: str
    name: str
    content: bytes
    uploaded_at: datetime
    path: str | None = None


@dataclass
class FakeBackend:
    token: str
    documents: dict[str, StoredDocument] = field(default_factory=dict)
    deletions: list[tuple[str, datetime]] = field(default_factory=list)  # (id, deleted_at)
    faults: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, auth header)
    page_size_cap: int = 2  # small pages, so pagination is always exercised
    # Served as they are, after the documents of a listing's first page: entries that break the
    # contract (a size that is no number, no upload time, ...) beside good ones.
    raw_entries: list[Any] = field(default_factory=list)
    raw_deletions: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, doc: StoredDocument) -> None:
        self.documents[doc.id] = doc

    def delete(self, doc_id: str, when: datetime | None = None) -> None:
        with self.lock:
            del self.documents[doc_id]
            self.deletions.append((doc_id, when or datetime.now(UTC)))

    def inject(self, path: str, *faults: Fault) -> None:
        self.faults[path].extend(faults)

    def listing(self, query: dict[str, list[str]]) -> dict[str, Any]:
        after = datetime.fromisoformat(query["uploaded_after"][0].replace("Z", "+00:00"))
        before = datetime.fromisoformat(query["uploaded_before"][0].replace("Z", "+00:00"))
        limit = min(int(query.get("limit", ["100"])[0]), self.page_size_cap)
        offset = int(query.get("page_token", ["0"])[0])
        matching = sorted(
            (d for d in self.documents.values() if after <= d.uploaded_at < before), key=lambda d: (d.uploaded_at, d.id)
        )
        page = matching[offset : offset + limit]
        more = offset + limit < len(matching)
        documents: list[Any] = [
            {
                "id": d.id,
                "name": d.name,
                "size": len(d.content),
                "uploaded_at": d.uploaded_at.isoformat(),
                **({"path": d.path} if d.path else {}),
            }
            for d in page
        ]
        if offset == 0:
            documents.extend(self.raw_entries)
        return {"documents": documents, "next_page_token": str(offset + limit) if more else None}

    def deleted(self, query: dict[str, list[str]]) -> dict[str, Any]:
        after = datetime.fromisoformat(query["deleted_after"][0].replace("Z", "+00:00"))
        before = datetime.fromisoformat(query["deleted_before"][0].replace("Z", "+00:00"))
        limit = min(int(query.get("limit", ["100"])[0]), self.page_size_cap)
        offset = int(query.get("page_token", ["0"])[0])
        matching = sorted((when, i) for i, when in self.deletions if after <= when < before)
        page = matching[offset : offset + limit]
        return {
            "deletions": [
                *({"id": i, "deleted_at": when.isoformat()} for when, i in page),
                *(self.raw_deletions if offset == 0 else []),
            ],
            "next_page_token": str(offset + limit) if offset + limit < len(matching) else None,
        }


TOKEN = "test-token-3f9a"  # the bearer token the tests give the fake backend


def _handler(backend: FakeBackend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str = "application/json",
            headers: dict | None = None,
            length: int | None = None,
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlsplit(self.path)
            with backend.lock:
                backend.requests.append((url.path, self.headers.get("Authorization")))
                fault = backend.faults[url.path].popleft() if backend.faults[url.path] else None
            if fault is not None:
                time.sleep(fault.delay_s)
                return self._send(fault.status, fault.body, fault.content_type, fault.headers, fault.content_length)
            if self.headers.get("Authorization") != f"Bearer {backend.token}":
                return self._send(401, b'{"error": "unauthorized"}')
            if url.path == "/documents":
                with backend.lock:
                    body = backend.listing(parse_qs(url.query))
                return self._send(200, json.dumps(body).encode())
            if url.path == "/deletions":
                with backend.lock:
                    body = backend.deleted(parse_qs(url.query))
                return self._send(200, json.dumps(body).encode())
            parts = url.path.split("/")
            if len(parts) == 4 and parts[1] == "documents" and parts[3] == "content":
                doc = backend.documents.get(unquote(parts[2]))
                if doc is None:
                    return self._send(404, b'{"error": "not found"}')
                return self._send(200, doc.content, "application/octet-stream")
            return self._send(404, b'{"error": "no such route"}')

    return Handler


class BackendServer(LoopbackServer):
    """``with BackendServer(backend) as url:`` serves ``backend`` on 127.0.0.1 at a free port."""

    def __init__(self, backend: FakeBackend):
        super().__init__(_handler(backend))
        self.backend = backend
