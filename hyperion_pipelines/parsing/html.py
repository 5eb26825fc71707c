"""HTML: visible text in reading order, one paragraph per block element, headings kept, tables as
Markdown rows."""

from __future__ import annotations

import re
import warnings

from bs4 import BeautifulSoup, Comment, NavigableString, Tag, XMLParsedAsHTMLWarning

from hyperion_pipelines.parsing.document import Heading, ParsedDocument, first_line_title, normalize_text
from hyperion_pipelines.parsing.tables import markdown_table

_SKIP = {"script", "style", "noscript", "template", "svg", "head", "iframe", "object", "canvas"}
_HEADINGS = {f"h{i}" for i in range(1, 7)}
_BLOCKS = _HEADINGS | {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "li", "ul", "ol",
    "pre", "blockquote", "table", "tr", "br", "hr", "figure", "figcaption", "dl", "dt", "dd",
    "form", "fieldset", "address", "details", "summary", "td", "th", "caption",
}  # fmt: skip
_SPACE = re.compile(r"\s+")


class _Collector:
    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.heading_blocks: list[tuple[int, int, str]] = []  # (block index, level, text)
        self._inline: list[str] = []

    def flush(self) -> None:
        text = _SPACE.sub(" ", "".join(self._inline)).strip()
        self._inline = []
        if text:
            self.blocks.append(text)

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                self._inline.append(str(child))
            elif isinstance(child, Tag):
                self._tag(child)

    def _tag(self, tag: Tag) -> None:
        name = tag.name.lower()
        if name in _SKIP:
            return
        if name in _HEADINGS:
            self.flush()
            text = _SPACE.sub(" ", tag.get_text(" ")).strip()
            if text:
                self.heading_blocks.append((len(self.blocks), int(name[1]), text))
                self.blocks.append(text)
            return
        if name == "table" and self._table(tag):
            return
        if name in _BLOCKS:
            self.flush()
            self.walk(tag)
            self.flush()
        else:
            self.walk(tag)

    def _table(self, table: Tag) -> bool:
        """A data table as one Markdown block (its caption before it); False for a table used
        for layout (one column, or a cell holding a table of its own), which is walked instead."""
        rows = [row for row in table.find_all("tr") if row.find_parent("table") is table]
        cells = [[c for c in row.find_all(["td", "th"]) if c.find_parent("tr") is row] for row in rows]
        if not cells or max(len(r) for r in cells) < 2 or any(c.find("table") for r in cells for c in r):
            return False
        self.flush()
        caption = table.find("caption")
        if caption is not None and (text := _SPACE.sub(" ", caption.get_text(" ")).strip()):
            self.blocks.append(text)
        text = markdown_table([[_SPACE.sub(" ", c.get_text(" ")).strip() for c in r] for r in cells])
        if text:
            self.blocks.append(text)
        return True


def parse_html(content: bytes) -> ParsedDocument:
    with warnings.catch_warnings():  # XHTML pages (an <?xml?> line first) are HTML to read
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(content, "lxml")
    title_tag = soup.find("title")
    collector = _Collector()
    collector.walk(soup.body or soup)
    collector.flush()
    blocks = [normalize_text(b) for b in collector.blocks]
    offsets, position = [], 0
    for block in blocks:
        offsets.append(position)
        position += len(block) + 2
    headings = [Heading(level, normalize_text(text), offsets[i]) for i, level, text in collector.heading_blocks]
    text = "\n\n".join(blocks)
    title = title_tag.get_text(" ").strip() if title_tag else ""
    if not title:
        title = next((h.text for h in headings if h.level == 1), "") or first_line_title(text)
    return ParsedDocument(text=text, title=_SPACE.sub(" ", title)[:200], parser="html", headings=headings)
