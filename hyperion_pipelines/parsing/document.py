"""What every parser returns, and the error it raises for a document it cannot use."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heading:
    level: int  # 1 = top level
    text: str
    offset: int  # character offset of the heading's line in the parsed text


@dataclass(frozen=True)
class ParsedDocument:
    text: str
    title: str
    parser: str
    headings: list[Heading] = field(default_factory=list)
    page_offsets: list[int] = field(default_factory=list)  # start offset of each page, if paged
    ocr_pages: int = 0  # pages (or images) whose text was read by OCR
    unread_pages: int = 0  # scanned pages left unread because OCR is not installed (parsing.pdf)
    fidelity: float | None = None  # the parse-fidelity score, set by the registry's gate


#: Every reason a document can be quarantined for, with what it means. Reason codes are stable:
#: dashboards, the ``hyperion quarantine`` command and the schema checks rely on them.
REASONS: dict[str, str] = {
    "too_large": "the file is over the configured size limit; it was not read",
    "invalid_listing": "the source's listing entry for the document breaks its contract; it was not read",
    "unreadable": "the source lists the document but it cannot be read (permission denied, an I/O error)",
    "empty": "the file has no bytes, or no text could be extracted",
    "near_empty": "fewer characters of text than the configured minimum",
    "garbage_text": "the text is mostly control, replacement or unassigned characters",
    "unsupported_type": "the content's media type is not one the pipeline accepts",
    "mislabelled_type": "the file name says one type, the content is another that is not accepted",
    "encrypted": "the document is encrypted (password-protected PDF)",
    "corrupt": "the file is damaged or truncated and its parser failed",
    "archive_too_large": "the archive (DOCX is a zip) unpacks beyond the configured size or ratio",
    "undecodable": "no text encoding decodes the bytes",
    "parse_timeout": "parsing took longer than the configured time limit",
    "parse_memory": "parsing needed more memory than the configured limit",
    "parser_crashed": "the parser process died (signal or hard crash)",
    "low_fidelity": "every extractor's text scored below the pipeline's parse-fidelity threshold",
    "ocr_unavailable": "the document needs OCR (an image, or a PDF mostly of scans) and tesseract is not installed",
}


class ParseError(Exception):
    """A document that cannot be parsed; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def describe_exception(exc: BaseException, limit: int = 200) -> str:
    """A parser error as a short, printable message: library errors can quote the file's own
    bytes, which belong neither in logs nor in the UI."""
    text = "".join(c if c.isprintable() else " " for c in str(exc))
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def normalize_text(text: str) -> str:
    """One newline convention, NFC, no NULs: offsets computed on this text are stable."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return unicodedata.normalize("NFC", text)


def first_line_title(text: str, limit: int = 200) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:limit]
    return ""
