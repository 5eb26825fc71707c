"""PNG, JPEG and TIFF uploads: the text in the picture, read with OCR."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from hyperion_pipelines.parsing import ocr
from hyperion_pipelines.parsing.document import ParsedDocument, ParseError, first_line_title


def check_decodable(content: bytes) -> None:
    """A picture that cannot be decoded is ``corrupt`` whether or not OCR is installed: the
    reason must not depend on the machine."""
    try:
        with Image.open(io.BytesIO(content)) as picture:
            picture.verify()  # reads the structure and checksums, decodes no pixels
    except Image.DecompressionBombError as exc:
        raise ParseError("parse_memory", f"the image is too large to decode: {str(exc)[:200]}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ParseError("corrupt", f"the image cannot be decoded: {str(exc)[:200]}") from exc


def parse_image(content: bytes, *, timeout_s: float = 60.0) -> ParsedDocument:
    check_decodable(content)
    text = "\n".join(line.rstrip() for line in ocr.read_image(content, "an image", timeout_s).strip().splitlines())
    return ParsedDocument(text=text, title=first_line_title(text), parser="tesseract", ocr_pages=1)
