"""Client for Hyperion's backend document API (the HTTP contract is docs/backend_api.md).

    GET {base}/documents?uploaded_after=ISO&uploaded_before=ISO&limit=N[&page_token=T]
        -> {"documents": [{"id", "name", "size", "uploaded_at", "path"?}], "next_page_token": str|null}
    GET {base}/documents/{id}/content -> the document's bytes
    GET {base}/deletions?deleted_after=ISO&deleted_before=ISO&limit=N[&page_token=T]
        -> {"deletions": [{"id", "deleted_at"}], "next_page_token": str|null}

Both listings are ordered by time, then id, so a page token stays valid while new uploads arrive.

Every request carries ``Authorization: Bearer <token>``. Timeouts, connection errors, 429 and 5xx
are retried with exponential backoff and full jitter; other 4xx fail at once. The client only ever
talks to ``base_url``: an id is percent-quoted into one path segment (the dots of ``.`` and ``..``
too), never followed as a URL.

One listing entry that breaks the contract does not stop the rest: with a usable upload time it
becomes a document with a ``defect``, quarantined unread under its id (or, when the id itself is
unusable, under a key hashed from the entry's contract fields); without one it cannot be placed
in an upload day and is skipped, with a warning and a line in ``skipped_entries``, as is a
deletion entry without a usable id (one without a usable time counts as deleted at its window's
end). A page that is not the contract's shape at all is retried as a transient fault.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from hyperion_pipelines.sources.base import DeletedRef, DocumentGone, DocumentRef, DocumentSource, SourceError

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_ID_CHARS = 512
MAX_SIZE = 2**63 - 1
CONTRACT_FIELDS = ("id", "name", "size", "uploaded_at", "path")


class BackendApiError(SourceError):
    """The backend API failed, after retries where retrying made sense."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _shown(value: Any, limit: int = 80) -> str:
    """A contract-breaking value as an error message shows it: repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:  # its message quotes the whole value, at any length
        raise ValueError(f"time is not ISO 8601: {_shown(value)}") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"time has no timezone: {_shown(value)}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # year 1 or 9999 shifted out of range by its offset
        raise ValueError(f"time out of range: {_shown(value)}") from exc


def _size(value: Any) -> int:
    """A byte count: a non-negative whole number (JSON ``1e400`` is infinity, ``true`` no size)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"size is not a number: {_shown(value)}")
    try:
        size = int(value)
    except OverflowError as exc:
        raise ValueError(f"size out of range: {_shown(value)}") from exc
    except ValueError as exc:  # "many", "1.5"
        raise ValueError(f"size is not a number: {_shown(value)}") from exc
    if size < 0 or (isinstance(value, float) and size != value):
        raise ValueError(f"size is not a non-negative whole number: {_shown(value)}")
    if size > MAX_SIZE:  # no file is this large, and int64 columns could not hold it
        raise ValueError(f"size out of range: {_shown(value)}")
    return size


