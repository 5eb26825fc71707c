"""A real OpenAI-compatible ``/embeddings`` server on loopback, backed by the packaged model.

It can be told to misbehave the way a faulty inference service does: answer NaN for texts that
contain a marker, or answer a queue of HTTP error statuses before serving. With ``api_key`` set it
requires ``Authorization: Bearer <api_key>`` and answers 401 otherwise. ``encoding`` says how it
treats OpenAI's ``encoding_format``: honour it (base64 of float32 when asked), ignore it (numbers
always, like some services), or refuse base64 with 422 (like an older service). It records each
request's ``encoding_format`` and the most requests it had in flight at once.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Literal

import numpy as np

from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder

from .loopback import LoopbackServer


@dataclass
class EmbeddingService:
    nan_marker: str | None = None  # texts containing it get a vector of NaN
    api_key: str | None = None  # required as a bearer token when set
    faults: deque[int] = field(default_factory=deque)  # statuses answered, one per request, before serving
    # torch: like a real service's float model, a text's vector does not depend on its batch-mates
    embedder: SentenceTransformerEmbedder = field(default_factory=lambda: SentenceTransformerEmbedder(backend="torch"))
    encoding: Literal["honour", "ignore", "refuse_base64"] = "honour"
    delay_s: float = 0.0  # each answer waits this long, as a busy GPU service does
    formats: list[str | None] = field(default_factory=list)  # each request's encoding_format
    most_in_flight: int = 0
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def answer(self, texts: list[str]) -> list[list[float]]:
        vectors = self.embedder.embed(texts).tolist()
        for i, text in enumerate(texts):
            if self.nan_marker and self.nan_marker in text:
                vectors[i] = [float("nan")] * len(vectors[i])
        return vectors


@contextmanager
def serve_embeddings(service: EmbeddingService) -> Iterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT/v1``) while the server runs."""

    class Handler(BaseHTTPRequestHandler):
        def _refuse(self, status: int) -> None:
            payload = b'{"error": "refused"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if service.faults:
                return self._refuse(service.faults.popleft())
            if service.api_key and self.headers.get("Authorization") != f"Bearer {service.api_key}":
                return self._refuse(401)
            wanted = body.get("encoding_format")
            service.formats.append(wanted)
            if wanted == "base64" and service.encoding == "refuse_base64":
                return self._refuse(422)
            service.enter()
            try:
                time.sleep(service.delay_s)
                vectors = service.answer(list(body["input"]))
            finally:
                service.leave()
            if wanted == "base64" and service.encoding == "honour":
                vectors = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vectors]
            # Python's json writes NaN as a bare token, as some real services do.
            payload = json.dumps({"data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    with LoopbackServer(Handler) as url:
        yield f"{url}/v1"
