"""OCR with Debian's tesseract (``tesseract-ocr`` and ``tesseract-ocr-eng``), run offline.

Runs inside the parser sandbox: tesseract is a child of the sandboxed parser, so it shares the
document's time budget, inherits its memory limit and dies with it. Where tesseract or its English
data is missing, the document is quarantined as ``ocr_unavailable`` with the command that installs
them, never skipped (a PDF whose text layer holds most of its pages is the exception: see
``parsing.pdf``).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from hyperion_pipelines.child_processes import die_with_parent
from hyperion_pipelines.parsing.document import ParseError, normalize_text

LANGUAGE = "eng"
#: Rendering resolution of a scanned PDF page: tesseract reads body text well from 200 dpi on.
RENDER_DPI = 200
INSTALL_HINT = "install Debian's tesseract-ocr and tesseract-ocr-eng (apt-get install tesseract-ocr tesseract-ocr-eng)"


def tesseract_path() -> str | None:
    return shutil.which("tesseract")


class OcrUnavailable(ParseError):
    """OCR was needed and cannot run here; ``missing`` says what is missing."""

    def __init__(self, what: str, missing: str = "tesseract is not installed"):
        super().__init__("ocr_unavailable", f"{what} needs OCR, and {missing}: {INSTALL_HINT}")
        self.missing = missing


def read_image(image: bytes, what: str, timeout_s: float) -> str:
    """The text tesseract reads in ``image`` (PNG, JPEG, TIFF, PNM: anything leptonica opens)."""
    binary = tesseract_path()
    if binary is None:
        raise OcrUnavailable(what)
    # One thread: parsers of several runs share the cores, and OpenMP's threads only add overhead.
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(
            [binary, "stdin", "stdout", "-l", LANGUAGE, "--psm", "3"],
            input=image,
            capture_output=True,
            timeout=max(timeout_s, 1.0),
            env=env,
            preexec_fn=die_with_parent,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ParseError("parse_timeout", f"OCR of {what} took longer than {timeout_s:g} s") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace")
        if "Failed loading language" in message or "Error opening data file" in message:
            raise OcrUnavailable(what, f"tesseract has no '{LANGUAGE}' data")
        # leptonica names the failure in its first lines ("Error in pixReadMem: ..."), tesseract last
        lines = [line.strip() for line in message.splitlines() if line.strip()] or [f"exit code {done.returncode}"]
        raise ParseError("corrupt", f"{what} cannot be decoded for OCR: {lines[0][:200]}")
    return normalize_text(done.stdout.decode("utf-8", "replace"))


def pgm(width: int, height: int, pixels: bytes) -> bytes:
    """An 8-bit greyscale image as binary PGM, which tesseract reads without a codec."""
    return b"P5\n%d %d\n255\n" % (width, height) + pixels
