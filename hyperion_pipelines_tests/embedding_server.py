"""A real OpenAI-compatible ``/embeddings`` server on loopback, backed by the packaged model.

It can be told to misbehave the way a faulty inference service does: answer NaN for texts that
contain a marker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder

from .loopback import LoopbackServer


@dataclass
class EmbeddingService:
    nan_marker: str | None = None  # texts containing it get a vector of NaN
    embedder: SentenceTransformerEmbedder = field(default_factory=SentenceTransformerEmbedder)

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
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            vectors = service.answer(list(body["input"]))
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
