"""Archive formats (DOCX is a zip): refuse what would unpack beyond the limits (zip bombs)."""

from __future__ import annotations

import io
import zipfile

from hyperion_pipelines.parsing.document import ParseError, describe_exception
from hyperion_pipelines.sources.media_type import ZIP_ERRORS

MAX_ENTRIES = 10_000  # a Word document has tens of parts; tens of thousands is an attack


def check_archive(content: bytes, *, max_expanded_bytes: int, max_ratio: float) -> None:
    """Read only the central directory: the declared sizes bound what ``zipfile`` will inflate
    (it stops at the declared size and fails the CRC on a lie), so checking them is enough."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            entries = archive.infolist()
    except ZIP_ERRORS as exc:
        raise ParseError("corrupt", f"unreadable zip archive: {describe_exception(exc)}") from exc
    if len(entries) > MAX_ENTRIES:
        raise ParseError("archive_too_large", f"{len(entries)} entries in the archive (limit {MAX_ENTRIES})")
    expanded = sum(entry.file_size for entry in entries)
    if expanded > max_expanded_bytes:
        raise ParseError(
            "archive_too_large", f"unpacks to {expanded} bytes (limit {max_expanded_bytes}); a zip bomb or too big"
        )
    ratio = expanded / max(len(content), 1)
    if ratio > max_ratio:
        raise ParseError(
            "archive_too_large", f"compression ratio {ratio:.0f}:1 (limit {max_ratio:.0f}:1); looks like a zip bomb"
        )
