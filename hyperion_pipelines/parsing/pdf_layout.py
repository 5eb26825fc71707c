"""From positioned lines of PDF pages to text: running headers, footers and page numbers dropped,
headings inferred from font size and weight, paragraph breaks from vertical gaps.

Pure logic on :class:`TextLine` records, so it is tested without a PDF. Coordinates are PDF
points with the origin at the bottom of the page (``top`` > ``bottom``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from hyperion_pipelines.parsing.document import Heading

#: Share of the page height at the top and at the bottom where running headers and footers live.
MARGIN_BAND = 0.12
#: A line at the same height on at least this many pages (and this share of them) is "repeated".
MIN_REPEATS = 3
MIN_REPEAT_SHARE = 0.3
#: Font size over the body size that makes a short line a heading.
HEADING_SIZE_RATIO = 1.12
MAX_HEADING_CHARS = 150
_POSITION_TOLERANCE = 3.0  # points: the same running header drifts by a fraction of a point
_PAGE_NUMBER = re.compile(
    r"(?i)^\s*(page\s+)?(\d{1,5}|[ivxlcdm]{1,8})(\s*(/|of)\s*\d{1,5})?\s*$|^\s*[-–—]\s*\d{1,5}\s*[-–—]\s*$"
)
_DIGITS = re.compile(r"\d+")
_SECTION_NUMBER = re.compile(r"^(\d+(\.\d+)*\.?|[A-Z]\.\d+(\.\d+)*\.?)\s+\S")


@dataclass(frozen=True)
class TextLine:
    page: int  # 0-based page index
    text: str
    top: float
    bottom: float
    size: float  # font size of the line's first visible character
    bold: bool  # every sampled character of the line is bold
    left: float = 0.0
    right: float = 0.0  # right edge of the line's last character
    #: (left x, text) of each cell when wide gaps split the line, as in a table row; else empty
    cells: tuple[tuple[float, str], ...] = ()


def _in_band(line: TextLine, height: float) -> str | None:
    if line.top >= height * (1 - MARGIN_BAND):
        return "top"
    if line.bottom <= height * MARGIN_BAND:
        return "bottom"
    return None


def _line_pitch(pages: Sequence[Sequence[TextLine]]) -> float:
    """The usual distance between consecutive lines of body text."""
    gaps = [
        round(a.bottom - b.bottom, 1)
        for lines in pages
        for a, b in zip(lines, lines[1:], strict=False)
        if 0 < a.bottom - b.bottom < 4 * max(a.size, 1.0)
    ]
    return median(gaps) if gaps else 12.0


def _isolated(lines: Sequence[TextLine], index: int, band: str, pitch: float) -> bool:
    """Set apart from the rest of the page by more than a paragraph gap: where running heads sit.
    Measured to the nearest line by position (a PDF may draw its header last)."""
    line = lines[index]
    if band == "top":
        distances = [line.bottom - other.top for other in lines if other is not line and other.top <= line.bottom + 1]
    else:
        distances = [other.bottom - line.top for other in lines if other is not line and other.bottom >= line.top - 1]
    return not distances or min(distances) > 1.8 * pitch - line.size


def _mask(line: TextLine) -> str:
    return _DIGITS.sub("#", line.text.strip().casefold())


def margin_lines(pages: Sequence[Sequence[TextLine]], heights: Sequence[float]) -> set[tuple[int, int]]:
    """(page, line index) of running headers, footers and page numbers.

    A line in the top or bottom band of its page goes when it is a page number, or when its text
    (digits masked) recurs at the same height on other pages. The line nearest the page's edge also goes
    when it sits apart from the body, no larger than body text, at a height where other pages have
    such a line too: a running head that names each section. A heading that opens every page is
    larger than the body, and a running head sits above it.
    """
    pitch = _line_pitch(pages)
    body = body_size([line for lines in pages for line in lines])
    candidates: list[tuple[int, int, str]] = []  # (page, index, band)
    masked: defaultdict[str, list[tuple[int, float]]] = defaultdict(list)  # text -> (page, bottom)
    edge: dict[tuple[int, str], int] = {}  # (page, band) -> index of the line nearest the edge
    for page, lines in enumerate(pages):
        for index, line in enumerate(lines):
            band = _in_band(line, heights[page])
            if band is None:
                continue
            candidates.append((page, index, band))
            masked[_mask(line)].append((page, line.bottom))
            nearest = edge.get((page, band))
            outer = nearest is None or (
                line.top > lines[nearest].top if band == "top" else line.bottom < lines[nearest].bottom
            )
            if outer:
                edge[(page, band)] = index
    # at least 2 pages; on a document shorter than MIN_REPEATS pages, every page
    repeats = max(2, min(MIN_REPEATS, len(pages)), int(MIN_REPEAT_SHARE * len(pages)))

    def running_head(page: int, index: int, band: str) -> bool:
        line = pages[page][index]
        return (
            edge.get((page, band)) == index
            and line.size <= body * HEADING_SIZE_RATIO
            and _isolated(pages[page], index, band, pitch)
        )

    positions: defaultdict[str, list[float]] = defaultdict(list)
    for page, index, band in candidates:
        if running_head(page, index, band):
            positions[band].append(pages[page][index].bottom)

    def repeated_text(line: TextLine) -> bool:
        """The same text (digits masked) at the same height on other pages, no larger than body text."""
        pages_there = {p for p, bottom in masked[_mask(line)] if abs(bottom - line.bottom) <= _POSITION_TOLERANCE}
        return len(pages_there) >= repeats and line.size <= body * HEADING_SIZE_RATIO

    dropped = set()
    for page, index, band in candidates:
        line = pages[page][index]
        recurring = sum(abs(b - line.bottom) <= _POSITION_TOLERANCE for b in positions[band]) >= repeats
        if _PAGE_NUMBER.match(line.text) or repeated_text(line) or (recurring and running_head(page, index, band)):
            dropped.add((page, index))
    return dropped


def body_size(lines: Sequence[TextLine]) -> float:
    """The font size most characters are set in."""
    sizes: Counter[float] = Counter()
    for line in lines:
        sizes[round(line.size, 1)] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def heading_levels(lines: Sequence[TextLine]) -> dict[int, int]:
    """Index into ``lines`` -> heading level, for a PDF without an outline.

    A short line set larger than the body is a heading, the largest size level 1; a whole line in
    bold at body size that starts with a section number ("2.3 Installing") is one level below.
    """
    body = body_size(lines)
    if body <= 0:
        return {}

    def short(line: TextLine) -> bool:
        text = line.text.strip()
        return 0 < len(text) <= MAX_HEADING_CHARS and any(c.isalpha() for c in text) and not text.endswith(",")

    large = {i for i, line in enumerate(lines) if short(line) and line.size >= body * HEADING_SIZE_RATIO}
    sizes = sorted({round(lines[i].size * 2) / 2 for i in large}, reverse=True)
    levels = {i: sizes.index(round(lines[i].size * 2) / 2) + 1 for i in large}
    bold_level = len(sizes) + 1
    for i, line in enumerate(lines):
        if i not in levels and line.bold and short(line) and _SECTION_NUMBER.match(line.text.strip()):
            levels[i] = bold_level
    return levels


@dataclass(frozen=True)
class LaidOutText:
    text: str
    page_offsets: list[int]
    headings: list[Heading]


def right_edge(lines: Sequence[TextLine]) -> float:
    """Where the page's text column ends: the right edge most full lines reach."""
    rights = sorted(line.right for line in lines if line.right > 0)
    return rights[int(0.9 * (len(rights) - 1))] if rights else float("inf")


