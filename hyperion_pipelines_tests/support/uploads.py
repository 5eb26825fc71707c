"""Files put into an uploads folder with the upload time a test needs, and three short documents
on two upload days that the sensor and re-indexing tests share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ..conftest import set_upload_time


def upload(folder: Path, relative: str, content: bytes, moment: datetime | None = None) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    set_upload_time(path, *([moment] if moment else []))
    return path


def upload_text(folder: Path, relative: str, text: str, moment: datetime | None = None) -> Path:
    return upload(folder, relative, text.encode("utf-8"), moment)


DAY1, DAY2 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC), datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


TEXTS = {
    "bees.md": "# Honeybees\n\nHoneybees survive the winter by clustering together and shivering to make heat.",
    "tides.md": "# Tides\n\nTides rise and fall twice a day because the moon's gravity pulls on the oceans.",
    "volcano.md": "# Volcanoes\n\nA volcano erupts when pressure from molten rock below the crust breaks through.",
}
