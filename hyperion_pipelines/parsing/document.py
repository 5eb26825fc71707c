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


class ParseError(Exception):
    """A document that cannot be parsed; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


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