_CONTENTS_ENTRY = re.compile(r"(\.\s?){4,}\s*([\divxlc]+)\s*$", re.I)


def without_contents_entries(pages: Sequence[Sequence[TextLine]]) -> list[list[TextLine]]:
    """Each page's lines less table-of-contents entries ("2.2 Choose your program . . . . 7"): a
    list of headings with page numbers answers no question and crowds search results."""
    return [[line for line in lines if not _CONTENTS_ENTRY.search(line.text)] for lines in pages]


def without_margins(pages: Sequence[Sequence[TextLine]], heights: Sequence[float]) -> list[list[TextLine]]:
    """Each page's lines less its running headers, footers and page numbers."""
    dropped = margin_lines(pages, heights)
    return [[line for i, line in enumerate(lines) if (page, i) not in dropped] for page, lines in enumerate(pages)]


def lay_out(kept: Sequence[Sequence[TextLine]], *, infer_headings: bool = True) -> LaidOutText:
    """The document's text from each page's lines (margins already dropped): a blank line at
    paragraph gaps and around headings, consecutive heading lines of one size joined, and a line
    wrapped at the column's edge joined to the next with a space, so the chunker cuts paragraphs
    at sentences, not at the page's line ends."""
    flat = [line for lines in kept for line in lines]
    levels = heading_levels(flat) if infer_headings else {}
    pitch = _line_pitch(kept)
    parts: list[str] = []
    page_offsets: list[int] = []
    headings: list[Heading] = []
    position = 0
    index = 0
    body = body_size(flat)
    carried: TextLine | None = None  # the last line of the page before, when its sentence goes on
    for page, lines in enumerate(kept):
        if page:  # even after an empty page, so that page offsets ascend
            first = next((i for i, line in enumerate(lines) if line.text.strip()), None)
            goes_on = (
                carried is not None
                and first is not None
                and index + first not in levels
                and abs(lines[first].size - body) < 0.5
                and not lines[first].text.startswith("| ")
            )
            separator = " " if goes_on else "\n\n"  # a paragraph that runs over the page break
            parts.append(separator)
            position += len(separator)
        page_offsets.append(position)
        edge = right_edge(lines)
        previous: TextLine | None = None
        previous_level: int | None = None
        for line in lines:
            level = levels.get(index)
            index += 1
            text = line.text.strip()
            if not text:
                continue
            if previous is not None:
                joins_heading = level is not None and level == previous_level and previous.size == line.size
                gap = previous.bottom - line.bottom
                table_edge = text.startswith("| ") != previous.text.startswith("| ")
                # rows of one table stay together, however far apart a word processor sets them
                next_row = previous.text.startswith("| ") and text.startswith("| ") and "\n| --- " not in text
                far = not 0 <= gap <= 1.4 * pitch and not next_row
                paragraph = level is not None or previous_level is not None or table_edge or far
                # a line that runs to the column's right edge was wrapped: its sentence goes on
                wrapped = not paragraph and previous.right >= edge - 2 * previous.size and not text.startswith("| ")
                separator = " " if joins_heading or wrapped else ("\n\n" if paragraph else "\n")
                parts.append(separator)
                position += len(separator)
                if joins_heading:
                    last = headings[-1]
                    headings[-1] = Heading(last.level, f"{last.text} {text}", last.offset)
            if level is not None and not (
                previous is not None and level == previous_level and previous.size == line.size
            ):
                headings.append(Heading(level, text, position))
            parts.append(text)
            position += len(text)
            previous, previous_level = line, level
        # Carried over only from a body-text line that ran to the column's edge (a footnote set
        # smaller in between ends the paragraph here).
        carried = (
            previous
            if previous is not None
            and previous_level is None
            and abs(previous.size - body) < 0.5
            and previous.right >= edge - 2 * previous.size
            and not previous.text.startswith("| ")
            else None
        )
    return LaidOutText("".join(parts), page_offsets, headings)


def place_heading(text: str, title: str, page_start: int, page_end: int, after: int) -> int:
    """An outline entry only names a page: find the heading's line on it, else use the page start."""
    start = max(page_start, after)
    own_line = re.compile(r"(?m)^[ \t]*" + re.escape(title)).search(text, start, page_end)
    if own_line:
        return own_line.end() - len(title)
    found = text.find(title, start, page_end)
    return found if found >= 0 else page_start
