"""A chunk that starts inside a Markdown table, below its header, is embedded with the header row.

The parsers write every table as Markdown rows (``parsing.tables``); when the chunker cuts a long
table, the later chunks would hold rows without saying what their columns are. The header row goes
into the chunk's context (embedded in front of the text), so the chunk's text stays an exact slice
of the document.
"""

from __future__ import annotations

import re

_SEPARATOR_ROW = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+\s*$")


def _line_at(text: str, offset: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, len(text) if end < 0 else end


def table_header(text: str, offset: int) -> str | None:
    """The header row of the table whose body row holds ``offset``; None outside a table or on
    its header."""
    start, end = _line_at(text, offset)
    if not text.startswith("|", start):
        return None
    rows: list[str] = []
    while True:
        line = text[start:end]
        if not line.startswith("|"):
            break
        rows.append(line)
        if start == 0:
            break
        start, end = _line_at(text, start - 1)
    rows.reverse()  # from the table's first row down to the chunk's
    if len(rows) < 3 or not _SEPARATOR_ROW.match(rows[1]):
        return None  # on the header or its separator, or not a table the parsers wrote
    return rows[0]
