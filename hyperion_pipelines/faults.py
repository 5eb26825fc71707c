"""Operational faults in one line: what broke, where, and the step that recovers.

Used where a person reads the outcome (the command line, a failed step's summary), so a damaged
database or a full disk is named as such instead of ending a long stack trace.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from hyperion_pipelines.settings import Settings

_MALFORMED = ("database disk image is malformed", "file is not a database")
_DISK_FULL = ("database or disk is full", "No space left on device")


def _free(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path).free / 2**20:.0f} MiB free"
    except OSError:
        return "free space unknown"


def explain(message: str, settings: Settings, *, errno_value: int | None = None) -> str | None:
    """The one-line explanation of an error message, or None for a fault not recognised here."""
    home = settings.home
    if any(text in message for text in _MALFORMED):
        return (
            f"a database under {home} is damaged ({message.strip().splitlines()[-1][:120]}). If it is the state "
            f"database ({home / 'state.db'}), move it aside and run 'hyperion ingest --all': the manifest and "
            "the quarantine are rebuilt from the source and the index, and stored vectors are reused, not "
            "embedded again (the quarantine's history is lost). If it is the milvus-lite index "
            f"({settings.milvus_uri}), move it aside and run 'hyperion ingest --all' to rebuild it."
        )
    if errno_value == errno.ENOSPC or any(text in message for text in _DISK_FULL) or "disk I/O error" in message:
        return (
            f"the disk holding {home} is full or failing ({_free(home)}); the most space is usually held by "
            f"{home / 'blobs'} (landed documents and caches) and {home / 'dagster'} (run history and step "
            "outputs). Free space, then run the same command again: runs converge to an exact index."
        )
    return None
