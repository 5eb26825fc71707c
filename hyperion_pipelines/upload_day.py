"""A document's upload day: the unit of work, and the partition key of its assets."""

from __future__ import annotations

from datetime import UTC, datetime


def upload_day(moment: datetime) -> str:
    """The UTC day of ``moment`` as ``YYYY-MM-DD``, the key of its upload-day partition."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d")
