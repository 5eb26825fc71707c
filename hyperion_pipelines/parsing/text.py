"""Plain text and Markdown: decoding with charset detection; Markdown headings via markdown-it."""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes
from markdown_it import MarkdownIt

from hyperion_pipelines.parsing.document import (
    Heading,
    ParsedDocument,
    ParseError,
    first_line_title,
    normalize_text,
)
from hyperion_pipelines.sources.media_type import WIDE_BOMS

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), *WIDE_BOMS)


_COHERENCE_SLACK = 0.1
_LENIENT_CHAOS = 0.5


def decode_text(content: bytes) -> str:
    """UTF-8 (or a BOM's encoding) when it decodes; otherwise the encoding charset-normalizer finds."""
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content.decode(encoding)
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    matches = from_bytes(content)
    if matches.best() is None:
        # Short or repetitive text in a less common code page can look chaotic to the default
        # threshold; random bytes stay well above this one and are still refused.
        matches = from_bytes(content, threshold=_LENIENT_CHAOS)
    best = matches.best()
    if best is None:
        raise ParseError("undecodable", "no text encoding decodes this document")
    # Western text fits several single-byte code pages about equally well, and the language guess
    # behind "coherence" is noisy on short text; when Windows-1252 is among the least chaotic
    # candidates and nearly as coherent as the best, take it: it is by far the most common of them.
    calm = [m for m in matches if m.chaos == best.chaos and m.coherence >= best.coherence - _COHERENCE_SLACK]
    if any("cp1252" in m.could_be_from_charset for m in calm):
        return content.decode("cp1252")
    return str(best)


def parse_plain_text(content: bytes) -> ParsedDocument:
    text = normalize_text(decode_text(content))
    return ParsedDocument(text=text, title=first_line_title(text), parser="text")


_MARKDOWN = MarkdownIt("commonmark")


def parse_markdown(content: bytes) -> ParsedDocument:
    text = normalize_text(decode_text(content))
    line_starts = [0]
    for line in text.split("\n"):
        line_starts.append(line_starts[-1] + len(line) + 1)
    tokens = _MARKDOWN.parse(text)
    headings: list[Heading] = []
    for i, token in enumerate(tokens):
        heading = tokens[i + 1].content.strip() if token.type == "heading_open" else ""
        if heading and token.map is not None:  # an empty "#" line is no heading (nor a title)
            headings.append(Heading(int(token.tag[1]), heading, line_starts[token.map[0]]))
    top = [h.text for h in headings if h.level == 1]
    title = top[0] if top else first_line_title(text)
    return ParsedDocument(text=text, title=title, parser="markdown", headings=headings)
