"""Parsing fidelity on real files: a TeX-made manual, a browser-printed PDF with running headers,
tables in PDF, DOCX and HTML, a scanned page and image uploads read with OCR, and the fidelity
gate that catches a broken extraction.

The TeX-made PDF is Debian's own FAQ (``debian-faq``, fetched with ``apt-get download``); the
browser-printed one is made here by Debian's chromium from an HTML page the test writes; scans are
that PDF's pages rasterised by pdfium; OCR is Debian's tesseract. All are installed when missing.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import docx
import pandas as pd
import pypdfium2 as pdfium
import pytest
from dagster import DagsterInstance
from PIL import Image

from hyperion_pipelines.chunking.stage import chunk_documents
from hyperion_pipelines.chunking.tables import table_header
from hyperion_pipelines.parsing import registry
from hyperion_pipelines.parsing.document import ParsedDocument, ParseError
from hyperion_pipelines.parsing.fidelity import assess_fidelity
from hyperion_pipelines.parsing.html import parse_html
from hyperion_pipelines.parsing.pdf_layout import TextLine, heading_levels, lay_out, margin_lines
from hyperion_pipelines.parsing.pdf_pypdf import parse_pdf_pypdf
from hyperion_pipelines.parsing.sandbox import ParserSandbox
from hyperion_pipelines.parsing.stage import fidelity_summary
from hyperion_pipelines.parsing.tables import pdf_table_lines
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.sources import media_type as mt
from hyperion_pipelines.spec import SUPPORTED_MEDIA_TYPES, ChunkingSpec, ParsingLimits, ParsingSpec

from ..conftest import REPO, UPLOAD_DAY, ensure_debian_packages
from ..support.commands import quarantine_cli
from ..support.model_tokenizer import TOKENIZER
from ..support.pipeline_runs import index_entries, run_partition
from ..support.uploads import upload

TESSERACT = Path("/usr/bin/tesseract")
CHROMIUM = Path("/usr/bin/chromium")
SOFFICE = Path("/usr/bin/soffice")
DEB_CACHE = REPO / "benchmarks" / ".cache" / "debs"
FAQ_PDF = Path("usr/share/doc/debian/FAQ/debian-faq.en.pdf.gz")
SCAN_DPI = 150

PAGE = """
<h1>Part {n}: Keeping bees through winter</h1>
<p>Honeybee colonies survive the cold by forming a tight cluster around the queen. {opening} the workers
shiver their flight muscles to make heat, and the cluster moves slowly across the comb as it eats
the stored honey. A strong colony keeps the centre of the cluster near thirty degrees.</p>
<h2>Feeding the colony in part {n}</h2>
<p>A colony needs about twenty kilograms of honey to last until spring. Beekeepers who take too
much honey in autumn must feed sugar syrup or fondant instead, and they heft the hive to judge
what is left.</p>
<table><tr><th>Month</th><th>Stores used</th><th>Cluster size</th></tr>
<tr><td>November</td><td>2 kg</td><td>large</td></tr>
<tr><td>December</td><td>2.5 kg</td><td>medium</td></tr>
<tr><td>January</td><td>3 kg</td><td>small</td></tr></table>
<h2>Ventilation and damp in part {n}</h2>
<p>Condensation kills more colonies than cold does. A small upper entrance lets moist air escape
without chilling the cluster, and a hive tilted forward sheds the water that runs down its walls.</p>
<p style="page-break-after: always"></p>
"""
SCAN_SENTENCE = "Honeybee colonies survive the cold by forming a tight cluster around the queen"


def _load_corpus_module():
    spec = importlib.util.spec_from_file_location("benchmark_corpus", REPO / "benchmarks" / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def faq_pdf() -> bytes:
    """Debian's FAQ as its publisher ships it: a TeX-made (dblatex/xdvipdfmx) PDF, 73 pages."""
    import gzip

    corpus = _load_corpus_module()
    root = corpus.extract_deb(corpus.download_deb("debian-faq", DEB_CACHE), DEB_CACHE)
    return gzip.decompress((root / FAQ_PDF).read_bytes())


