"""Parse every landed document of a partition; a failure becomes a row with its reason."""

from __future__ import annotations

import pandas as pd

from hyperion_pipelines.parsing.document import ParseError
from hyperion_pipelines.parsing.registry import parse_document
from hyperion_pipelines.sources.blob_store import BlobStore
from hyperion_pipelines.spec import ParsingSpec

PARSED_COLUMNS = [
    "document_id", "source", "media_type", "sha256", "status", "reason", "message", "parser",
    "title", "text", "char_count", "headings", "page_offsets",
]  # fmt: skip


def _rejected(row: pd.Series, reason: str, message: str) -> dict:
    return {
        "document_id": row.document_id, "source": row.source, "media_type": row.media_type,
        "sha256": row.sha256, "status": "rejected", "reason": reason, "message": message,
        "parser": None, "title": None, "text": None, "char_count": 0, "headings": [],
        "page_offsets": [],
    }  # fmt: skip


def parse_documents(raw: pd.DataFrame, blobs: BlobStore, spec: ParsingSpec) -> pd.DataFrame:
    rows = []
    for row in raw.itertuples(index=False):
        if row.landing_error:
            reason, _, message = str(row.landing_error).partition(": ")
            rows.append(_rejected(row, reason, message))
            continue
        try:
            parsed = parse_document(blobs.get(row.sha256), row.media_type, spec.accepted_media_types)
        except ParseError as exc:
            rows.append(_rejected(row, exc.reason, exc.message))
            continue
        rows.append(
            {
                "document_id": row.document_id,
                "source": row.source,
                "media_type": row.media_type,
                "sha256": row.sha256,
                "status": "parsed",
                "reason": None,
                "message": None,
                "parser": parsed.parser,
                "title": parsed.title,
                "text": parsed.text,
                "char_count": len(parsed.text),
                "headings": [{"level": h.level, "text": h.text, "offset": h.offset} for h in parsed.headings],
                "page_offsets": list(parsed.page_offsets),
            }  # fmt: skip
        )
    frame = pd.DataFrame(rows, columns=PARSED_COLUMNS)
    frame["char_count"] = frame["char_count"].astype("int64")
    return frame
