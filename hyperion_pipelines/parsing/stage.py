"""Parse every landed document of a partition; a failure becomes a row with its reason."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pandas as pd

from hyperion_pipelines.deadline import Checkpoint, no_deadline
from hyperion_pipelines.parsing import ocr
from hyperion_pipelines.parsing.cache import ParseCache
from hyperion_pipelines.parsing.document import ParseError
from hyperion_pipelines.parsing.sandbox import ParserPool, ParserSandbox
from hyperion_pipelines.sources.blob_store import BlobStore
from hyperion_pipelines.sources.landing import is_held
from hyperion_pipelines.spec import ParsingSpec

PARSED_COLUMNS = [
    "document_id", "source", "media_type", "sha256", "status", "reason", "message", "parser",
    "title", "text", "char_count", "headings", "page_offsets", "reused", "fidelity", "ocr_pages",
    "unread_pages",
]  # fmt: skip
TEXT_COLUMNS = ("document_id", "source", "media_type", "sha256", "status", "reason", "message", "parser", "title")
# The columns that grow with a document; the others are its outcome, read whole by later steps.
PARSED_BULK = ("text", "headings", "page_offsets")
OUTCOME_COLUMNS = [c for c in PARSED_COLUMNS if c not in PARSED_BULK]


def _rejected(row: pd.Series, reason: str, message: str) -> dict:
    return {
        "document_id": row.document_id, "source": row.source, "media_type": row.media_type,
        "sha256": row.sha256, "status": "rejected", "reason": reason, "message": message,
        "parser": None, "title": None, "text": None, "char_count": 0, "headings": [],
        "page_offsets": [], "reused": False, "fidelity": None, "ocr_pages": 0, "unread_pages": 0,
    }  # fmt: skip


def parse_documents(
    raw: pd.DataFrame,
    blobs: BlobStore,
    spec: ParsingSpec,
    cache: ParseCache | None = None,
    checkpoint: Checkpoint = no_deadline,
    parsers: ParserPool | None = None,
) -> pd.DataFrame:
    """One row per raw document; each is parsed in a sandboxed child process under
    ``spec.limits``, so a hostile file is quarantined instead of stalling or killing the run.
    A document already parsed under the same spec is taken from ``cache`` (``reused`` is True);
    a parser process starts only when one is not. ``parsers``: sandboxes the caller keeps open
    across calls (a day parsed part by part starts its parser processes once), several of them
    to parse documents side by side; rows keep the order of ``raw``."""
    rows = []
    with nullcontext(parsers) if parsers is not None else ParserPool(spec.limits) as parsers:

        def parse(sandbox: ParserSandbox, row: Any) -> dict:
            return _parse_one(row, blobs, spec, sandbox, cache)

        for parsed in parsers.map(parse, raw[~is_held(raw)].itertuples(index=False)):
            checkpoint()  # past the deadline, leaving the block drops the documents not begun
            rows.append(parsed)
    frame = pd.DataFrame(rows, columns=PARSED_COLUMNS)
    # Text columns stay text (None where missing) in a part whose rows all lack a value, which
    # pandas would otherwise make a float column of NaN.
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame["char_count"] = frame["char_count"].astype("int64")
    frame["reused"] = frame["reused"].astype("bool")
    frame["fidelity"] = frame["fidelity"].astype("float64")
    frame["ocr_pages"] = frame["ocr_pages"].astype("int64")
    frame["unread_pages"] = frame["unread_pages"].astype("int64")
    return frame


def any_to_parse(raw: pd.DataFrame, cache: ParseCache) -> bool:
    """Whether a landed document has no parse in ``cache``, so that its text is new to the run."""
    landed = raw[raw["landing_error"].isna() | (raw["landing_error"] == "")]
    return any(not cache.has(row.sha256, row.media_type) for row in landed.itertuples(index=False))


def _parse_one(row: Any, blobs: BlobStore, spec: ParsingSpec, sandbox: ParserSandbox, cache: ParseCache | None) -> dict:
    if isinstance(row.landing_error, str) and row.landing_error:  # a missing value reads as NaN, which is truthy
        reason, _, message = row.landing_error.partition(": ")
        return _rejected(row, reason, message)
    parsed = cache.get(row.sha256, row.media_type) if cache is not None else None
    reused = parsed is not None
    if parsed is None:
        try:
            parsed = sandbox.parse(blobs.get(row.sha256), row.media_type, spec.accepted_media_types, row.file_name)
        except ParseError as exc:
            return _rejected(row, exc.reason, exc.message)
        # A parse that left scanned pages unread is not kept: once OCR is installed, a run of the
        # day reads them (and until then each run of the day parses the document again).
        if cache is not None and not parsed.unread_pages:
            cache.put(row.sha256, row.media_type, parsed)
    return {
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
        "reused": reused,
        "fidelity": parsed.fidelity,
        "ocr_pages": parsed.ocr_pages,
        "unread_pages": parsed.unread_pages,
    }  # fmt: skip


#: Upper bounds of the fidelity histogram's buckets (the last is 1.0 inclusive).
FIDELITY_BUCKETS = (0.5, 0.7, 0.9, 1.0)


def fidelity_summary(frame: pd.DataFrame) -> dict[str, float | int | dict[str, int]]:
    """The partition's parse fidelity and extractors: figures for the parsed asset's metadata.

    Minimum, 10th percentile and median score of the documents parsed (none when no document
    was), a histogram, documents per extractor, what OCR read and what it could not (scanned
    pages of otherwise readable PDFs, left unread where OCR is not installed).
    """
    parsed = frame[frame["status"] == "parsed"]
    scores = parsed["fidelity"].dropna().astype(float)
    summary: dict[str, float | int | dict[str, int]] = {
        "parsed_by_extractor": {str(k): int(v) for k, v in parsed["parser"].value_counts().sort_index().items()},
        "ocr_documents": int((parsed["ocr_pages"] > 0).sum()),
        "ocr_pages": int(parsed["ocr_pages"].sum()),
        "documents_with_unread_pages": int((parsed["unread_pages"] > 0).sum()),
        "unread_pages": int(parsed["unread_pages"].sum()),
        "low_fidelity": int((frame["reason"] == "low_fidelity").sum()),
    }
    if not scores.empty:
        summary["fidelity_min"] = round(float(scores.min()), 3)
        summary["fidelity_p10"] = round(float(scores.quantile(0.1)), 3)
        summary["fidelity_median"] = round(float(scores.median()), 3)
        lower, histogram = 0.0, {}
        for upper in FIDELITY_BUCKETS:
            inside = (scores >= lower) & ((scores < upper) if upper < 1.0 else (scores <= upper))
            histogram[f"{lower:.1f}-{upper:.1f}"] = int(inside.sum())
            lower = upper
        summary["fidelity_histogram"] = histogram
    return summary


def unread_pages_note(source: str, unread_pages: int, day: str) -> str:
    """The run-log line for a PDF read without its scanned pages."""
    return (
        f"{source}: {unread_pages} scanned page(s) without a text layer were not read, as OCR is not "
        f"available here; the rest of the document is indexed. To read them, {ocr.INSTALL_HINT}, then run "
        f"its day again (hyperion ingest --date {day}, or the partition {day} in the UI)."
    )
