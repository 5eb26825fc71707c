"""The local uploads folder: every file under it (sub-folders included) is a document.

A file's upload time is its modification time, so an edited file moves to the day it was edited.

One entry never costs more than itself: a file the service user may not read is listed with a
defect (and quarantined as ``unreadable``), a sub-folder it may not list is reported and its
documents are held as indexed, links and special files are skipped with a line saying so. Only a
folder that is not there at all (missing, unmounted, not a folder, not listable) fails the
listing, with :class:`SourceUnavailable`: that is not the same as a folder that is empty.
"""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from hyperion_pipelines.sources.base import (
    DocumentGone,
    DocumentRef,
    DocumentSource,
    DocumentUnreadable,
    SourceUnavailable,
)


def shown(name: str) -> str:
    """A file name as users see it: bytes that are not UTF-8 (which Python carries as escaped
    surrogates) written as ``\\xff``. The document's identity keeps the raw bytes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def folder_identity(root: Path) -> str:
    return f"uploads_folder:{Path(root).resolve()}"


class UploadsFolder(DocumentSource):
    name = "uploads"

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self._skipped: list[str] = []
        self._unlisted: list[str] = []
        self._files_seen = 0

    @property
    def identity(self) -> str:
        return folder_identity(self.root)

    @property
    def skipped_entries(self) -> list[str]:
        return list(self._skipped)

    @property
    def unlisted_prefixes(self) -> list[str]:
        return list(self._unlisted)

    @property
    def empty(self) -> bool:
        return self._files_seen == 0 and not self._unlisted

    def _relative(self, path: str) -> str:
        return Path(path).relative_to(self.root).as_posix()

    def _check_root(self) -> None:
        if not self.root.exists():
            raise SourceUnavailable(f"the uploads folder {shown(str(self.root))} does not exist (missing or unmounted)")
        if not self.root.is_dir():
            raise SourceUnavailable(f"the uploads folder {shown(str(self.root))} is not a folder")

    def _walk(self) -> Iterator[tuple[os.DirEntry, os.stat_result]]:
        self._check_root()
        self._skipped, self._unlisted, self._files_seen = [], [], 0
        stack = [str(self.root)]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                if folder == str(self.root):
                    self._check_root()  # removed while listing: say so
                continue  # a sub-folder removed while listing: its documents are gone
            except OSError as exc:
                if folder == str(self.root):
                    raise SourceUnavailable(
                        f"the uploads folder {shown(folder)} cannot be listed: {_why(exc)}"
                    ) from exc
                relative = shown(self._relative(folder))
                self._unlisted.append(relative + "/")
                self._skipped.append(
                    f"{relative}/: sub-folder could not be listed ({_why(exc)}); documents indexed from it are "
                    "kept as they are until it can be listed again"
                )
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # hidden files: editor swap files, partial uploads
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    self._skipped.append(f"{shown(self._relative(entry.path))}: cannot be examined ({_why(exc)})")
                    continue
                if stat_module.S_ISDIR(info.st_mode):
                    stack.append(entry.path)
                elif stat_module.S_ISREG(info.st_mode):
                    self._files_seen += 1
                    yield entry, info
                elif stat_module.S_ISLNK(info.st_mode):
                    self._skipped.append(self._link_note(entry))
                else:
                    self._skipped.append(
                        f"{shown(self._relative(entry.path))}: not a regular file (a pipe, socket or device), skipped"
                    )

    def _link_note(self, entry: os.DirEntry) -> str:
        relative = shown(self._relative(entry.path))
        try:
            target = Path(entry.path).resolve()
        except (OSError, RuntimeError):
            return f"{relative}: symbolic link that cannot be resolved, skipped"
        where = "inside" if target.is_relative_to(self.root) else "outside"
        return (
            f"{relative}: symbolic link to a path {where} the uploads folder, skipped (links are not followed, so "
            "nothing outside the folder is read; copy the file in instead)"
        )

    def list_documents(self, start: datetime, end: datetime) -> Iterator[DocumentRef]:
        lo, hi = start.timestamp(), end.timestamp()
        for entry, info in self._walk():
            if not lo <= info.st_mtime < hi:
                continue
            relative = self._relative(entry.path)
            defect = None
            if not os.access(entry.path, os.R_OK):
                defect = f"permission denied: the service user (uid {os.geteuid()}) may not read the file"
            yield DocumentRef(
                key=relative,  # raw: a name that is not UTF-8 keeps its bytes in the document id
                name=shown(entry.name),
                uri=Path(entry.path).as_uri(),
                display_path=shown(relative),
                size_bytes=info.st_size,
                uploaded_at=datetime.fromtimestamp(info.st_mtime, tz=UTC),
                defect=defect,
                defect_reason="unreadable",
            )

    def read(self, ref: DocumentRef) -> bytes:
        path = (self.root / ref.key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"refusing to read outside the uploads folder: {ref.display_path!r}")
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise DocumentGone(f"{ref.display_path} was removed before it could be read") from exc
        except OSError as exc:
            raise DocumentUnreadable(f"{_why(exc)} while reading the file") from exc
