"""PNG, JPEG and TIFF uploads: the text in the picture, read with OCR."""

from __future__ import annotations

from hyperion_pipelines.parsing import ocr
from hyperion_pipelines.parsing.document import ParsedDocument, first_line_title


def parse_image(content: bytes, *, timeout_s: float = 60.0) -> ParsedDocument:
    text = "\n".join(line.rstrip() for line in ocr.read_image(content, "an image", timeout_s).strip().splitlines())
    return ParsedDocument(text=text, title=first_line_title(text), parser="tesseract", ocr_pages=1)
