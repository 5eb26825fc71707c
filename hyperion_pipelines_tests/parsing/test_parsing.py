"""Media-type sniffing and each parser, on real files of every supported format."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter

from hyperion_pipelines.parsing.document import ParseError
from hyperion_pipelines.parsing.registry import parse_document
from hyperion_pipelines.sources import media_type as mt
from hyperion_pipelines.sources.media_type import sniff_media_type
from hyperion_pipelines.spec import SUPPORTED_MEDIA_TYPES

from ..conftest import SAMPLE_CORPUS


def parse(content: bytes, name: str = ""):
    return parse_document(content, sniff_media_type(content, name), SUPPORTED_MEDIA_TYPES)


def corpus(relative: str) -> bytes:
    return (SAMPLE_CORPUS / relative).read_bytes()


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("guides/sourdough-starter.md", mt.MARKDOWN),
        ("notes/composting.txt", mt.PLAIN),
        ("web/tide-pools.html", mt.HTML),
        ("reports/honeybee-winter-survival.pdf", mt.PDF),
        ("reports/river-restoration.docx", mt.DOCX),
    ],
)
def test_media_type_comes_from_content(relative: str, expected: str) -> None:
    content = corpus(relative)
    assert sniff_media_type(content, relative) == expected
    # The extension does not fool it: binary formats are recognised under a wrong name.
    if expected in (mt.PDF, mt.DOCX, mt.HTML):
        assert sniff_media_type(content, "renamed.txt") == expected


def test_binary_with_a_text_extension_is_not_text() -> None:
    assert sniff_media_type(bytes(range(256)) * 4, "notes.txt") == mt.OCTET
    assert sniff_media_type(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "photo.md") == "image/png"
    assert sniff_media_type(b"", "empty.txt") == mt.EMPTY


def test_markdown_headings_and_title() -> None:
    doc = parse(corpus("guides/sourdough-starter.md"), "sourdough-starter.md")
    assert doc.title == "Keeping a Sourdough Starter Alive"
    assert [(h.level, h.text) for h in doc.headings][:3] == [
        (1, "Keeping a Sourdough Starter Alive"), (2, "Feeding schedule"), (2, "Storing it in the refrigerator"),
    ]  # fmt: skip
    for heading in doc.headings:  # offsets point at the heading's own line
        assert doc.text[heading.offset :].lstrip("# ").startswith(heading.text)


def test_html_keeps_visible_text_and_headings_only() -> None:
    doc = parse(corpus("web/tide-pools.html"), "tide-pools.html")
    assert doc.title == "Exploring Tide Pools"
    assert "console.log" not in doc.text and "font-family" not in doc.text
    assert "home scar" in doc.text
    assert [(h.level, h.text) for h in doc.headings] == [
        (1, "Exploring Tide Pools"), (2, "Who lives there"), (2, "Visiting responsibly"), (3, "Safety"),
    ]  # fmt: skip
    for heading in doc.headings:
        assert doc.text[heading.offset :].startswith(heading.text)


def test_a_parser_library_that_cannot_load_is_a_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parser modules load on first use, inside the parser process's memory limit: a load that
    fails there names the parser and why, as parse_memory (the process is replaced)."""
    import importlib

    real = importlib.import_module

    def import_module(name: str, package: str | None = None):  # noqa: ANN202
        if name == "hyperion_pipelines.parsing.html":
            raise MemoryError
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(ParseError, match="html parser's libraries could not be loaded: MemoryError") as caught:
        parse(corpus("web/tide-pools.html"), "tide-pools.html")
    assert caught.value.reason == "parse_memory"
    assert "starter" in parse(corpus("guides/sourdough-starter.md")).text.lower()  # other parsers still load


def test_pdf_text_pages_and_title() -> None:
    doc = parse(corpus("reports/honeybee-winter-survival.pdf"))
    assert doc.parser == "pdfium"
    assert doc.title == "How Honeybee Colonies Survive the Winter"
    assert len(doc.page_offsets) == 2 and doc.page_offsets[0] == 0
    assert "winter cluster" in doc.text
    assert "mouse guard" in doc.text[doc.page_offsets[1] :]  # the third section is on page two
    # The outline (bookmarks) gives the headings; each is placed on its own line of its page.
    assert [h.text for h in doc.headings] == ["The winter cluster", "Stores of honey", "What the beekeeper can do"]
    for heading in doc.headings:
        assert doc.text[heading.offset :].startswith(heading.text)


