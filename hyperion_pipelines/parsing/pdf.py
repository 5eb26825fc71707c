"""PDF with pdfium (pypdfium2): positioned lines per page, laid out by ``pdf_layout``.

Chosen on evidence (``benchmarks/parsing_bench.py``): on TeX-made manuals pdfium keeps the spaces
between words that pypdf and pdfminer lose, at about ten times pypdf's speed. A page without a text
layer but with an image is a scan: it is rendered and read with OCR. The outline (bookmarks) gives
the headings; without one they are inferred from font size and weight.

Without OCR installed, a PDF whose text layer covers most of its pages (a manual with a cover
picture, a report with a scanned appendix) is still read: the pages that needed OCR are counted
in ``unread_pages`` and named in the run's log, and the parse is not cached, so once tesseract
is installed a run of the document's day reads them. A PDF that is mostly scans is quarantined
as ``ocr_unavailable``.
"""

from __future__ import annotations

import time

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from hyperion_pipelines.parsing import ocr
from hyperion_pipelines.parsing.document import (
    Heading,
    ParsedDocument,
    ParseError,
    describe_exception,
    first_line_title,
    normalize_text,
)
from hyperion_pipelines.parsing.pdf_layout import (
    TextLine,
    lay_out,
    place_heading,
    without_contents_entries,
    without_margins,
)
from hyperion_pipelines.parsing.tables import CELL_GAP_RATIO, pdf_table_lines

#: pdfium's marker for a hyphen it removed at a line break ("sys\ufffetems").
_SOFT_HYPHEN = "\ufffe"
_BOLD_WEIGHT = 600
#: Fewer visible characters than this on a page that holds an image: the page is a scan.
_SCAN_MAX_CHARS = 8
#: Without OCR, a PDF is quarantined when more than this share of its pages are scans.
_MAX_UNREAD_SHARE = 0.5


def _char_style(textpage: pdfium.PdfTextPage, index: int) -> tuple[float, bool]:
    size = float(pdfium_c.FPDFText_GetFontSize(textpage, index))
    return size, pdfium_c.FPDFText_GetFontWeight(textpage, index) >= _BOLD_WEIGHT


def _cells(textpage: pdfium.PdfTextPage, start: int, raw: str, size: float) -> tuple[tuple[float, str], ...]:
    """The line cut at gaps wider than a table's column gap; empty when it has none."""
    cells: list[tuple[float, str]] = []
    cell_start, k = 0, 0
    while k < len(raw):
        if not raw[k].isspace() or k == 0:
            k += 1
            continue
        end = k
        while end < len(raw) and raw[end].isspace():
            end += 1
        if end < len(raw) and not raw[k - 1].isspace():
            gap = textpage.get_charbox(start + end)[0] - textpage.get_charbox(start + k - 1)[2]
            if gap > CELL_GAP_RATIO * max(size, 1.0):
                cells.append((textpage.get_charbox(start + cell_start)[0], raw[cell_start:k]))
                cell_start = end
        k = end
    if not cells:
        return ()
    cells.append((textpage.get_charbox(start + cell_start)[0], raw[cell_start:]))
    return tuple((x, normalize_text(text.replace(_SOFT_HYPHEN, "")).strip()) for x, text in cells)


def _page_lines(page_index: int, textpage: pdfium.PdfTextPage) -> list[TextLine]:
    count = textpage.count_chars()
    if count <= 0:
        return []
    text = textpage.get_text_range(0, count)
    lines: list[TextLine] = []
    start = 0
    for raw in text.split("\r\n"):
        end = start + len(raw)
        visible = [i for i in range(start, min(end, count)) if not raw[i - start].isspace()]
        if visible:
            first, last, middle = visible[0], visible[-1], visible[len(visible) // 2]
            size, bold = _char_style(textpage, first)
            bold = bold and _char_style(textpage, middle)[1] and _char_style(textpage, last)[1]
            boxes = [textpage.get_charbox(i) for i in (first, middle, last)]
            lines.append(
                TextLine(
                    page=page_index,
                    text=normalize_text(raw.replace(_SOFT_HYPHEN, "")),
                    top=max(box[3] for box in boxes),
                    bottom=min(box[1] for box in boxes),
                    size=size,
                    bold=bold,
                    left=boxes[0][0],
                    right=boxes[2][2],
                    cells=_cells(textpage, start, raw, size) if end <= count else (),
                )
            )
        start = end + 2  # the "\r\n" pdfium puts between lines
    return lines


def _has_image(page: pdfium.PdfPage) -> bool:
    return any(True for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2))


