"""The document-source interface shared by every source."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def document_version(size_bytes: int, uploaded_at: datetime, defect: str | None = None) -> str:
    """What identifies one version of a document at its source: size and upload time to the
    microsecond, and what is wrong with its listing entry if anything (so that an entry fixed at
    the source, a name say, is a new version and its day runs again). The sensors compare it with
    the index manifest; ``raw_documents`` records it. Plain datetime arithmetic: a file dated
    beyond pandas' nanosecond range (year 2262) must not break the sensor that lists it."""
    if isinstance(uploaded_at, pd.Timestamp):
        uploaded_at = uploaded_at.to_pydatetime()
    version = f"{int(size_bytes)}:{(uploaded_at - _EPOCH) // timedelta(microseconds=1)}"
    if defect:
        version += ":invalid-" + hashlib.sha256(defect.encode()).hexdigest()[:8]
    return version


def parse_version(version: str) -> tuple[int, datetime]:
    """Size and upload time back from a :func:`document_version`."""
    size, micros = version.split(":")[:2]
    return int(size), _EPOCH + timedelta(microseconds=int(micros))


@dataclass(frozen=True)
class DocumentRef:
    """A document as a source lists it, before its content is read."""

    key: str  # unique within the source: relative path, or the API's document id
    name: str  # file name as uploaded
    uri: str  # where the content is read from
    display_path: str  # what users see as the document's source
    size_bytes: int
    uploaded_at: datetime  # timezone-aware, UTC
    # Why the source's own description of the document breaks its contract (a listing entry
    # with a size that is no number, say), or why it cannot be read (a file the service user
    # may not read): such a document is quarantined under ``defect_reason``, never read.
    defect: str | None = None
    defect_reason: str = "invalid_listing"

    @property
    def version(self) -> str:
        return document_version(self.size_bytes, self.uploaded_at, self.defect)


@dataclass(frozen=True)
class DeletedRef:
    """A document the source reports deleted (a deletion feed)."""

    key: str
    deleted_at: datetime


class DocumentSource(ABC):
    """Lists documents uploaded in a time window and reads their content."""

    #: Short name that namespaces document ids (two sources never share an id).
    name: str

    @property
    def identity(self) -> str:
        """Which source this is (a folder, an API's base URL): the index manifest records it per
        document, so a pipeline pointed elsewhere keeps the first source's documents instead of
        taking them for deleted."""
        return self.name

    @property
    def skipped_entries(self) -> list[str]:
        """Entries of the source's listings seen so far that it could not use (a document with
        no usable upload time, a deletion naming no usable id): why each was skipped. The rest
        of the listing goes on without them."""
        return []

    @property
    def unlisted_prefixes(self) -> list[str]:
        """Key prefixes (sub-folders) the last listing could not look into: documents recorded
        under them are still at the source as far as anyone knows, so they are held, never
        treated as deleted."""
        return []

    @property
    def empty(self) -> bool:
        """Whether the last listing found no document at all, on any day (known for a source that
        lists everything to answer for one day, like a folder walk; False where unknown)."""
        return False

    @abstractmethod
    def list_documents(self, start: datetime, end: datetime) -> Iterator[DocumentRef]:
        """Documents uploaded in ``[start, end)`` (UTC)."""

    @abstractmethod
    def read(self, ref: DocumentRef) -> bytes:
        """The document's content."""


class SourceError(RuntimeError):
    """A source could not be listed or read; retrying may help."""


class SourceUnavailable(SourceError):
    """The source itself is not there (a folder missing or unmounted, not a directory, not
    readable): not the same as a source that is there and empty."""


class DocumentUnreadable(Exception):
    """One document cannot be read (permission denied, an I/O error): it is quarantined as
    ``unreadable`` and the rest of its day goes on. Not a :class:`SourceError`: retrying the day
    would not help."""


class DocumentGone(SourceError):
    """The document was removed between listing and reading it."""