def test_docx_paragraphs_headings_and_tables() -> None:
    doc = parse(corpus("reports/river-restoration.docx"))
    assert doc.title == "River Restoration Field Report"
    assert (2, "Works carried out") in [(h.level, h.text) for h in doc.headings]
    assert "Riffles per km | 0 | 7" in doc.text
    for heading in doc.headings:
        assert doc.text[heading.offset :].startswith(heading.text)


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16", "shift_jis"])
def test_text_in_other_encodings_is_decoded(encoding: str) -> None:
    text = "Crème brûlée and café au lait.\n" * 8 if encoding != "shift_jis" else "東京の天気は晴れです。\n" * 8
    doc = parse(text.encode(encoding), "menu.txt")
    assert doc.text.strip() == text.strip()


def test_encrypted_pdf_is_rejected_with_its_reason() -> None:
    writer = PdfWriter(clone_from=io.BytesIO(corpus("reports/honeybee-winter-survival.pdf")))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(ParseError) as error:
        parse(buffer.getvalue(), "locked.pdf")
    assert error.value.reason == "encrypted"


@pytest.mark.parametrize(
    ("content", "name", "reason"),
    [
        (b"", "empty.txt", "empty"),
        (b"   \n\n\t ", "blank.txt", "empty"),
        (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog", "truncated.pdf", "corrupt"),
        (b"PK\x03\x04" + b"\x00" * 100, "broken.docx", "unsupported_type"),
        (bytes(range(256)) * 4, "binary.txt", "unsupported_type"),
    ],
)
def test_unusable_documents_raise_a_reason(content: bytes, name: str, reason: str) -> None:
    with pytest.raises(ParseError) as error:
        parse(content, name)
    assert error.value.reason == reason


def test_html_table_cells_stay_apart() -> None:
    html = (
        b"<html><body><table><tr><th>Name</th><th>Role</th></tr>"
        b"<tr><td>Alice</td><td>Engineer</td></tr></table></body></html>"
    )
    text = parse(html, "t.html").text
    assert "NameRole" not in text and "AliceEngineer" not in text
    assert "Alice" in text and "Engineer" in text


def test_pdf_outline_heading_is_placed_on_its_own_line_not_an_earlier_mention() -> None:
    from hyperion_pipelines.parsing.pdf_layout import place_heading

    text = "Overview\nAs shown in Results below, bees survive.\nResults\nThey do."
    assert text[place_heading(text, "Results", 0, len(text), 0) :].startswith("Results\nThey do.")


def test_docx_entity_references_keep_the_text_after_them() -> None:
    """An entity python-docx leaves unresolved used to end its paragraph's text there."""
    import zipfile

    import docx

    document = docx.Document()
    document.add_paragraph("Prepared by ENTITIES for the river trust, spring survey.")
    document.add_paragraph("Second paragraph.")
    plain = io.BytesIO()
    document.save(plain)
    source, edited = zipfile.ZipFile(io.BytesIO(plain.getvalue())), io.BytesIO()
    with zipfile.ZipFile(edited, "w") as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "word/document.xml":
                head, rest = data.split(b"?>", 1)
                dtd = (
                    b'<!DOCTYPE w:document [<!ENTITY org "Riverside Ltd"><!ENTITY ext SYSTEM "file:///etc/hostname">]>'
                )
                data = head + b"?>" + dtd + rest.replace(b"ENTITIES", b"&org; and &ext;")
            out.writestr(item, data)
    doc = parse(edited.getvalue(), "survey.docx")
    # A declared literal is put back; an external entity is never fetched and stays visible.
    assert "Prepared by Riverside Ltd and &ext; for the river trust, spring survey." in doc.text
    assert "Second paragraph." in doc.text
