"""Golden query sets: JSONL files of questions and the documents that answer them.

One JSON object per line::

    {"id": "bike-tyres", "query": "how hard should I pump my tyres", "relevant": ["guides/bicycle-maintenance.md"]}
    {"query": "...", "relevant": {"reports/river-restoration.docx": 2, "notes/composting.txt": 1}}

``relevant`` names document ids or source paths (relative to the uploads folder); as a list every
item has grade 1, as an object each item has its own integer grade >= 1. ``id`` is optional and
defaults to ``q<line number>``. Blank lines are skipped. Unknown keys are refused, so that a
misspelt key is an error instead of a silently ignored field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_KEYS = frozenset({"id", "query", "relevant"})


class GoldenSetError(ValueError):
    """A golden query set that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class GoldenQuery:
    query_id: str
    query: str
    relevant: dict[str, int]  # item (document id or source path) -> grade >= 1


def load_golden_queries(path: str | Path) -> list[GoldenQuery]:
    """Every query of the JSONL file at ``path``, in file order; raises GoldenSetError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate a BOM from editors on Windows
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenSetError(f"{path}: cannot read the golden set: {exc}") from exc
    return parse_golden_queries(text.splitlines(), name=str(path))


def parse_golden_queries(lines: Iterable[str], *, name: str = "<golden set>") -> list[GoldenQuery]:
    """The queries of JSONL ``lines``; ``name`` is what error messages call the file."""
    queries: list[GoldenQuery] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        query = _parse_line(line, number, name)
        if query.query_id in first_line:
            raise GoldenSetError(
                f"{name}:{number}: duplicate id {query.query_id!r} (first used on line {first_line[query.query_id]})"
            )
        first_line[query.query_id] = number
        queries.append(query)
    if not queries:
        raise GoldenSetError(f"{name}: the golden set is empty (no queries)")
    return queries


def qrels_of(queries: Iterable[GoldenQuery]) -> dict[str, dict[str, int]]:
    """Relevance judgements keyed by query id, the shape the metrics take."""
    return {q.query_id: dict(q.relevant) for q in queries}


def _parse_line(line: str, number: int, name: str) -> GoldenQuery:
    def fail(problem: str) -> GoldenSetError:
        return GoldenSetError(f"{name}:{number}: {problem}")

    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
    if not isinstance(record, dict):
        raise fail(f"expected a JSON object, got {_kind(record)}")
    unknown = sorted(set(record) - _KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(map(repr, unknown))}; expected 'query', 'relevant' and optional 'id'")

    query_id = record.get("id", f"q{number}")
    if not isinstance(query_id, str) or not query_id.strip():
        raise fail(f"'id' must be a non-empty string, got {query_id!r}")

    if "query" not in record:
        raise fail("missing 'query'")
    query = record["query"]
    if not isinstance(query, str):
        raise fail(f"'query' must be a string, got {_kind(query)}")
    if not query.strip():
        raise fail("'query' is empty")

    if "relevant" not in record:
        raise fail("missing 'relevant'")
    try:
        relevant = _relevant(record["relevant"])
    except ValueError as exc:
        raise fail(str(exc)) from None
    return GoldenQuery(query_id=query_id.strip(), query=query.strip(), relevant=relevant)


def _relevant(value: Any) -> dict[str, int]:
    """The graded items of a ``relevant`` value; ValueError says what is wrong with it."""
    if isinstance(value, list):
        items: dict[str, Any] = {}
        for item in value:
            _check_item(item)
            if item in items:
                raise ValueError(f"'relevant' lists {item!r} twice")
            items[item] = 1
    elif isinstance(value, dict):
        items = value
        for item, grade in items.items():
            _check_item(item)
            # bool is an int subclass: true/false would otherwise pass as grades 1 and 0
            if isinstance(grade, bool) or not isinstance(grade, int) or grade < 1:
                raise ValueError(f"grade of {item!r} must be an integer >= 1, got {grade!r}")
    else:
        raise ValueError(f"'relevant' must be a list of items or an object of item: grade, got {_kind(value)}")
    if not items:
        raise ValueError("'relevant' is empty")
    return {item: int(grade) for item, grade in items.items()}


def _check_item(item: Any) -> None:
    if not isinstance(item, str):
        raise ValueError(f"relevant items must be strings (document ids or source paths), got {_kind(item)}")
    if not item.strip():
        raise ValueError("relevant items must not be empty strings")


def _kind(value: Any) -> str:
    """A JSON-flavoured name for the type of ``value``, for error messages."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    return "a number" if isinstance(value, int | float) else type(value).__name__