def _text(value: Any, field: str) -> str:
    """An id, name or path: a string (or an integer id) that encodes as UTF-8 (JSON can carry
    lone surrogates, which no hash, URL or database takes)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"{field} is not a string: {_shown(value)}")
    text = str(value)
    text.encode("utf-8")  # UnicodeEncodeError is a ValueError
    return text


def _id(value: Any) -> str:
    doc_id = _text(value, "id")
    if not doc_id or len(doc_id) > MAX_ID_CHARS:
        raise ValueError(f"id is empty or over {MAX_ID_CHARS} characters ({len(doc_id)})")
    return doc_id


def _field(fields: dict[str, Any], name: str, convert: Callable[[Any], T]) -> tuple[T | None, str | None]:
    """One field of a listing entry, converted, or why it breaks the contract."""
    try:
        return convert(fields[name]), None
    except KeyError:
        return None, f"{name} is missing"
    except (TypeError, ValueError) as exc:
        return None, str(exc)


def _time(value: Any) -> datetime:
    return _parse_time(str(value))


def _name(value: Any) -> str:
    return _text(value, "name")


def _path(value: Any) -> str:
    return _text(value, "path")


def _entry_key(fields: dict[str, Any]) -> str:
    """A stable key for an entry whose id is unusable: the same entry listed again (by the sensor,
    then by the run) is the same quarantined document, not a new one each time."""
    contract = {name: fields.get(name) for name in CONTRACT_FIELDS}  # not an etag or request id that may change
    canonical = json.dumps(contract, sort_keys=True, default=repr, ensure_ascii=True)
    return "invalid-entry-" + hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _retry_after(value: str) -> float | None:
    """Seconds from a Retry-After header; anything else (an HTTP date, junk) is ignored."""
    return float(value) if value.isascii() and value.isdigit() else None


def _next_token(body: dict[str, Any]) -> str | None:
    token = body.get("next_page_token")
    if token is not None and not isinstance(token, str):
        raise BackendApiError(f"next_page_token is not a string: {type(token).__name__}")
    return token or None


def document_path(doc_id: str) -> str:
    """The content path of a document: the id is one path segment, whatever it holds. ``quote``
    leaves dots alone, and an id of ``.`` or ``..`` would be a dot segment that HTTP clients
    resolve (``/documents/../content`` is ``/content``), so those dots are escaped too."""
    segment = quote(doc_id, safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return f"/documents/{segment}/content"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def api_identity(base_url: str) -> str:
    return f"backend_api:{base_url.rstrip('/')}"


class BackendDocumentApi(DocumentSource):
    name = "backend"

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        page_size: int = 500,
        transport: httpx.BaseTransport | None = None,
    ):
        headers = {"Accept": "application/json", "User-Agent": "hyperion-pipelines"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.page_size = page_size
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,  # a redirect could lead off the configured host
            transport=transport,
        )
        self._skipped: list[str] = []

    @property
    def identity(self) -> str:
        return api_identity(self.base_url)

    @property
    def skipped_entries(self) -> list[str]:
        return list(self._skipped)

    def _skip(self, why: str) -> None:
        self._skipped.append(why)
        log.warning("%s", why)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> BackendDocumentApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- retrying ---------------------------------------------------------------------------
    def _sleep_before(self, attempt: int, retry_after: float | None) -> None:
        delay = random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))
        # Honour Retry-After, but never beyond our own cap: a hostile or buggy header must not park a run.
        time.sleep(max(delay, min(retry_after or 0.0, self.backoff_max_s)))

    def _with_retries(self, what: str, call: Callable[[], T]) -> T:
        last: str = ""
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                return call()
            except httpx.TimeoutException as exc:
                last = f"timed out ({type(exc).__name__})"
            except (httpx.TransportError, _Retryable) as exc:
                last = str(exc) or type(exc).__name__
                retry_after = getattr(exc, "retry_after", None)
            if attempt < self.max_retries:
                log.warning("%s failed (%s); retry %d of %d", what, last, attempt + 1, self.max_retries)
                self._sleep_before(attempt, retry_after)
        raise BackendApiError(f"{what} failed after {self.max_retries + 1} attempts: {last}")

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        response = self._client.get(path, params=params)
        if response.status_code in RETRYABLE_STATUS:
            retry_after = response.headers.get("Retry-After", "")
            raise _Retryable(f"HTTP {response.status_code}", _retry_after(retry_after))
        if response.status_code in (404, 410):
            raise DocumentGone(f"GET {path} returned HTTP {response.status_code}")
        if response.status_code >= 400:
            raise BackendApiError(f"GET {path} returned HTTP {response.status_code}")
        if response.status_code >= 300:  # the client talks to its configured host only: never follow
            location = response.headers.get("Location", "?")
            raise BackendApiError(
                f"GET {path} returned HTTP {response.status_code} (redirect to {location!r}, not followed)"
            )
        return response

    # -- contract ---------------------------------------------------------------------------
    def _page(self, path: str, params: dict[str, Any], field: str) -> dict[str, Any]:
        response = self._get(path, params)
        try:
            body = response.json()
            items = body[field]
            if not isinstance(items, list):
                raise TypeError(f"{field!r} is not a list")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:  # RecursionError: "[[[[..." JSON
            # A truncated or garbled page is a transient fault more often than a contract change.
            raise _Retryable(f"malformed listing page: {exc}") from exc
        return body

    def _window(self, prefix: str, start: datetime, end: datetime, page_token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            f"{prefix}_after": _iso(start),
            f"{prefix}_before": _iso(end),
            "limit": self.page_size,
        }
        if page_token:
            params["page_token"] = page_token
        return params

    def list_page(
        self, start: datetime, end: datetime, page_token: str | None = None
    ) -> tuple[list[DocumentRef], str | None]:
        """One page of documents uploaded in ``[start, end)``, and the token of the next (None: last)."""
        params = self._window("uploaded", start, end, page_token)
        body = self._with_retries("listing documents", lambda: self._page("/documents", params, "documents"))
        refs = [ref for ref in (self._ref(item) for item in body["documents"]) if ref is not None]
        return refs, _next_token(body)

    def deleted_page(
        self, start: datetime, end: datetime, page_token: str | None = None
    ) -> tuple[list[DeletedRef], str | None]:
        """One page of documents deleted in ``[start, end)``, and the token of the next."""
        params = self._window("deleted", start, end, page_token)
        body = self._with_retries("listing deletions", lambda: self._page("/deletions", params, "deletions"))
        deleted = []
        for item in body["deletions"]:
            fields = item if isinstance(item, dict) else {}
            doc_id, id_defect = _field(fields, "id", _id)
            if doc_id is None:  # names no document
                self._skip(f"deletion entry skipped: {id_defect}")
                continue
            deleted_at, _ = _field(fields, "deleted_at", _time)
            # Listed in this window, so deleted before its end: the document must not stay searchable.
            deleted.append(DeletedRef(key=doc_id, deleted_at=deleted_at or end))
        return deleted, _next_token(body)

    def list_documents(self, start: datetime, end: datetime) -> Iterator[DocumentRef]:
        token: str | None = None
        seen: set[str] = set()
        while True:
            refs, token = self.list_page(start, end, token)
            yield from refs
            if not token:
                return
            if token in seen:  # a buggy or hostile server would keep a run paging forever
                raise BackendApiError(f"the listing returned page token {_shown(token)} a second time")
            seen.add(token)

    def _ref(self, item: Any) -> DocumentRef | None:
        """A listing entry as a document; one that breaks the contract carries its ``defect``, and
        one with no usable upload time is skipped (None)."""
        fields = item if isinstance(item, dict) else {}
        uploaded_at, time_defect = _field(fields, "uploaded_at", _time)
        if uploaded_at is None:
            reason = time_defect if isinstance(item, dict) else f"entry is not an object: {_shown(item)}"
            self._skip(f"listing entry skipped, no upload day can be given to it: {reason}")
            return None
        doc_id, id_defect = _field(fields, "id", _id)
        name, name_defect = _field(fields, "name", _name)
        path, path_defect = _field(fields, "path", _path) if fields.get("path") else (None, None)
        size, size_defect = _field(fields, "size", _size)
        defects = [d for d in (id_defect, name_defect, path_defect, size_defect) if d]
        key = doc_id or _entry_key(fields)
        return DocumentRef(
            key=key,
            name=name or key,
            uri=f"{self.base_url}{document_path(key)}",
            display_path=path or name or key,
            size_bytes=size or 0,
            uploaded_at=uploaded_at,
            defect="; ".join(defects) or None,
        )

    def read(self, ref: DocumentRef) -> bytes:
        path = document_path(ref.key)

        def download() -> bytes:
            content = self._get(path).content
            if len(content) != ref.size_bytes:
                raise _Retryable(f"body has {len(content)} bytes, listing said {ref.size_bytes}")
            return content

        return self._with_retries(f"downloading document {ref.key!r}", download)
