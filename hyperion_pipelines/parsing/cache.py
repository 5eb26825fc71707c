"""Successful parses kept by content, so a re-run parses only new or changed documents.

Keyed by the document's sha256 and sniffed media type, under a digest of the whole parsing spec:
a new parser version or any changed limit starts a fresh cache. Rejections are never cached, so
a quarantined document is always tried again (a raised limit re-drives it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hyperion_pipelines.content_cache import JsonEntries
from hyperion_pipelines.parsing.document import Heading, ParsedDocument
from hyperion_pipelines.spec import ParsingSpec


def spec_digest(spec: ParsingSpec) -> str:
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]


class ParseCache:
    def __init__(self, root: Path, spec: ParsingSpec):
        self.root = Path(root) / spec_digest(spec)
        self._entries = JsonEntries(self.root)

    @staticmethod
    def key(sha256: str, media_type: str) -> str:
        """The entry name of a document version (what storage GC keeps for recorded documents)."""
        return hashlib.sha256(f"{sha256}\x1f{media_type}".encode()).hexdigest()

    def has(self, sha256: str, media_type: str) -> bool:
        return self._entries.has(self.key(sha256, media_type))

    def get(self, sha256: str, media_type: str) -> ParsedDocument | None:
        data = self._entries.get(self.key(sha256, media_type))
        if data is None:
            return None
        try:
            return ParsedDocument(
                text=data["text"],
                title=data["title"],
                parser=data["parser"],
                headings=[Heading(h["level"], h["text"], h["offset"]) for h in data["headings"]],
                page_offsets=list(data["page_offsets"]),
                ocr_pages=int(data.get("ocr_pages", 0)),
                fidelity=data.get("fidelity"),
            )
        except (KeyError, TypeError):
            return None  # a damaged entry is a miss: the document is parsed again and the entry rewritten

    def put(self, sha256: str, media_type: str, parsed: ParsedDocument) -> None:
        data = {
            "text": parsed.text,
            "title": parsed.title,
            "parser": parsed.parser,
            "headings": [{"level": h.level, "text": h.text, "offset": h.offset} for h in parsed.headings],
            "page_offsets": list(parsed.page_offsets),
            "ocr_pages": parsed.ocr_pages,
            "fidelity": parsed.fidelity,
        }
        self._entries.put(self.key(sha256, media_type), data)
