"""Land a day's documents: list them, copy their bytes to the blob store, describe each one."""

from __future__ import annotations

import logging
from datetime import datetime

import pandas as pd

from hyperion_pipelines.ids import document_id
from hyperion_pipelines.parsing.media_type import sniff_media_type
from hyperion_pipelines.sources.base import DocumentGone, DocumentSource
from hyperion_pipelines.sources.blob_store import BlobStore

log = logging.getLogger(__name__)

RAW_COLUMNS = [
    "document_id", "source", "source_uri", "file_name", "media_type", "size_bytes", "sha256",
    "uploaded_at", "landing_error",
]  # fmt: skip


INVALID_LISTING = "invalid_listing: "


def listing_defect(landing_error: object) -> str | None:
    """What was wrong with a landed document's listing entry, from its ``landing_error``."""
    if isinstance(landing_error, str) and landing_error.startswith(INVALID_LISTING):
        return landing_error.removeprefix(INVALID_LISTING)
    return None


def land_documents(
    source: DocumentSource, blobs: BlobStore, start: datetime, end: datetime, *, max_bytes: int
) -> pd.DataFrame:
    """One row per document uploaded in ``[start, end)``.

    Documents over ``max_bytes``, or whose listing entry breaks the source's contract, are listed
    but not read (``landing_error`` says why); a document removed before it could be read is
    skipped, since it is no longer a current document.
    """
    rows = []
    for ref in source.list_documents(start, end):
        row = {
            "document_id": document_id(source.name, ref.key),
            "source": ref.display_path,
            "source_uri": ref.uri,
            "file_name": ref.name,
            "media_type": None,
            "size_bytes": ref.size_bytes,
            "sha256": None,
            "uploaded_at": ref.uploaded_at,
            "landing_error": None,
        }
        if ref.defect:
            row["landing_error"] = INVALID_LISTING + ref.defect
        elif ref.size_bytes > max_bytes:
            row["landing_error"] = f"too_large: {ref.size_bytes} bytes, limit {max_bytes}"
        else:
            try:
                content = source.read(ref)
            except DocumentGone as exc:
                log.info("skipping %s: %s", ref.display_path, exc)
                continue
            row["sha256"] = blobs.put(content)
            row["size_bytes"] = len(content)
            row["media_type"] = sniff_media_type(content, ref.name)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=RAW_COLUMNS)
    frame["uploaded_at"] = pd.to_datetime(frame["uploaded_at"], utc=True)
    # A source may list one document twice (a listing page shifting under paging): keep the latest.
    frame = frame.sort_values("uploaded_at", kind="stable").drop_duplicates("document_id", keep="last")
    frame["size_bytes"] = frame["size_bytes"].astype("int64")
    return frame.sort_values("source", kind="stable").reset_index(drop=True)
