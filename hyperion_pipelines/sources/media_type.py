"""Detect a document's media type from its content; the file name only breaks ties for text.

A PDF renamed to ``.txt`` is still a PDF, and a binary renamed to ``.md`` is not Markdown.
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile

import filetype

#: What ``zipfile`` raises opening a damaged archive: besides BadZipFile, a flipped byte in the
#: central directory gives NotImplementedError ("zip file version 9.4") or a bad seek/size.
ZIP_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, NotImplementedError, ValueError, OSError, EOFError)


PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
PLAIN = "text/plain"
ZIP = "application/zip"
OCTET = "application/octet-stream"
EMPTY = "application/x-empty"
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
IMAGES = (PNG, JPEG, TIFF)

_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)[\s>]", re.I | re.S)
_MARKDOWN_EXT = (".md", ".markdown", ".mdown")
_MARKDOWN_HINT = re.compile(r"^(#{1,6} \S|```|\* \S|- \S|\d+\. \S)", re.M)
_SNIFF = 8192
# Longest first: the UTF-32 little-endian mark begins with the UTF-16 one.
WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)  # fmt: skip


def looks_binary(head: bytes) -> bool:
    """NUL bytes or many C0 control characters mean it is not text in any 8-bit or UTF-8 encoding."""
    if not head or head.startswith(tuple(bom for bom, _ in WIDE_BOMS)):
        return False  # empty, or UTF-16/32 with a byte-order mark (full of NULs, but text)
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    return controls / len(head) > 0.05


# Office formats that are zip archives too, by the part that names them: refused by their own
# media type (which the quarantine message shows), not as a plain zip file.
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_OOXML_PARTS = {"word/document.xml": DOCX, "ppt/presentation.xml": PPTX, "xl/workbook.xml": XLSX}
_ODF_PREFIX = "application/vnd.oasis.opendocument."


def _zip_kind(content: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
            # OpenDocument: an uncompressed "mimetype" part holding the media type
            odf = ""
            if "mimetype" in names:
                with archive.open("mimetype") as part:  # a bounded read: the part may be a bomb
                    odf = part.read(100).decode("ascii", "replace").strip()
    except ZIP_ERRORS:
        # A broken archive (a truncated upload, say): its first local headers still name the
        # parts, so a damaged Word document is still recognised as one (and found corrupt).
        return DOCX if b"word/" in content[:_SNIFF] or b"[Content_Types].xml" in content[:512] else OCTET
    for part, media_type in _OOXML_PARTS.items():
        if part in names:
            return media_type
    if odf.startswith(_ODF_PREFIX) and re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+-]+", odf):
        return odf
    return ZIP


def _as_utf8(head: bytes) -> bytes:
    """UTF-16/32 text (with its byte-order mark) re-encoded for the markup checks: an HTML page
    saved as UTF-16 is still HTML, not plain text with its scripts in it."""
    for bom, codec in WIDE_BOMS:
        if head.startswith(bom):
            return head.decode(codec, errors="ignore").encode("utf-8")
    return head


def sniff_media_type(content: bytes, file_name: str = "") -> str:
    if not content:
        return EMPTY
    head = content[:_SNIFF]
    if head.lstrip()[:5] == b"%PDF-":
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(content)
    kind = filetype.guess(head)
    if kind is not None:
        return kind.mime
    if looks_binary(head):
        return OCTET
    head = _as_utf8(head)
    if _HTML_START.match(head):
        return HTML
    name = file_name.lower()
    if name.endswith((".html", ".htm")) and re.search(rb"<(p|div|h[1-6]|body|title)[\s>]", head, re.I):
        return HTML
    if name.endswith(_MARKDOWN_EXT):
        return MARKDOWN
    if name.endswith(".txt"):
        return PLAIN
    # No telling extension: Markdown when it has Markdown structure, plain text otherwise.
    text = head.decode("utf-8", errors="replace")
    return MARKDOWN if len(_MARKDOWN_HINT.findall(text)) >= 2 else PLAIN
