"""Successful parses kept by content, so a re-run parses only new or changed documents.

Keyed by the document's sha256 and sniffed media type, under a digest of the whole parsing spec:
a new parser version or any changed limit starts a fresh cache. Rejections are never cached, so
a quarantined document is always tried again (a raised limit re-drives it).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from hyperion_pipelines.parsing.document import Heading, ParsedDocument
from hyperion_pipelines.spec import ParsingSpec


def spec_digest(spec: ParsingSpec) -> str:
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]


class ParseCache:
    def __init__(self, root: Path, spec: ParsingSpec):
        self.root = Path(root) / spec_digest(spec)

    def _path(self, sha256: str, media_type: str) -> Path:
        key = hashlib.sha256(f"{sha256}\x1f{media_type}".encode()).hexdigest()
        return self.root / key[:2] / f"{key}.json"

    def get(self, sha256: str, media_type: str) -> ParsedDocument | None:
        try:
            data = json.loads(self._path(sha256, media_type).read_text(encoding="utf-8"))
            return ParsedDocument(
                text=data["text"],
                title=data["title"],
                parser=data["parser"],
                headings=[Heading(h["level"], h["text"], h["offset"]) for h in data["headings"]],
                page_offsets=list(data["page_offsets"]),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # a damaged entry is a miss: the document is parsed again and the entry rewritten

    def put(self, sha256: str, media_type: str, parsed: ParsedDocument) -> None:
        path = self._path(sha256, media_type)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "text": parsed.text,
            "title": parsed.title,
            "parser": parsed.parser,
            "headings": [{"level": h.level, "text": h.text, "offset": h.offset} for h in parsed.headings],
            "page_offsets": list(parsed.page_offsets),
        }
        # Write then rename: a crash never leaves a half-written entry under a valid name.
        fd, tmp = tempfile.mkstemp(dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)
        os.replace(tmp, path)
