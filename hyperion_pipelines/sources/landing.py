"""Land a day's documents: list them, copy their bytes to the blob store, describe each one."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from hyperion_pipelines.ids import document_id
from hyperion_pipelines.sources.base import DocumentGone, DocumentSource, DocumentUnreadable, parse_version
from hyperion_pipelines.sources.blob_store import BlobStore
from hyperion_pipelines.sources.media_type import sniff_media_type

log = logging.getLogger(__name__)

RAW_COLUMNS = [
    "document_id", "source", "source_uri", "file_name", "media_type", "size_bytes", "sha256",
    "uploaded_at", "landing_error",
]  # fmt: skip


INVALID_LISTING = "invalid_listing: "
#: Reasons found in the listing itself: part of the document's version (see ``DocumentRef.defect``).
LISTING_REASONS = ("invalid_listing", "unreadable")
#: ``landing_error`` of a document recorded as indexed under a sub-folder the listing could not look
#: into: not read, not parsed, and its entries, manifest row and quarantine entry left as they are.
HELD = "held"


@dataclass(frozen=True)
class Recorded:
    """A document the index manifest records on this day (what the index reflects)."""

    source_key: str
    version: str
    identity: str | None = None  # the source it was listed from (None: recorded before that was kept)


def listing_defect(landing_error: object) -> str | None:
    """What was wrong with a landed document's listing entry, from its ``landing_error``."""
    if isinstance(landing_error, str):
        reason, _, message = landing_error.partition(": ")
        if reason in LISTING_REASONS:
            return message
    return None


def is_held(raw: pd.DataFrame) -> pd.Series:
    """Rows of documents held as indexed (see :data:`HELD`)."""
    return raw["landing_error"].map(lambda value: isinstance(value, str) and value.startswith(HELD + ": ")).astype(bool)


def held_rows(
    recorded: Mapping[str, Recorded],
    listed_ids: set[str],
    unlisted_prefixes: list[str],
    source_name: str,
    identity: str | None = None,
) -> list[dict]:
    """Recorded documents the listing did not see but that are not known to be gone: under a
    sub-folder that could not be listed, or listed from another source than ``identity`` (the
    pipeline was pointed elsewhere; None: every recorded document is this source's)."""
    rows = []
    for doc_id, record in sorted(recorded.items()):
        if doc_id in listed_ids:
            continue
        prefix = next((p for p in unlisted_prefixes if record.source_key.startswith(p)), None)
        if prefix is not None:
            why = f"{prefix} could not be listed; kept as indexed"
        elif identity is not None and record.identity not in (None, identity):
            why = f"listed from {record.identity}, which this pipeline no longer reads; kept as indexed"
        else:
            continue
        size, uploaded_at = parse_version(record.version)
        rows.append({
            "document_id": doc_id, "source": record.source_key, "source_uri": f"{source_name}:{record.source_key}",
            "file_name": record.source_key.rsplit("/", 1)[-1], "media_type": None, "size_bytes": size,
            "sha256": None, "uploaded_at": uploaded_at, "landing_error": f"{HELD}: {why}",
        })  # fmt: skip
    return rows


def land_documents(
    source: DocumentSource,
    blobs: BlobStore,
    start: datetime,
    end: datetime,
    *,
    max_bytes: int,
    recorded: Mapping[str, Recorded] | None = None,
    keep_other_sources: bool = True,
) -> pd.DataFrame:
    """One row per document uploaded in ``[start, end)``.

    Documents over ``max_bytes``, whose listing entry breaks the source's contract, or that cannot
    be read, are listed but not read (``landing_error`` says why); a document removed before it
    could be read is skipped, since it is no longer a current document. Documents of ``recorded``
    (the manifest's on this day) under a sub-folder the listing could not look into, or (unless
    ``keep_other_sources`` is off) listed from another source, are kept as :data:`HELD` rows.
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
            row["landing_error"] = f"{ref.defect_reason}: {ref.defect}"
        elif ref.size_bytes > max_bytes:
            row["landing_error"] = f"too_large: {ref.size_bytes} bytes, limit {max_bytes}"
        else:
            try:
                content = source.read(ref)
            except DocumentGone as exc:
                log.info("skipping %s: %s", ref.display_path, exc)
                continue
            except DocumentUnreadable as exc:
                row["landing_error"] = f"unreadable: {exc}"
                rows.append(row)
                continue
            row["sha256"] = blobs.put(content)
            row["size_bytes"] = len(content)
            row["media_type"] = sniff_media_type(content, ref.name)
        rows.append(row)
    if recorded:
        listed = {row["document_id"] for row in rows}
        identity = source.identity if keep_other_sources else None
        rows.extend(held_rows(recorded, listed, source.unlisted_prefixes, source.name, identity))
    return raw_frame(rows)


def raw_frame(rows: list[dict]) -> pd.DataFrame:
    """``raw_documents`` rows as the typed frame the later steps expect (no rows: an empty day)."""
    frame = pd.DataFrame(rows, columns=RAW_COLUMNS)
    frame["uploaded_at"] = pd.to_datetime(frame["uploaded_at"], utc=True)
    # A source may list one document twice (a listing page shifting under paging): keep the latest.
    frame = frame.sort_values("uploaded_at", kind="stable").drop_duplicates("document_id", keep="last")
    frame["size_bytes"] = frame["size_bytes"].astype("int64")
    return frame.sort_values("source", kind="stable").reset_index(drop=True)


def held_ids(raw: pd.DataFrame) -> list[str]:
    """Documents held as indexed: their sub-folder could not be listed."""
    return raw.loc[is_held(raw), "document_id"].tolist()
