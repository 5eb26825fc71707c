"""Choose the parser by sniffed media type and turn every failure into a :class:`ParseError`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from hyperion_pipelines.parsing import media_type as mt
from hyperion_pipelines.parsing.archive import check_archive
from hyperion_pipelines.parsing.document import ParsedDocument, ParseError, describe_exception
from hyperion_pipelines.parsing.docx import parse_docx
from hyperion_pipelines.parsing.html import parse_html
from hyperion_pipelines.parsing.pdf import parse_pdf
from hyperion_pipelines.parsing.quality import assess_text
from hyperion_pipelines.parsing.text import parse_markdown, parse_plain_text
from hyperion_pipelines.spec import ParsingLimits

PARSERS: dict[str, Callable[[bytes], ParsedDocument]] = {
    mt.PLAIN: parse_plain_text,
    mt.MARKDOWN: parse_markdown,
    mt.HTML: parse_html,
    mt.PDF: parse_pdf,
    mt.DOCX: parse_docx,
}

#: What a file name's extension claims the content is.
EXTENSION_TYPES = {
    ".txt": mt.PLAIN, ".text": mt.PLAIN, ".md": mt.MARKDOWN, ".markdown": mt.MARKDOWN,
    ".html": mt.HTML, ".htm": mt.HTML, ".pdf": mt.PDF, ".docx": mt.DOCX,
}  # fmt: skip


def _refuse_type(media_type: str, accepted: tuple[str, ...], file_name: str) -> ParseError:
    claimed = EXTENSION_TYPES.get(PurePosixPath(file_name.lower()).suffix)
    if claimed is not None and claimed != media_type and claimed in accepted:
        return ParseError(
            "mislabelled_type",
            f"named {file_name!r} ({claimed}) but the content is {media_type}, which is not accepted",
        )
    return ParseError("unsupported_type", f"media type {media_type} is not accepted")


def parse_document(
    content: bytes,
    media_type: str,
    accepted: tuple[str, ...],
    *,
    limits: ParsingLimits | None = None,
    file_name: str = "",
) -> ParsedDocument:
    """Parse ``content``; raise :class:`ParseError` with a reason code for anything unusable."""
    limits = limits or ParsingLimits()
    if media_type == mt.EMPTY:
        raise ParseError("empty", "the document has no content (0 bytes)")
    parser = PARSERS.get(media_type)
    if parser is None or media_type not in accepted:
        raise _refuse_type(media_type, accepted, file_name)
    if media_type == mt.DOCX:
        check_archive(content, max_expanded_bytes=limits.max_expanded_bytes, max_ratio=limits.max_compression_ratio)
    try:
        parsed = parser(content)
    except ParseError:
        raise
    except MemoryError as exc:  # before the catch-all below: MemoryError is an Exception too
        raise ParseError("parse_memory", "parsing needed more memory than the limit allows") from exc
    except RecursionError as exc:
        raise ParseError("corrupt", "the document is nested too deeply to parse") from exc
    except Exception as exc:  # parser libraries raise many types on malformed input
        raise ParseError("corrupt", describe_exception(exc)) from exc
    assess_text(parsed.text, min_chars=limits.min_text_chars, max_garbage_ratio=limits.max_garbage_ratio)
    return parsed
