"""A search request, read and checked, and the rows of its answer.

The rows are those of ``hyperion search --json`` (one function makes both), so an application
moving from the command line to the API reads the same fields; the API adds the chunk's place in
its document (``chunk_index``, ``char_start``, ``char_end``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pymilvus is not needed to read a request
    from hyperion_pipelines.index.milvus_index import SearchHit

#: The most results one request may ask for unless the server is started with another bound.
DEFAULT_MAX_K = 100
DEFAULT_K = 10
#: The query's length bound: longer text is a document, not a query (and costs the model more).
MAX_QUERY_CHARS = 2000

#: Each request field: its JSON type and what it means (the OpenAPI schema is made from this).
REQUEST_FIELDS: dict[str, tuple[str, str]] = {
    "query": ("string", "What to look for, in words (1 to 2,000 characters)."),
    "k": ("integer", "How many results, 1 to the server's --max-k (default 10)."),
    "source_prefix": ("string", "Only chunks of documents whose source path starts with this."),
    "upload_day": ("string", "Only chunks of documents uploaded on this day (YYYY-MM-DD)."),
}
#: Each answer row's fields; the first five are ``hyperion search --json``'s.
RESULT_FIELDS: dict[str, tuple[str, str]] = {
    "score": ("number", "Similarity to the query (higher is closer), rounded to 4 places."),
    "document_id": ("string", "The document's id (stable across re-uploads of the same path)."),
    "source": ("string", "The document's path in the uploads folder, or its id at the backend."),
    "heading_path": ("string", "The headings above the chunk, outermost first, joined by ' > '."),
    "text": ("string", "The chunk's text."),
    "chunk_index": ("integer", "The chunk's position in its document, from 0."),
    "char_start": ("integer", "Where the chunk starts in the document's extracted text."),
    "char_end": ("integer", "Where it ends (exclusive)."),
}
CLI_FIELDS = tuple(RESULT_FIELDS)[:5]


class BadRequest(ValueError):
    """A request the service answers with 400, and this message."""


@dataclass(frozen=True)
class SearchQuery:
    query: str
    k: int = DEFAULT_K
    source_prefix: str | None = None
    upload_day: str | None = None


def read_request(body: Any, max_k: int = DEFAULT_MAX_K) -> SearchQuery:
    """The request's JSON object as a query, or :class:`BadRequest` saying what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object, e.g. {"query": "tyre pressure", "k": 5}')
    unknown = sorted(set(body) - set(REQUEST_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; the fields are {', '.join(REQUEST_FIELDS)}")
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("'query' must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise BadRequest(f"'query' is {len(query)} characters long; at most {MAX_QUERY_CHARS}")
    k = body.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
        raise BadRequest(f"'k' must be an integer from 1 to {max_k}, not {json.dumps(k)}")
    prefix = body.get("source_prefix")
    if prefix is not None and (not isinstance(prefix, str) or not prefix):
        raise BadRequest("'source_prefix' must be a non-empty string")
    day = body.get("upload_day")
    if day is not None:
        if not isinstance(day, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise BadRequest(f"'upload_day' must be a day as YYYY-MM-DD, not {json.dumps(day)}")
        try:
            date.fromisoformat(day)
        except ValueError:
            raise BadRequest(f"'upload_day' {day} is not a day of the calendar") from None
    return SearchQuery(query=query, k=k, source_prefix=prefix, upload_day=day)


def _string_literal(value: str) -> str:
    """``value`` as a Milvus expression's double-quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def milvus_filter(query: SearchQuery) -> str:
    """The Milvus boolean expression of the query's filters ("" for none). A source prefix is
    matched literally: ``%`` and ``_`` in it are escaped, so ``a_b/`` does not match ``axb/``
    (Milvus's LIKE takes any other backslash as itself)."""
    terms = []
    if query.source_prefix is not None:
        pattern = query.source_prefix.replace("%", "\\%").replace("_", "\\_")
        terms.append(f"source like {_string_literal(pattern + '%')}")
    if query.upload_day is not None:
        terms.append(f"partition_date == {_string_literal(query.upload_day)}")
    return " and ".join(terms)


def result_row(hit: SearchHit, *, offsets: bool = True) -> dict[str, Any]:
    """One answer row; without ``offsets`` exactly ``hyperion search --json``'s fields."""
    fields = RESULT_FIELDS if offsets else CLI_FIELDS
    return {"score": round(hit.score, 4), **{name: hit.fields[name] for name in fields if name != "score"}}
