"""DOCX: paragraphs and tables (as Markdown rows) in document order; Word heading styles become
headings."""

from __future__ import annotations

import io
import re
import zipfile

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml import etree

from hyperion_pipelines.parsing.document import (
    Heading,
    ParsedDocument,
    ParseError,
    describe_exception,
    first_line_title,
    normalize_text,
)
from hyperion_pipelines.parsing.tables import markdown_table

_HEADING_STYLE = re.compile(r"^Heading (\d)$")
#: Longest declared entity value put back into the text (one level, never expanded further).
_ENTITY_VALUE_LIMIT = 1000


def _inline_entities(root: etree._Element) -> int:
    """Put entity references back into the text around them; returns how many there were.

    python-docx parses without resolving entities (no external fetches, no expansion bombs), which
    leaves each reference as a node whose following text python-docx never reads: the rest of the
    paragraph vanished. A literal entity declared in the document's own DTD becomes its value (one
    level, bounded); an external or undeclared one stays visible as ``&name;``.
    """
    dtd = root.getroottree().docinfo.internalDTD
    declared = {e.name: e.content for e in dtd.iterentities() if e.content is not None} if dtd is not None else {}
    references = list(root.iter(etree.Entity))
    for entity in references:
        value = declared.get(entity.name)
        text = (value[:_ENTITY_VALUE_LIMIT] if value is not None else f"&{entity.name};") + (entity.tail or "")
        parent, previous = entity.getparent(), entity.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + text
        else:
            parent.text = (parent.text or "") + text
        parent.remove(entity)  # lxml removes the node with its tail, which now sits in front of it
    return len(references)


def _table_rows(table: Table) -> list[list[str]]:
    """Cell texts per row; a merged cell, which python-docx repeats for each grid column it
    spans, is taken once."""
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(" ".join(cell.text.split()))
        rows.append(cells)
    return rows


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
    except (zipfile.BadZipFile, KeyError, ValueError, etree.XMLSyntaxError) as exc:
        raise ParseError("corrupt", f"unreadable DOCX: {describe_exception(exc)}") from exc
    _inline_entities(document.element)
    blocks: list[str] = []
    headings: list[Heading] = []
    position = 0
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = normalize_text(item.text).strip()
            level = _heading_level(item)
        elif isinstance(item, Table):
            text, level = normalize_text(markdown_table(_table_rows(item))).strip(), None
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
