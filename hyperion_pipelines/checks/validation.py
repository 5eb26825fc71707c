"""Validate a frame against a pandera schema and report every failure readably.

Validation is lazy: all failures are collected and bad data never raises. The report counts the
failures per check and keeps the first few failure cases as short strings (row id, column, check,
value), ready to be shown as Markdown in asset metadata.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from hyperion_pipelines.checks.schemas import SHOWN_COLUMNS

MAX_CASES = 10
_VALUE_CHARS = 80  # one failing value
_CELL_CHARS = 60  # each value of a row shown for a frame-level check
_VECTOR_HEAD = 3  # values of a vector shown before the ellipsis
_FRAME_CONTEXT = "DataFrameSchema"  # pandera's schema_context of frame-level failures


@dataclass(frozen=True, eq=False)  # eq=False: a DataFrame field has no single truth value
class SchemaReport:
    passed: bool
    rows: int
    failure_count: int  # failure cases: one per failing value, or per failing row of a frame-level check
    failing_rows: int  # distinct rows involved; a failure of a whole column or frame has no row
    failures_by_check: dict[str, int]  # keyed "column: check" for column checks, the check's name otherwise
    failure_cases: pd.DataFrame  # the first cases: [id column,] column, check, failure_case; all strings

    def markdown(self) -> str:
        """The failure cases as a Markdown table, plus a note of how many are not shown."""
        if self.passed:
            return f"All {self.rows} rows pass."
        columns = [str(c) for c in self.failure_cases.columns]
        lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(map(_markdown_cell, row)) + " |" for row in self.failure_cases.itertuples(False)]
        hidden = self.failure_count - len(self.failure_cases)
        if hidden > 0:
            lines.append(f"\n…and {hidden} more failure case{'s' if hidden > 1 else ''}.")
        return "\n".join(lines)


def merged_reports(reports: Sequence[SchemaReport], max_cases: int = MAX_CASES) -> SchemaReport:
    """One report for a step output validated part by part."""
    counts: Counter[str] = Counter()
    for report in reports:
        counts.update(report.failures_by_check)
    cases = [r.failure_cases for r in reports if not r.passed]
    return SchemaReport(
        passed=all(r.passed for r in reports),
        rows=sum(r.rows for r in reports),
        failure_count=sum(r.failure_count for r in reports),
        failing_rows=sum(r.failing_rows for r in reports),
        failures_by_check={key: n for key, n in counts.most_common()},
        failure_cases=pd.concat(cases, ignore_index=True).head(max_cases) if cases else pd.DataFrame(),
    )


def validate_frame(
    frame: pd.DataFrame, schema: pa.DataFrameSchema, id_column: str | None = None, *, max_cases: int = MAX_CASES
) -> SchemaReport:
    """Validate ``frame`` lazily; ``id_column`` names the row of each failure case."""
    try:
        # Pandera str()s every failure case into its error message; numpy prints a whole vector
        # (~2 ms for 384 floats) unless told to summarise.
        with np.printoptions(threshold=2 * _VECTOR_HEAD, edgeitems=_VECTOR_HEAD):
            schema.validate(frame, lazy=True)
        raw = pd.DataFrame(columns=["schema_context", "column", "check", "failure_case", "index"])
    except SchemaErrors as exc:
        raw = exc.failure_cases
    cases = _cases(raw, schema)
    # Round-robin over checks: the first cases show every kind of failure before repeating one.
    rank = cases.groupby("key", sort=False).cumcount()
    first = cases.assign(_rank=rank).sort_values("_rank", kind="stable").head(max_cases)
    return SchemaReport(
        passed=cases.empty,
        rows=len(frame),
        failure_count=len(cases),
        failing_rows=int(cases["index"].dropna().nunique()),
        failures_by_check={str(key): int(n) for key, n in Counter(cases["key"]).most_common()},
        failure_cases=_readable(first, frame, id_column),
    )


def _cases(raw: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """One case per failing value; a frame-level check's failing row (which pandera reports once per
    column of the row) becomes one case showing the columns that check reads."""
    raw = raw.reset_index(drop=True)
    shown = {check.error or check.name: (check.statistics or {}).get(SHOWN_COLUMNS) for check in schema.checks}
    per_row = (raw["schema_context"] == _FRAME_CONTEXT) & raw["index"].notna()
    rows = raw[per_row].drop_duplicates(["check", "index"])
    columns = raw[~per_row]
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "index": columns["index"],
                    "column": columns["column"].astype(object),
                    "check": columns["check"].astype(object),
                    "failure_case": columns["failure_case"].astype(object),
                    "shown": None,
                    "order": columns.index,
                    "key": [
                        check if context == _FRAME_CONTEXT else f"{column}: {check}"
                        for context, column, check in zip(
                            columns["schema_context"], columns["column"], columns["check"], strict=True
                        )
                    ],
                }
            ),
            pd.DataFrame(
                {
                    "index": rows["index"],
                    "column": [", ".join(shown.get(check) or ["(row)"]) for check in rows["check"]],
                    "check": rows["check"].astype(object),
                    "failure_case": None,
                    "shown": [tuple(shown.get(check) or ()) for check in rows["check"]],  # (): every column
                    "order": rows.index,
                    "key": rows["check"].astype(object),
                }
            ),
        ],
        ignore_index=True,
    ).sort_values("order", kind="stable")  # pandera's order: grouped by column and check


def _readable(cases: pd.DataFrame, frame: pd.DataFrame, id_column: str | None) -> pd.DataFrame:
    """The cases as short strings; values are looked up and rendered only for the cases kept."""
    readable: dict[str, list[str]] = {}
    if id_column is not None:
        readable[id_column] = [_row_id(frame, id_column, label) for label in cases["index"]]
    readable["column"] = ["" if _is_missing(c) else str(c) for c in cases["column"]]
    readable["check"] = [str(c) for c in cases["check"]]
    readable["failure_case"] = [
        _render(value, _VALUE_CHARS) if shown is None else _render_row(frame, label, shown)
        for label, value, shown in zip(cases["index"], cases["failure_case"], cases["shown"], strict=True)
    ]
    return pd.DataFrame(readable, columns=list(readable), dtype=object)


def _is_missing(value: Any) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _cell(frame: pd.DataFrame, label: Any, column: str) -> Any:
    if frame.index.is_unique:
        return frame.at[label, column]
    return frame.loc[frame.index == label, column].iloc[0]


def _row_id(frame: pd.DataFrame, id_column: str, label: Any) -> str:
    if _is_missing(label) or id_column not in frame.columns:
        return ""  # a failure of a whole column or of the frame
    value = _cell(frame, label, id_column)
    return value if isinstance(value, str) else _render(value, _VALUE_CHARS)


def _render_row(frame: pd.DataFrame, label: Any, columns: tuple[str, ...]) -> str:
    names = [c for c in columns or frame.columns if c in frame.columns]
    return ", ".join(f"{name}={_render(_cell(frame, label, name), _CELL_CHARS)}" for name in names)


def _render(value: Any, limit: int) -> str:
    """A short readable string: vectors by length and first values, strings quoted, nulls as null."""
    if isinstance(value, np.ndarray):
        head = ", ".join(
            f"{x:.4g}" if isinstance(x, float | np.floating) else str(x) for x in value.ravel()[:_VECTOR_HEAD]
        )
        text = f"array({value.size}, [{head}{', …' if value.size > _VECTOR_HEAD else ''}])"
    elif _is_missing(value):
        text = "null"
    elif isinstance(value, str):
        text = repr(value)  # quoted, so blank and whitespace-only text is visible
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _markdown_cell(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