@pytest.fixture(scope="module")
def browser_pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Chromium's print-to-PDF of three pages, with its running header (date, title) and footer
    (address, "n/3") on every page, and no outline."""
    chromium = ensure_debian_packages(CHROMIUM, "chromium")
    folder = tmp_path_factory.mktemp("print")
    page = folder / "hives.html"
    openings = {1: "In late autumn", 2: "Through the darkest weeks", 3: "When the days lengthen"}
    body = "".join(PAGE.format(n=n, opening=opening) for n, opening in openings.items())
    style = "<style>td, th { padding: 2px 12px; text-align: left }</style>"  # columns a reader can see
    page.write_text(f"<!doctype html><html><head><title>Hive notes</title>{style}</head><body>{body}</body></html>")
    out = folder / "hives.pdf"
    subprocess.run(
        [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", f"--print-to-pdf={out}", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out.read_bytes()


@pytest.fixture(scope="module")
def writer_pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """LibreOffice Writer's PDF of a Word document: heading styles, a running header, a page-number
    footer, bulleted lists and a table on each of three pages."""
    soffice = ensure_debian_packages(SOFFICE, "--no-install-recommends", "libreoffice-writer-nogui")
    folder = tmp_path_factory.mktemp("writer")
    document = docx.Document()
    section = document.sections[0]
    section.header.paragraphs[0].text = "Apiary handbook, internal"
    footer = section.footer.paragraphs[0]
    footer.text = "Page "
    footer._p.append(docx.oxml.parse_xml(f'<w:fldSimple {docx.oxml.ns.nsdecls("w")} w:instr="PAGE"/>'))
    for n in range(1, 4):
        document.add_heading(f"Part {n}: Keeping bees through winter", level=1)
        for _ in range(3):
            document.add_paragraph(PAGE.split("<p>")[1].split("</p>")[0].format(n=n, opening="In winter"))
        document.add_heading(f"Feeding the colony in part {n}", level=2)
        for item in ("Heft the hive to judge its stores", "Feed fondant when it feels light"):
            document.add_paragraph(item, style="List Bullet")
        grid = document.add_table(rows=4, cols=3)
        rows = [["Month", "Stores used", "Cluster size"], ["November", "2 kg", "large"]]
        rows += [["December", "2.5 kg", "medium"], ["January", "3 kg", "small"]]
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
        document.add_page_break()
    document.save(folder / "handbook.docx")
    subprocess.run(
        [str(soffice), f"-env:UserInstallation={(folder / 'profile').as_uri()}", "--headless", "--convert-to", "pdf",
         "--outdir", str(folder), str(folder / "handbook.docx")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return (folder / "handbook.pdf").read_bytes()


def parse(content: bytes, media_type: str, **limits: float) -> ParsedDocument:
    return registry.parse_document(content, media_type, SUPPORTED_MEDIA_TYPES, limits=ParsingLimits(**limits))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


# --- PDF text ---------------------------------------------------------------------------------


def test_tex_made_pdf_keeps_its_word_spacing_and_drops_running_heads(faq_pdf: bytes) -> None:
    doc = parse(faq_pdf, mt.PDF)
    assert doc.parser == "pdfium" and doc.fidelity is not None and doc.fidelity >= 0.9
    # pypdf's text of this page reads "DebianGNU/Linuxincludescompletesource-codeforall...".
    assert "Debian GNU/Linux includes complete source-code for all of the included programs" in doc.text
    assert len(doc.page_offsets) == 73 and len(doc.headings) > 100  # the outline's entries
    # The running heads ("CHAPTER 4. COMPATIBILITY ISSUES 4.1. ON WHAT ...") and page numbers are gone.
    assert not re.search(r"(?m)^(CHAPTER \d+\.|\d+ CHAPTER)", doc.text)
    numbered_pages = sum(bool(re.search(rf"(?m)^\s*{n - 6}\s*$", doc.text)) for n in range(10, 73))
    assert numbered_pages <= 3  # a footnote mark may be a bare number on its line; page numbers were 60+


def test_the_gate_catches_the_broken_extraction_and_quarantines_it_with_figures(
    faq_pdf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = parse_pdf_pypdf(faq_pdf)
    fidelity = assess_fidelity(broken.text, len(broken.page_offsets))
    assert fidelity.score < 0.5 and fidelity.weakest == "word breaks", fidelity.describe()
    # With pypdf as the only PDF extractor, the document is quarantined, never indexed silently.
    monkeypatch.setitem(registry.EXTRACTORS, mt.PDF, (("pypdf", lambda content, _: parse_pdf_pypdf(content)),))
    with pytest.raises(ParseError) as raised:
        parse(faq_pdf, mt.PDF)
    assert raised.value.reason == "low_fidelity"
    assert "words over 20 letters" in raised.value.message and "min_fidelity 0.5" in raised.value.message
    assert "pypdf 0." in raised.value.message
    # The threshold is the pipeline's: 0 turns the gate off.
    assert parse(faq_pdf, mt.PDF, min_fidelity=0.0).parser == "pypdf"


def test_a_failing_first_extractor_falls_back_to_the_next_and_the_better_text_is_kept(
    browser_pdf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = registry.EXTRACTORS[mt.PDF]

    def spaces_lost(content: bytes, limits: ParsingLimits) -> ParsedDocument:
        good = original[0][1](content, limits)
        return ParsedDocument(good.text.replace(" ", ""), good.title, "spaces_lost", page_offsets=good.page_offsets)

    monkeypatch.setitem(registry.EXTRACTORS, mt.PDF, (("spaces_lost", spaces_lost), *original[1:]))
    doc = parse(browser_pdf, mt.PDF)
    assert doc.parser == "pypdf" and doc.fidelity >= 0.5
    assert SCAN_SENTENCE in " ".join(doc.text.split())


def test_browser_printed_pdf_has_headings_from_fonts_tables_as_rows_and_no_running_heads(browser_pdf: bytes) -> None:
    doc = parse(browser_pdf, mt.PDF)
    assert doc.parser == "pdfium" and len(doc.page_offsets) == 3
    assert [(h.level, h.text) for h in doc.headings[:3]] == [
        (1, "Part 1: Keeping bees through winter"),
        (2, "Feeding the colony in part 1"),
        (2, "Ventilation and damp in part 1"),
    ]
    assert len(doc.headings) == 9
    for heading in doc.headings:
        assert doc.text[heading.offset :].startswith(heading.text)
    # The header (date and title) and footer (file address and "n/3") of every page are gone.
    assert "Hive notes" not in doc.text and "file://" not in doc.text and not re.search(r"\d/3\b", doc.text)
    table = "| Month | Stores used | Cluster size |\n| --- | --- | --- |\n| November | 2 kg | large |"
    assert doc.text.count(table) == 3


def test_word_processor_pdf_has_outline_headings_list_items_and_table_rows_and_no_margins(writer_pdf: bytes) -> None:
    doc = parse(writer_pdf, mt.PDF)
    assert doc.parser == "pdfium" and doc.fidelity >= 0.9 and len(doc.page_offsets) >= 3
    assert [(h.level, h.text) for h in doc.headings[:2]] == [
        (1, "Part 1: Keeping bees through winter"),
        (2, "Feeding the colony in part 1"),
    ]
    assert "Apiary handbook" not in doc.text and not re.search(r"(?m)^Page \d+$", doc.text)
    # Writer sets a bullet a tab stop from its text: a list item, not a two-column table.
    assert doc.text.count("• Heft the hive to judge its stores\n") == 3 and "| • |" not in doc.text
    # and its table rows far apart: still one table, its rows together under the header
    table = "| Month | Stores used | Cluster size |\n| --- | --- | --- |\n| November | 2 kg | large |\n| December"
    assert doc.text.count(table) == 3


# --- tables -----------------------------------------------------------------------------------


def test_docx_and_html_tables_are_markdown_rows_with_merged_cells_once() -> None:
    document = docx.Document()
    document.add_heading("Hive inspections", level=1)
    grid = document.add_table(rows=3, cols=3)
    for r, row in enumerate([["Hive", "Queen seen", "Frames of brood"], ["North", "yes", "6"], ["South", "no", "4"]]):
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    merged = document.add_table(rows=2, cols=2)
    merged.cell(0, 0).merge(merged.cell(0, 1)).text = "Both apiaries"
    merged.cell(1, 0).text, merged.cell(1, 1).text = "spring", "autumn"
    buffer = io.BytesIO()
    document.save(buffer)
    text = parse(buffer.getvalue(), mt.DOCX).text
    assert (
        "| Hive | Queen seen | Frames of brood |\n| --- | --- | --- |\n| North | yes | 6 |\n| South | no | 4 |" in text
    )
    assert "| Both apiaries |  |\n| --- | --- |\n| spring | autumn |" in text

    html = parse_html(
        b"<table><caption>Stores</caption><thead><tr><th>Month</th><th>Stores | kg</th></tr></thead>"
        b"<tbody><tr><td>November</td><td>2</td></tr></tbody></table>"
        b"<table><tr><td><p>a layout table with one column</p></td></tr></table>"
    ).text
    assert (
        html == "Stores\n\n| Month | Stores \\| kg |\n| --- | --- |\n| November | 2 |\n\na layout table with one column"
    )


def test_a_chunk_that_splits_a_table_carries_its_header_row() -> None:
    rows = "".join(
        f"<tr><td>Hive {i}</td><td>{i % 7} frames of brood</td><td>inspected in week {i}</td></tr>" for i in range(60)
    )
    page = f"<h1>Inspection log</h1><table><tr><th>Hive</th><th>Brood</th><th>When</th></tr>{rows}</table>"
    doc = parse(page.encode(), mt.HTML)
    parsed = pd.DataFrame(
        [{"document_id": "d" * 32, "source": "log.html", "title": doc.title, "sha256": "a" * 64, "status": "parsed",
          "text": doc.text, "headings": [{"level": h.level, "text": h.text, "offset": h.offset} for h in doc.headings],
          "page_offsets": []}]
    )  # fmt: skip
    chunks = chunk_documents(
        parsed, TOKENIZER, ChunkingSpec(max_tokens=80, overlap_tokens=0), "f" * 16, context_tokens=40
    )
    assert len(chunks) >= 4
    header = "| Hive | Brood | When |"
    for chunk in chunks.itertuples(index=False):
        assert chunk.text == doc.text[chunk.char_start : chunk.char_end]  # the text stays a slice
        starts_in_body = chunk.text.startswith("| Hive ") and not chunk.text.startswith(header)
        assert (header in chunk.context) == starts_in_body, (chunk.text[:40], chunk.context)
    assert table_header(doc.text, doc.text.index("| Hive 30 ")) == header


# --- scans and images -------------------------------------------------------------------------


def scanned_pdf(source: bytes) -> bytes:
    """The first page of ``source`` as a scanner makes it: one greyscale image, no text layer."""
    document = pdfium.PdfDocument(source)
    bitmap = document[0].render(scale=SCAN_DPI / 72, grayscale=True)
    scan = pdfium.PdfDocument.new()
    width, height = bitmap.width * 72 / SCAN_DPI, bitmap.height * 72 / SCAN_DPI
    image = pdfium.PdfImage.new(scan)
    image.set_bitmap(bitmap)
    image.set_matrix(pdfium.PdfMatrix().scale(width, height))
    page = scan.new_page(width, height)
    page.insert_obj(image)
    page.gen_content()
    out = io.BytesIO()
    scan.save(out)
    return out.getvalue()


def pdf_of(*documents: bytes) -> bytes:
    """One PDF of every page of ``documents``, in order."""
    merged = pdfium.PdfDocument.new()
    for content in documents:
        merged.import_pages(pdfium.PdfDocument(content))
    out = io.BytesIO()
    merged.save(out)
    return out.getvalue()


def page_image(source: bytes, fmt: str) -> bytes:
    picture = pdfium.PdfDocument(source)[0].render(scale=SCAN_DPI / 72).to_pil().convert("L")
    out = io.BytesIO()
    picture.save(out, format=fmt)
    return out.getvalue()


def test_a_scanned_page_and_image_uploads_are_read_with_ocr_and_marked(browser_pdf: bytes) -> None:
    ensure_debian_packages(TESSERACT, "tesseract-ocr", "tesseract-ocr-eng")
    scan = scanned_pdf(browser_pdf)
    assert pdfium.PdfDocument(scan)[0].get_textpage().count_chars() == 0
    doc = parse(scan, mt.PDF)
    assert doc.parser == "pdfium" and doc.ocr_pages == 1 and doc.fidelity >= 0.5
    recognised = set(words(doc.text))
    assert len(set(words(SCAN_SENTENCE)) - recognised) <= 1, doc.text[:300]
    for fmt, media_type in (("PNG", mt.PNG), ("JPEG", mt.JPEG), ("TIFF", mt.TIFF)):
        content = page_image(browser_pdf, fmt)
        assert mt.sniff_media_type(content, f"scan.{fmt.lower()}") == media_type
        image = parse(content, media_type)
        assert image.parser == "tesseract" and image.ocr_pages == 1
        assert len(set(words(SCAN_SENTENCE)) - set(words(image.text))) <= 1, (fmt, image.text[:300])
    assert Image.open(io.BytesIO(page_image(browser_pdf, "PNG"))).size[0] > 1000


def test_without_ocr_a_scan_is_quarantined_with_the_install_command(
    browser_pdf: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on it; the sandbox child inherits it
    with ParserSandbox(ParsingLimits()) as sandbox:
        for content, media_type in ((scanned_pdf(browser_pdf), mt.PDF), (page_image(browser_pdf, "PNG"), mt.PNG)):
            with pytest.raises(ParseError) as raised:
                sandbox.parse(content, media_type, SUPPORTED_MEDIA_TYPES, "scan")
            assert raised.value.reason == "ocr_unavailable"
            assert "apt-get install tesseract-ocr tesseract-ocr-eng" in raised.value.message


def test_without_ocr_a_pdf_mostly_in_text_is_read_and_its_scanned_pages_counted(
    browser_pdf: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = scanned_pdf(browser_pdf)
    # A manual with a scanned cover: Debian's own Reference has one, and was quarantined whole.
    with_cover = pdf_of(scan, browser_pdf)
    half_scans = pdf_of(scan, scan, scan, browser_pdf)  # 3 of 6 pages
    mostly_scans = pdf_of(scan, scan, browser_pdf, scan, scan)  # 4 of 7 pages
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on it; the sandbox child inherits it
    with ParserSandbox(ParsingLimits()) as sandbox:
        doc = sandbox.parse(with_cover, mt.PDF, SUPPORTED_MEDIA_TYPES, "manual.pdf")
        assert doc.unread_pages == 1 and doc.ocr_pages == 0 and len(doc.page_offsets) == 4
        assert "Ventilation and damp in part 3" in doc.text and doc.fidelity >= 0.9
        assert sandbox.parse(half_scans, mt.PDF, SUPPORTED_MEDIA_TYPES, "half.pdf").unread_pages == 3
        with pytest.raises(ParseError) as raised:
            sandbox.parse(mostly_scans, mt.PDF, SUPPORTED_MEDIA_TYPES, "scans.pdf")
    assert raised.value.reason == "ocr_unavailable"
    assert "over half of its 7 pages have no text layer" in raised.value.message
    assert "apt-get install tesseract-ocr tesseract-ocr-eng" in raised.value.message

    # When pdfium's text fails the gate and pypdf's is kept, the pages left unread are still counted.
    original = registry.EXTRACTORS[mt.PDF]

    def spaces_lost(content: bytes, limits: ParsingLimits) -> ParsedDocument:
        good = original[0][1](content, limits)
        assert good.unread_pages == 1
        return ParsedDocument(
            good.text.replace(" ", ""), good.title, "spaces_lost", page_offsets=good.page_offsets, unread_pages=1
        )

    monkeypatch.setitem(registry.EXTRACTORS, mt.PDF, (("spaces_lost", spaces_lost), *original[1:]))
    doc = parse(with_cover, mt.PDF)
    assert doc.parser == "pypdf" and doc.unread_pages == 1


def test_a_partition_shows_fidelity_and_extractors_and_quarantines_what_ocr_cannot_read(
    hyperion_env: Settings, sample_uploads: Path, browser_pdf: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(sample_uploads, "scans/hives.png", page_image(browser_pdf, "PNG"))
    upload(sample_uploads, "print/hives.pdf", browser_pdf)
    upload(sample_uploads, "print/with-cover.pdf", pdf_of(scanned_pdf(browser_pdf), browser_pdf))
    path_with_ocr = os.environ["PATH"]
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    monkeypatch.setenv("PATH", f"{empty_path}:{Path(sys.executable).parent}")  # no tesseract
    with DagsterInstance.ephemeral() as instance:
        metadata = run_partition(Settings.from_env(), instance)
    parsed = metadata["parsed_documents"]
    assert parsed["parsed_by_extractor"]["pdfium"] >= 2 and "tesseract" not in parsed["parsed_by_extractor"]
    assert 0.5 <= parsed["fidelity_min"] <= parsed["fidelity_p10"] <= parsed["fidelity_median"] <= 1.0
    assert sum(parsed["fidelity_histogram"].values()) == parsed["parsed"]
    assert parsed["ocr_documents"] == 0 and parsed["low_fidelity"] == 0
    assert parsed["documents_with_unread_pages"] == 1 and parsed["unread_pages"] == 1
    quarantined = {row["source"]: row for row in quarantine_cli("--date", UPLOAD_DAY)}
    assert quarantined["scans/hives.png"]["reason"] == "ocr_unavailable"
    assert "apt-get install tesseract-ocr" in quarantined["scans/hives.png"]["message"]
    assert "print/with-cover.pdf" not in quarantined
    indexed = {source for source, _ in index_entries(hyperion_env).values()}
    assert {"print/hives.pdf", "print/with-cover.pdf"} <= indexed
    # Its parse was not cached: once OCR is installed, the next run reads the cover too.
    monkeypatch.setenv("PATH", path_with_ocr)
    ensure_debian_packages(TESSERACT, "tesseract-ocr", "tesseract-ocr-eng")
    with DagsterInstance.ephemeral() as instance:
        metadata = run_partition(Settings.from_env(), instance)
    assert metadata["parsed_documents"]["unread_pages"] == 0
    assert metadata["parsed_documents"]["ocr_pages"] == 2  # the cover, and the image upload


# --- pure logic -------------------------------------------------------------------------------


def test_fidelity_signals_spare_real_text_in_any_script_and_catch_lost_spaces() -> None:
    prose = "Honeybee colonies survive the cold by forming a tight cluster around the queen. " * 20
    assert assess_fidelity(prose).score == 1.0
    assert assess_fidelity(prose.replace(" ", ""), pages=1).score == 0.0
    api = "xsltParseStylesheetDoc parses a stylesheet; see xmlDocGetRootElement and xsltApplyStylesheet. " * 20
    assert assess_fidelity(api).score >= 0.9  # camelCase identifiers are no lost spaces
    assert assess_fidelity("蜜蜂の群れは女王の周りに密集して冬を越します。" * 30).score == 1.0
    assert assess_fidelity(prose + "l" * 240).score >= 0.9  # one long token does not sink a document
    assert assess_fidelity("\ufffd" * 50 + prose).weakest == "replacement characters"
    assert assess_fidelity("Scan of the first page", pages=40).weakest == "text per page"


def _line(page: int, text: str, bottom: float, size: float = 10.0, bold: bool = False) -> TextLine:
    return TextLine(page, text, bottom + size, bottom, size, bold)


def test_margins_are_found_by_repetition_page_numbers_and_a_recurring_isolated_height() -> None:
    pages = []
    for page in range(6):
        section = f"{page // 2 + 1}.{page % 2 + 1}. SECTION {'ABCDEF'[page]}"  # differs page to page
        body = [_line(page, f"Body line {n} of page {page}, about bees.", 700 - 12 * n) for n in range(40)]
        pages.append([_line(page, section, 790), *body, _line(page, str(page + 1), 40)])
    dropped = margin_lines(pages, [842.0] * 6)
    assert dropped == {(p, 0) for p in range(6)} | {(p, 41) for p in range(6)}
    # a single page keeps a bare body line that is not in a margin band
    assert margin_lines([[_line(0, "42", 400)]], [842.0]) == set()


def test_headings_come_from_size_and_bold_numbered_lines_not_from_bold_words() -> None:
    lines = [
        _line(0, "Keeping bees", 780, size=20),
        _line(0, "Feeding", 750, size=14),
        *[_line(0, f"Body text line {n} about syrup and fondant for winter.", 700 - 12 * n) for n in range(30)],
        _line(0, "2.3 Ventilation", 300, bold=True),
        _line(0, "Note", 280, bold=True),
    ]
    assert heading_levels(lines) == {0: 1, 1: 2, 32: 3}


def test_fidelity_summary_counts_extractors_and_ocr() -> None:
    frame = pd.DataFrame(
        {
            "status": ["parsed", "parsed", "parsed", "rejected"],
            "parser": ["pdfium", "tesseract", "html", None],
            "fidelity": [0.55, 1.0, 0.95, None],
            "ocr_pages": [2, 1, 0, 0],
            "unread_pages": [1, 0, 0, 0],
            "reason": [None, None, None, "low_fidelity"],
        }
    )
    summary = fidelity_summary(frame)
    assert summary["parsed_by_extractor"] == {"html": 1, "pdfium": 1, "tesseract": 1}
    assert summary["ocr_documents"] == 2 and summary["ocr_pages"] == 3 and summary["low_fidelity"] == 1
    assert summary["documents_with_unread_pages"] == 1 and summary["unread_pages"] == 1
    assert summary["fidelity_min"] == 0.55 and summary["fidelity_median"] == 0.95
    assert summary["fidelity_histogram"] == {"0.0-0.5": 0, "0.5-0.7": 1, "0.7-0.9": 0, "0.9-1.0": 2}
    assert ParsingSpec().limits.min_fidelity == 0.5


def test_list_markers_set_apart_from_their_text_are_list_items_and_table_rows_stay_rows() -> None:
    def row(bottom: float, *cells: tuple[float, str]) -> TextLine:
        text = "   ".join(text for _, text in cells)
        return TextLine(0, text, bottom + 10, bottom, 10.0, False, cells[0][0], 400, cells)

    def texts(*lines: TextLine) -> list[str]:
        return [line.text for line in pdf_table_lines(lines)]

    numbered = [row(700 - 14 * n, (72, f"{n}."), (90, f"step {n} of the inspection")) for n in (1, 2, 3)]
    wrapped = TextLine(0, "which takes a while", 650, 640, 10.0, False, 90, 300)  # item 2's text goes on
    assert texts(*numbered[:2], wrapped, numbered[2]) == [
        "1. step 1 of the inspection",
        "2. step 2 of the inspection",
        "which takes a while",
        "3. step 3 of the inspection",
    ]
    # Word's Symbol-font bullet is a private-use character
    assert texts(row(600, (72, "\uf0b7"), (90, "heft the hive")), row(586, (72, "\uf0b7"), (90, "feed"))) == [
        "• heft the hive",
        "• feed",
    ]
    # a "-" for a missing value, or letters in a first column, keep a table a table
    fruit = [("Fruit", "Count"), ("Apples", "4"), ("-", "5"), ("Pears", "7")]
    assert texts(*(row(500 - 14 * n, (72, a), (200, b)) for n, (a, b) in enumerate(fruit))) == [
        "| Fruit | Count |\n| --- | --- |",
        "| Apples | 4 |",
        "| - | 5 |",
        "| Pears | 7 |",
    ]
    grades = [("Grade", "Meaning"), ("A.", "excellent"), ("B.", "good")]
    assert texts(*(row(400 - 14 * n, (72, a), (200, b)) for n, (a, b) in enumerate(grades))) == [
        "| Grade | Meaning |\n| --- | --- |",
        "| A. | excellent |",
        "| B. | good |",
    ]


def test_rows_of_a_table_stay_together_however_far_apart_they_are_set() -> None:
    def line(bottom: float, text: str, *cells: tuple[float, str]) -> TextLine:
        return TextLine(0, text, bottom + 10, bottom, 10.0, False, 72, 300, cells)

    body = [line(700 - 14 * n, f"Line {n} of a paragraph about winter stores.") for n in range(4)]
    rows = [("Month", "Stores"), ("November", "2 kg"), ("December", "3 kg")]
    table = [line(600 - 40 * n, f"{a}   {b}", (72, a), (200, b)) for n, (a, b) in enumerate(rows)]  # 40 pt apart
    text = lay_out([pdf_table_lines([*body, *table])], infer_headings=False).text
    assert text.endswith("\n\n| Month | Stores |\n| --- | --- |\n| November | 2 kg |\n| December | 3 kg |")
