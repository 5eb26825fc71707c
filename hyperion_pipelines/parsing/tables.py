"""Tables as Markdown rows, whatever the format they came from.

A row stays one line with its cells together (``| mc | 1482 | A file manager |``) and the header
row is followed by a ``| --- |`` line, so the chunker can tell a table and repeat its header in
every chunk that splits it (``chunking.tables``). In a PDF a table is found from the geometry of
its lines: consecutive lines whose cells, separated by wide gaps, start at the same columns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from hyperion_pipelines.parsing.pdf_layout import TextLine

#: Within a line, a gap this many times the font size separates two cells of a table row.
CELL_GAP_RATIO = 0.8
_COLUMN_TOLERANCE = 4.0  # points
_MIN_ROWS = 2
#: A list item's marker: a bullet, a dash, or a number or letter with "." or ")". Word processors
#: set the item's text a tab stop away from it, a gap as wide as a table's column gap. Word's
#: bullets are glyphs of its Symbol font, which PDF text gives as private-use characters.
_LIST_MARKER = re.compile(r"[•◦▪▫‣∙·●○■□➢➤✓\-–—*\ue000-\uf8ff]|\(?(\d{1,3}|[a-zA-Z]|[ivxlcIVXLC]{1,6})[.)]")


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows (the first is the header) as a Markdown table; ragged rows are padded."""
    rows = [list(r) for r in rows if any(c.strip() for c in r)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = [markdown_row(rows[0]), "| " + " | ".join(["---"] * width) + " |"]
    lines.extend(markdown_row(r) for r in rows[1:])
    return "\n".join(lines)


def _column(x: float, columns: Sequence[float]) -> int | None:
    for index, start in enumerate(columns):
        if abs(x - start) <= _COLUMN_TOLERANCE:
            return index
    return None


def _header_fits(line: TextLine, columns: Sequence[float]) -> bool:
    """A line above a table's rows whose cells fall one into each column, anywhere within it: a
    header row set differently (centred, bold) from the rows below."""
    if len(line.cells) != len(columns):
        return False
    bounds = [*columns[1:], float("inf")]
    return all(
        columns[k] - _COLUMN_TOLERANCE <= x < bounds[k] - _COLUMN_TOLERANCE for k, (x, _) in enumerate(line.cells)
    )


def _table_rows(run: Sequence[TextLine], columns: list[float]) -> list[list[str]]:
    rows: list[list[str]] = []
    for line in run:
        cells = line.cells or ((line.left, line.text),)
        row = [""] * len(columns)
        for x, text in cells:
            index = _column(x, columns)
            row[index if index is not None else 0] += (" " if row[index or 0] else "") + text
        if len(cells) == 1 and rows and _column(cells[0][0], columns) not in (None, 0):
            # a cell wrapped onto a line of its own: it continues the row above
            index = _column(cells[0][0], columns) or 0
            rows[-1][index] = f"{rows[-1][index]} {cells[0][1]}".strip()
            continue
        rows.append(row)
    return rows


def _continues(line: TextLine, columns: Sequence[float], size: float) -> bool:
    """A further row of the table: cells on its columns, in its type size; a line of one cell
    only where it continues a wrapped cell (not in the first column, where the next paragraph or
    heading starts)."""
    if abs(line.size - size) > 0.1 * size:
        return False
    if not line.cells:
        return _column(line.left, columns) not in (None, 0)
    return all(_column(x, columns) is not None for x, _ in line.cells)


def _is_item(line: TextLine) -> bool:
    return len(line.cells) == 2 and bool(_LIST_MARKER.fullmatch(line.cells[0][1]))


def _as_item(line: TextLine) -> TextLine:
    (_, marker), (_, text) = line.cells
    marker = "•" if "\ue000" <= marker <= "\uf8ff" else marker
    return replace(line, text=f"{marker} {text}", cells=())


def _list_items(lines: Sequence[TextLine]) -> list[TextLine]:
    """Lines of a list as list items, not two-column table rows. A run of lines with as many cells,
    the first at one column (lines without cells set further right, a wrapped item's text, in
    between), is a list when every such line is a marker and a text; a table with a "-" or "1." in
    its first column has other first cells too, or more than two cells, and stays a table."""
    out = list(lines)
    i = 0
    while i < len(out):
        if len(out[i].cells) < 2:
            i += 1
            continue
        x, width = out[i].cells[0][0], len(out[i].cells)
        j = i + 1
        while j < len(out) and (
            (len(out[j].cells) == width and abs(out[j].cells[0][0] - x) <= _COLUMN_TOLERANCE)
            or (not out[j].cells and out[j].left > x + _COLUMN_TOLERANCE)
        ):
            j += 1
        rows = [k for k in range(i, j) if out[k].cells]
        if all(_is_item(out[k]) for k in rows):
            for k in rows:
                out[k] = _as_item(out[k])
        i = j
    return out


def pdf_table_lines(lines: Sequence[TextLine]) -> list[TextLine]:
    """``lines`` with each run of table rows replaced by one line per Markdown row."""
    lines = _list_items(lines)
    out: list[TextLine] = []
    i = 0
    while i < len(lines):
        columns = [x for x, _ in lines[i].cells] if len(lines[i].cells) >= 2 else []
        j = i + 1
        while columns and j < len(lines) and _continues(lines[j], columns, lines[i].size):
            j += 1
        multi = sum(1 for line in lines[i:j] if len(line.cells) >= 2)
        if not columns or multi < _MIN_ROWS:
            out.append(lines[i])
            i += 1
            continue
        run = list(lines[i:j])
        if out and _header_fits(out[-1], columns):
            run.insert(0, out.pop())
            run[0] = replace(run[0], cells=tuple((columns[k], text) for k, (_, text) in enumerate(run[0].cells)))
        table = markdown_table(_table_rows(run, columns)).split("\n")
        first = run[0]
        out.append(replace(first, text="\n".join(table[:2]), cells=(), bold=False))
        out.extend(replace(line, text=row, cells=(), bold=False) for line, row in zip(run[1:], table[2:], strict=False))
        # rows merged from wrapped cells leave lines over: they are part of the rows above
        i = j
    return out
