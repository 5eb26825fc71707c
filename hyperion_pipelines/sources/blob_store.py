"""Content-addressed storage for landed documents (the raw zone).

``raw_documents`` copies each document's bytes here once, keyed by sha256, so later steps read
exactly the bytes that were listed and hashed, even if the source changes or is remote.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        path = self._path(sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a crash never leaves a truncated blob under a valid name.
            fd, tmp = tempfile.mkstemp(dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
                os.replace(tmp, path)
            except BaseException:
                # A full disk: give the partial copy's space back at once, so the run can still
                # record why it failed (its event log may be on the same disk).
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            # Landed again: fresh, so storage GC (which spares what unfinished runs wrote) keeps it.
            os.utime(path)
        return sha256

    def get(self, sha256: str) -> bytes:
        return self._path(sha256).read_bytes()
