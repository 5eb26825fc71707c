"""Materialisation metadata: table schemas, Markdown previews, timings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from dagster import MetadataValue, TableColumn, TableSchema

_TYPES = {"int64": "int", "Int64": "int", "float64": "float", "bool": "bool", "object": "string"}


def table_schema(frame: pd.DataFrame, descriptions: dict[str, str] | None = None) -> TableSchema:
    descriptions = descriptions or {}
    return TableSchema(
        columns=[
            TableColumn(
                name=str(name), type=_TYPES.get(str(dtype), str(dtype)), description=descriptions.get(str(name))
            )
            for name, dtype in frame.dtypes.items()
        ]
    )


def _cell(value: Any, width: int) -> str:
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def markdown_preview(frame: pd.DataFrame, columns: Sequence[str], rows: int = 5, width: int = 80) -> MetadataValue:
    head = frame.head(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(_cell(v, width) for v in record) + " |"
        for record in head[list(columns)].itertuples(index=False)
    ]
    if len(frame) > rows:
        lines.append(f"\n_{rows} of {len(frame)} rows_")
    return MetadataValue.md("\n".join(lines))


def frame_metadata(
    frame: pd.DataFrame, preview_columns: Sequence[str], descriptions: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "dagster/row_count": len(frame),
        "dagster/column_schema": table_schema(frame, descriptions),
        "preview": markdown_preview(frame, preview_columns),
    }


def timing(seconds: float, count: int, unit: str) -> dict[str, Any]:
    return {
        "seconds": MetadataValue.float(round(seconds, 3)),
        f"{unit}_per_second": MetadataValue.float(round(count / seconds, 2) if seconds > 0 else 0.0),
    }
