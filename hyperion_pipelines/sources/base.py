"""The document-source interface shared by every source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class DocumentRef:
    """A document as a source lists it, before its content is read."""

    key: str  # unique within the source: relative path, or the API's document id
    name: str  # file name as uploaded
    uri: str  # where the content is read from
    display_path: str  # what users see as the document's source
    size_bytes: int
    uploaded_at: datetime  # timezone-aware, UTC


class DocumentSource(ABC):
    """Lists documents uploaded in a time window and reads their content."""

    #: Short name that namespaces document ids (two sources never share an id).
    name: str

    @abstractmethod
    def list_documents(self, start: datetime, end: datetime) -> Iterator[DocumentRef]:
        """Documents uploaded in ``[start, end)`` (UTC)."""

    @abstractmethod
    def read(self, ref: DocumentRef) -> bytes:
        """The document's content."""


class SourceError(RuntimeError):
    """A source could not be listed or read; retrying may help."""


class DocumentGone(SourceError):
    """The document was removed between listing and reading it."""
