"""Document assets are partitioned by upload day (UTC)."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition


def upload_day_partitions(start_date: str) -> DailyPartitionsDefinition:
    # end_offset=1: today's partition exists, so today's uploads are indexed today.
    return DailyPartitionsDefinition(start_date=start_date, timezone="UTC", end_offset=1)