def _ocr_page(page: pdfium.PdfPage, page_index: int, deadline: float) -> list[TextLine]:
    """A scanned page as lines of OCR text; positions are synthetic (top to bottom, one size)."""
    bitmap = page.render(scale=ocr.RENDER_DPI / 72, grayscale=True)
    pixels = bitmap.to_numpy()
    if pixels.ndim == 3:  # some pdfium builds render grey as BGR(A)
        pixels = pixels[:, :, 0]
    image = ocr.pgm(pixels.shape[1], pixels.shape[0], pixels.tobytes())
    text = ocr.read_image(image, f"page {page_index + 1} (no text layer)", deadline - time.monotonic())
    height = page.get_height()
    rows = [row.strip() for row in text.splitlines()]
    return [
        TextLine(page_index, row, height * (0.9 - 0.8 * n / max(len(rows), 1)), 0.0, 10.0, False)
        for n, row in enumerate(rows)
        if row
    ]


def _outline_headings(document: pdfium.PdfDocument, page_offsets: list[int], text: str) -> list[Heading]:
    headings: list[Heading] = []
    page_ends = [*page_offsets[1:], len(text)]
    try:
        entries = list(document.get_toc(max_depth=8))
    except Exception:  # a damaged outline is not worth failing the document
        return []
    for entry in entries:
        destination = entry.get_dest()
        page = destination.get_index() if destination is not None else None
        title = " ".join(normalize_text(entry.get_title() or "").split())
        if page is None or not 0 <= page < len(page_offsets) or not title:
            continue
        after = headings[-1].offset + 1 if headings else 0
        offset = place_heading(text, title, page_offsets[page], page_ends[page], after)
        headings.append(Heading(entry.level + 1, title, offset))
    return sorted(headings, key=lambda h: h.offset)


def parse_pdf(content: bytes, *, timeout_s: float = 60.0) -> ParsedDocument:
    deadline = time.monotonic() + timeout_s
    try:
        document = pdfium.PdfDocument(content)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ParseError("encrypted", "the PDF is encrypted and needs a password") from exc
        raise ParseError("corrupt", f"unreadable PDF: {describe_exception(exc)}") from exc
    try:
        return _read(document, deadline)
    finally:
        document.close()


def _read(document: pdfium.PdfDocument, deadline: float) -> ParsedDocument:
    pages: list[list[TextLine]] = []
    heights: list[float] = []
    scanned, unread = 0, 0
    missing_ocr: ocr.OcrUnavailable | None = None
    for index in range(len(document)):
        page = document[index]
        try:
            textpage = page.get_textpage()
            lines = _page_lines(index, textpage)
            textpage.close()
            if sum(len(line.text.strip()) for line in lines) < _SCAN_MAX_CHARS and _has_image(page):
                if missing_ocr is None:  # once OCR is known missing, no page is rendered for it
                    try:
                        lines = _ocr_page(page, index, deadline)
                        scanned += 1
                    except ocr.OcrUnavailable as exc:
                        missing_ocr = exc
                if missing_ocr is not None:
                    unread += 1
                    if unread > _MAX_UNREAD_SHARE * len(document):
                        what = f"the PDF (over half of its {len(document)} pages have no text layer)"
                        raise ocr.OcrUnavailable(what, missing_ocr.missing) from missing_ocr
            pages.append(lines)
            heights.append(page.get_height())
        finally:
            page.close()
    # Margins first: a running head with the page number far right would pass for a table row.
    pages = [pdf_table_lines(lines) for lines in without_contents_entries(without_margins(pages, heights))]
    laid_out = lay_out(pages, infer_headings=False)
    headings = _outline_headings(document, laid_out.page_offsets, laid_out.text)
    if not headings:
        laid_out = lay_out(pages, infer_headings=True)
        headings = laid_out.headings
    title = str(document.get_metadata_value("Title") or "").strip()
    return ParsedDocument(
        text=laid_out.text,
        title=title[:200] or first_line_title(laid_out.text),
        parser="pdfium",
        headings=headings,
        page_offsets=laid_out.page_offsets,
        ocr_pages=scanned,
        unread_pages=unread,
    )
