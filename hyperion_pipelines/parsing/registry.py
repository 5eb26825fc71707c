"""Choose the parser by sniffed media type and turn every failure into a :class:`ParseError`."""

from __future__ import annotations

from collections.abc import Callable

from hyperion_pipelines.parsing import media_type as mt
from hyperion_pipelines.parsing.document import ParsedDocument, ParseError
from hyperion_pipelines.parsing.docx import parse_docx
from hyperion_pipelines.parsing.html import parse_html
from hyperion_pipelines.parsing.pdf import parse_pdf
from hyperion_pipelines.parsing.text import parse_markdown, parse_plain_text

PARSERS: dict[str, Callable[[bytes], ParsedDocument]] = {
    mt.PLAIN: parse_plain_text,
    mt.MARKDOWN: parse_markdown,
    mt.HTML: parse_html,
    mt.PDF: parse_pdf,
    mt.DOCX: parse_docx,
}


def parse_document(content: bytes, media_type: str, accepted: tuple[str, ...]) -> ParsedDocument:
    """Parse ``content``; raise :class:`ParseError` with a reason code for anything unusable."""
    if media_type == mt.EMPTY:
        raise ParseError("empty", "the document has no content")
    parser = PARSERS.get(media_type)
    if parser is None or media_type not in accepted:
        raise ParseError("unsupported_type", f"media type {media_type} is not accepted")
    try:
        parsed = parser(content)
    except ParseError:
        raise
    except Exception as exc:  # parser libraries raise many types on malformed input
        raise ParseError("corrupt", f"{type(exc).__name__}: {exc}") from exc
    if not parsed.text.strip():
        raise ParseError("empty", "no text could be extracted")
    return parsed
