"""Materialisation metadata: table schemas, column lineage, Markdown previews, distributions, timings.

Numeric entries keep their names from run to run (and from partition to partition): the UI plots
the history of a name, so renaming one starts a new plot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from dagster import AssetKey, MetadataValue, TableColumn, TableColumnDep, TableColumnLineage, TableSchema

from hyperion_pipelines.run_metadata import STEP_SECONDS

_TYPES = {
    "int64": "int",
    "Int64": "int",
    "float64": "float",
    "bool": "bool",
    "object": "string",
    "str": "string",
}


def _type(dtype: Any) -> str:
    name = str(dtype)
    return "timestamp" if name.startswith("datetime64") else _TYPES.get(name, name)


def table_schema(
    frame: pd.DataFrame, descriptions: Mapping[str, str] | None = None, types: Mapping[str, str] | None = None
) -> TableSchema:
    """The frame's columns; ``types`` names what an ``object`` column really holds (lists, records)."""
    descriptions, types = descriptions or {}, types or {}
    return TableSchema(
        columns=[
            TableColumn(
                name=str(name), type=types.get(str(name), _type(dtype)), description=descriptions.get(str(name))
            )
            for name, dtype in frame.dtypes.items()
        ]
    )


def column_lineage(
    upstream: Mapping[str, AssetKey], deps: Mapping[str, Sequence[tuple[str, str]]]
) -> TableColumnLineage:
    """``deps`` maps each output column to the (upstream asset name, column) pairs it is computed
    from; ``upstream`` resolves those names to asset keys."""
    return TableColumnLineage(
        deps_by_column={
            column: [TableColumnDep(asset_key=upstream[name], column_name=source) for name, source in sources]
            for column, sources in deps.items()
        }
    )


def _cell(value: Any, width: int) -> str:
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def markdown_preview(
    frame: pd.DataFrame, columns: Sequence[str], rows: int = 5, width: int = 80, total_rows: int | None = None
) -> MetadataValue:
    """The first ``rows`` rows; ``total_rows``: the output's rows when ``frame`` is its first part."""
    head = frame.head(rows)
    total = len(frame) if total_rows is None else total_rows
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(_cell(v, width) for v in record) + " |"
        for record in head[list(columns)].itertuples(index=False)
    ]
    if total > len(head):
        lines.append(f"\n_{len(head)} of {total} rows_")
    return MetadataValue.md("\n".join(lines))


def frame_metadata(
    frame: pd.DataFrame,
    preview_columns: Sequence[str],
    descriptions: Mapping[str, str] | None = None,
    types: Mapping[str, str] | None = None,
    total_rows: int | None = None,
) -> dict[str, Any]:
    """Row count, column schema and preview; ``frame`` may be the first part of ``total_rows``."""
    return {
        "dagster/row_count": len(frame) if total_rows is None else total_rows,
        "dagster/column_schema": table_schema(frame, descriptions, types),
        "preview": markdown_preview(frame, preview_columns, total_rows=total_rows),
    }


def percentile(values: Sequence[float] | pd.Series, q: float) -> float:
    """The ``q``-th percentile (linear interpolation), one decimal; 0.0 for no values, so the entry
    is there (and a float) in every materialisation."""
    array = np.asarray(values, dtype=float)
    return round(float(np.percentile(array, q)), 1) if array.size else 0.0


def mean(values: Sequence[float] | pd.Series) -> float:
    array = np.asarray(values, dtype=float)
    return round(float(array.mean()), 1) if array.size else 0.0


def bucket_edges(maximum: int, buckets: int = 8) -> list[int]:
    """Upper bounds of equal-width buckets over 1..``maximum``: fixed by configuration, not by the
    data, so the histograms of two partitions (or two runs) compare row by row."""
    return sorted({max(1, math.ceil(maximum * i / buckets)) for i in range(1, buckets + 1)})


def histogram(values: Sequence[int] | pd.Series, edges: Sequence[int], unit: str, of: str) -> MetadataValue:
    """A Markdown table: how many ``of`` fall in each ``unit`` bucket ``(previous edge, edge]``, with
    their share and a bar; values above the last edge get a row of their own when there are any."""
    array = np.asarray(values, dtype=float)
    counts = np.bincount(np.searchsorted(np.asarray(edges), array, side="left"), minlength=len(edges) + 1)
    total = int(array.size)
    lows = [1, *(edge + 1 for edge in edges[:-1])]
    labels = [f"{low}–{high}" if low < high else str(high) for low, high in zip(lows, edges, strict=True)]
    labels.append(f"> {edges[-1]}")
    lines = [f"| {unit} | {of} | share | |", "|---|---:|---:|---|"]
    for index, (label, count) in enumerate(zip(labels, counts.tolist(), strict=True)):
        if index == len(edges) and not count:
            continue
        share = count / total if total else 0.0
        lines.append(f"| {label} | {count} | {share:.0%} | {'█' * round(share * 20)} |")
    return MetadataValue.md("\n".join(lines))


def timing(seconds: float, count: int, unit: str) -> dict[str, Any]:
    return {
        STEP_SECONDS: MetadataValue.float(round(seconds, 3)),
        f"{unit}_per_second": MetadataValue.float(round(count / seconds, 2) if seconds > 0 else 0.0),
    }


def fidelity_metadata(summary: Mapping[str, Any]) -> dict[str, Any]:
    """``parsing.stage.fidelity_summary`` as metadata: floats the UI plots across partitions
    (``fidelity_min``, ``fidelity_p10``, ``fidelity_median``), counts and JSON tables."""
    values: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            values[key] = MetadataValue.json(dict(value))
        elif isinstance(value, float):
            values[key] = MetadataValue.float(value)
        else:
            values[key] = MetadataValue.int(int(value))
    return values
