"""Choose the parser by sniffed media type, gate its text on fidelity, and turn every failure
into a :class:`ParseError`.

A format may have several extractors, best first (PDF: pdfium, then pypdf). The next one is tried
when the first fails on the file or its text scores below the pipeline's ``min_fidelity``; the
better-scoring text is kept, and when none reaches the threshold the document is quarantined as
``low_fidelity`` with the figures.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

from hyperion_pipelines.parsing.archive import check_archive
from hyperion_pipelines.parsing.document import ParsedDocument, ParseError, describe_exception
from hyperion_pipelines.parsing.fidelity import Fidelity, assess_fidelity
from hyperion_pipelines.parsing.quality import assess_text
from hyperion_pipelines.sources import media_type as mt
from hyperion_pipelines.spec import ParsingLimits

Extractor = Callable[[bytes, ParsingLimits], ParsedDocument]


def _parser(module: str, function: str) -> Callable[..., ParsedDocument]:
    """``hyperion_pipelines.parsing.<module>.<function>``, imported when first called: every run
    starts fresh parser processes, and one that meets only text need not import the PDF, Word and
    HTML libraries (a parser process started in 0.45 s with them all, 0.25 s without)."""

    def parse(*args: Any, **kwargs: Any) -> ParsedDocument:
        try:
            parser = getattr(importlib.import_module(f"hyperion_pipelines.parsing.{module}"), function)
        except (ImportError, OSError, MemoryError) as exc:  # loaded under the parser's memory limit
            raise ParseError(
                "parse_memory", f"the {module} parser's libraries could not be loaded: {describe_exception(exc)}"
            ) from exc
        return parser(*args, **kwargs)

    return parse


_plain_text, _markdown = _parser("text", "parse_plain_text"), _parser("text", "parse_markdown")
_html, _docx, _image = _parser("html", "parse_html"), _parser("docx", "parse_docx"), _parser("image", "parse_image")
_pdfium, _pypdf = _parser("pdf", "parse_pdf"), _parser("pdf_pypdf", "parse_pdf_pypdf")

#: Extractors per media type, best first.
EXTRACTORS: dict[str, tuple[tuple[str, Extractor], ...]] = {
    mt.PLAIN: (("text", lambda content, _: _plain_text(content)),),
    mt.MARKDOWN: (("markdown", lambda content, _: _markdown(content)),),
    mt.HTML: (("html", lambda content, _: _html(content)),),
    mt.PDF: (
        ("pdfium", lambda content, limits: _pdfium(content, timeout_s=limits.timeout_s)),
        ("pypdf", lambda content, _: _pypdf(content)),
    ),
    mt.DOCX: (("docx", lambda content, _: _docx(content)),),
    **{
        image: (("tesseract", lambda content, limits: _image(content, timeout_s=limits.timeout_s)),)
        for image in mt.IMAGES
    },
}

#: What a file name's extension claims the content is.
EXTENSION_TYPES = {
    ".txt": mt.PLAIN, ".text": mt.PLAIN, ".md": mt.MARKDOWN, ".markdown": mt.MARKDOWN,
    ".html": mt.HTML, ".htm": mt.HTML, ".pdf": mt.PDF, ".docx": mt.DOCX,
    ".png": mt.PNG, ".jpg": mt.JPEG, ".jpeg": mt.JPEG, ".tif": mt.TIFF, ".tiff": mt.TIFF,
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
    extractors = EXTRACTORS.get(media_type)
    if extractors is None or media_type not in accepted:
        raise _refuse_type(media_type, accepted, file_name)
    if media_type == mt.DOCX:
        check_archive(content, max_expanded_bytes=limits.max_expanded_bytes, max_ratio=limits.max_compression_ratio)
    best: tuple[ParsedDocument, Fidelity] | None = None
    tried: list[str] = []
    first_error: ParseError | None = None
    unread = 0  # scanned pages an extractor could not read (no OCR): the fallback cannot read them either
    for name, extractor in extractors:
        try:
            parsed = _extract(extractor, content, limits)
            assess_text(parsed.text, min_chars=limits.min_text_chars, max_garbage_ratio=limits.max_garbage_ratio)
        except ParseError as exc:
            if exc.reason in _FINAL:
                raise
            first_error = first_error or exc
            tried.append(f"{name}: {exc.reason}")
            continue
        unread = max(unread, parsed.unread_pages)
        # Scanned pages left unread hold no text by design: they do not count as pages of thin text.
        fidelity = assess_fidelity(parsed.text, max(0, len(parsed.page_offsets) - unread))
        tried.append(f"{name} {fidelity.score:.2f}")
        if best is None or fidelity.score > best[1].score:
            best = (parsed, fidelity)
        if fidelity.score >= limits.min_fidelity:
            break
    if best is None:
        assert first_error is not None
        raise first_error
    parsed, fidelity = best
    if fidelity.score < limits.min_fidelity:
        raise ParseError(
            "low_fidelity",
            f"the extracted text does not read like the page: {fidelity.describe()}, below this pipeline's "
            f"min_fidelity {limits.min_fidelity:g} (extractors tried: {', '.join(tried)})",
        )
    return replace(parsed, fidelity=fidelity.score, unread_pages=max(unread, parsed.unread_pages))


#: Reasons no other extractor can help with: the file itself is refused.
_FINAL = frozenset({"encrypted", "parse_timeout", "parse_memory", "ocr_unavailable"})


def _extract(extractor: Extractor, content: bytes, limits: ParsingLimits) -> ParsedDocument:
    try:
        return extractor(content, limits)
    except ParseError:
        raise
    except MemoryError as exc:  # before the catch-all below: MemoryError is an Exception too
        raise ParseError("parse_memory", "parsing needed more memory than the limit allows") from exc
    except RecursionError as exc:
        raise ParseError("corrupt", "the document is nested too deeply to parse") from exc
    except Exception as exc:  # parser libraries raise many types on malformed input
        raise ParseError("corrupt", describe_exception(exc)) from exc
