"""The document-source interface shared by every source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pandas as pd


def document_version(size_bytes: int, uploaded_at: datetime) -> str:
    """What identifies one version of a document at its source: size and upload time to the
    microsecond. The sensors compare it with the index manifest; ``raw_documents`` records it."""
    return f"{int(size_bytes)}:{pd.Timestamp(uploaded_at).value // 1000}"


@dataclass(frozen=True)
class DocumentRef:
    """A document as a source lists it, before its content is read."""

    key: str  # unique within the source: relative path, or the API's document id
    name: str  # file name as uploaded
    uri: str  # where the content is read from
    display_path: str  # what users see as the document's source
    size_bytes: int
    uploaded_at: datetime  # timezone-aware, UTC

    @property
    def version(self) -> str:
        return document_version(self.size_bytes, self.uploaded_at)


@dataclass(frozen=True)
class DeletedRef:
    """A document the source reports deleted (a deletion feed)."""

    key: str
    deleted_at: datetime


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
