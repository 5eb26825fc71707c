"""DOCX: paragraphs and tables in document order; Word heading styles become headings."""

from __future__ import annotations

import io
import re
import zipfile

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from hyperion_pipelines.parsing.document import (
    Heading,
    ParsedDocument,
    ParseError,
    describe_exception,
    first_line_title,
    normalize_text,
)

_HEADING_STYLE = re.compile(r"^Heading (\d)$")


def _heading_level(paragraph: Paragraph) -> int | None:
    style = paragraph.style.name if paragraph.style is not None else ""
    if style == "Title":
        return 1
    match = _HEADING_STYLE.match(style or "")
    # "Heading 1" sits below the document's "Title", so it is level 2 in the heading path.
    return int(match.group(1)) + 1 if match else None


def parse_docx(content: bytes) -> ParsedDocument:
    try:
        document = docx.Document(io.BytesIO(content))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ParseError("corrupt", f"unreadable DOCX: {describe_exception(exc)}") from exc
    blocks: list[str] = []
    headings: list[Heading] = []
    position = 0
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = normalize_text(item.text).strip()
            level = _heading_level(item)
        elif isinstance(item, Table):
            rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in item.rows]
            text, level = normalize_text("\n".join(rows)).strip(), None
        else:
            continue
        if not text:
            continue
        if level is not None:
            headings.append(Heading(level, text, position))
        blocks.append(text)
        position += len(text) + 2
    text = "\n\n".join(blocks)
    title = (document.core_properties.title or "").strip()
    return ParsedDocument(
        text=text,
        title=title[:200] or first_line_title(text),
        parser="docx",
        headings=headings,
    )
