"""PDF with pypdf: the fallback extractor, tried when pdfium's text scores below the fidelity gate.

Text per page, page offsets kept, the outline (bookmarks) as headings.
"""

from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PdfReadError

from hyperion_pipelines.parsing.document import (
    Heading,
    ParsedDocument,
    ParseError,
    describe_exception,
    first_line_title,
    normalize_text,
)
from hyperion_pipelines.parsing.pdf_layout import place_heading


def _outline_headings(reader: PdfReader, page_offsets: list[int], text: str) -> list[Heading]:
    headings: list[Heading] = []
    page_ends = [*page_offsets[1:], len(text)]

    def visit(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                visit(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # a dangling bookmark is not worth failing the document
                continue
            title = str(item.title or "").strip()
            if 0 <= page < len(page_offsets) and title:
                after = headings[-1].offset + 1 if headings else 0
                offset = place_heading(text, title, page_offsets[page], page_ends[page], after)
                headings.append(Heading(level, title, offset))

    try:
        visit(reader.outline, 1)
    except Exception:
        return []
    return sorted(headings, key=lambda h: h.offset)


def parse_pdf_pypdf(content: bytes) -> ParsedDocument:
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("encrypted", "the PDF is encrypted and needs a password")
        pages = [normalize_text(page.extract_text() or "").strip() for page in reader.pages]
        metadata_title = (reader.metadata.title if reader.metadata else None) or ""
    except FileNotDecryptedError as exc:
        raise ParseError("encrypted", "the PDF is encrypted and needs a password") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, AssertionError) as exc:
        raise ParseError("corrupt", f"unreadable PDF: {describe_exception(exc)}") from exc
    page_offsets, position = [], 0
    for page in pages:
        page_offsets.append(position)
        position += len(page) + 2
    text = "\n\n".join(pages)
    return ParsedDocument(
        text=text,
        title=str(metadata_title).strip()[:200] or first_line_title(text),
        parser="pypdf",
        headings=_outline_headings(reader, page_offsets, text),
        page_offsets=page_offsets,
    )
