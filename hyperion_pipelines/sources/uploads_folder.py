"""The local uploads folder: every file under it (sub-folders included) is a document.

A file's upload time is its modification time, so an edited file moves to the day it was edited.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from hyperion_pipelines.sources.base import DocumentGone, DocumentRef, DocumentSource


class UploadsFolder(DocumentSource):
    name = "uploads"

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def _walk(self) -> Iterator[os.DirEntry]:
        stack = [self.root]
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # hidden files: editor swap files, partial uploads
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    yield entry

    def list_documents(self, start: datetime, end: datetime) -> Iterator[DocumentRef]:
        lo, hi = start.timestamp(), end.timestamp()
        for entry in self._walk():
            stat = entry.stat(follow_symlinks=False)
            if not lo <= stat.st_mtime < hi:
                continue
            relative = Path(entry.path).relative_to(self.root).as_posix()
            yield DocumentRef(
                key=relative,
                name=entry.name,
                uri=Path(entry.path).as_uri(),
                display_path=relative,
                size_bytes=stat.st_size,
                uploaded_at=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
            )

    def read(self, ref: DocumentRef) -> bytes:
        path = (self.root / ref.key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"refusing to read outside the uploads folder: {ref.key!r}")
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise DocumentGone(f"{ref.key} was removed before it could be read") from exc
