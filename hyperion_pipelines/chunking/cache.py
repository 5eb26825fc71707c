"""Chunk boundaries kept by content, so a re-run chunks only new or changed text.

Tokenising a document is most of what chunking costs, and a document whose text did not change
cuts into the same chunks. An entry is keyed by the digest of the text and its headings, under a
namespace of the chunker's version and the embedding-space fingerprint (which covers the model,
hence its tokenizer, and the chunking settings): any of those changing starts a fresh cache.
Entries hold offsets, not text; ``text[char_start:char_end]`` is the chunk (see ``chunker``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from hyperion_pipelines.chunking.chunker import CHUNKER_VERSION, Chunk
from hyperion_pipelines.content_cache import JsonEntries
from hyperion_pipelines.parsing.document import Heading


class ChunkCache:
    def __init__(self, root: Path, fingerprint: str):
        self.root = Path(root) / f"v{CHUNKER_VERSION}-{fingerprint}"
        self._entries = JsonEntries(self.root)
        self.hits = 0  # documents whose chunks were read back, this instance's lifetime

    @staticmethod
    def key(text: str, headings: Sequence[Heading]) -> str:
        """The entry name of a text (what storage GC keeps for the texts of recorded documents)."""
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
        digest.update(json.dumps([[h.level, h.text, h.offset] for h in headings]).encode())
        return digest.hexdigest()

    def get(self, text: str, headings: Sequence[Heading]) -> list[Chunk] | None:
        data = self._entries.get(self.key(text, headings))
        if data is None:
            return None
        try:
            chunks = [Chunk(i, text[a:b], a, b, count, tuple(path)) for i, (a, b, count, path) in enumerate(data)]
        except (TypeError, ValueError):
            return None  # a damaged entry is a miss: the text is chunked again and the entry rewritten
        if any(not chunk.text or not 0 <= chunk.char_start < chunk.char_end <= len(text) for chunk in chunks):
            return None
        self.hits += 1
        return chunks

    def put(self, text: str, headings: Sequence[Heading], chunks: Sequence[Chunk]) -> None:
        data = [[c.char_start, c.char_end, c.token_count, list(c.heading_path)] for c in chunks]
        self._entries.put(self.key(text, headings), data)
