"""Operational faults in one line: what broke, where, and the step that recovers.

Used where a person reads the outcome (the command line, a failed step's summary), so a damaged
database or a full disk is named as such instead of ending a long stack trace.
"""

from __future__ import annotations

import contextlib
import errno
import os
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


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_size
    return total


def space_held(settings: Settings) -> str:
    """What holds the space under HYPERION_HOME, largest first ("blobs 812 MiB, ...")."""
    home = settings.home
    places = {
        "landed documents (blobs)": home / "blobs",
        "Dagster step outputs and logs": settings.dagster_home / "storage",
        "Dagster run history": settings.dagster_home / "history",
        "milvus-lite index": Path(settings.milvus_uri),
        "state database": home / "state.db",
    }
    sizes = sorted(((_size(path), name) for name, path in places.items() if path.exists()), reverse=True)
    return ", ".join(f"{name} {size / 2**20:.1f} MiB" for size, name in sizes) or "nothing of Hyperion's"


def explain(message: str, settings: Settings, *, errno_value: int | None = None) -> str | None:
    """The one-line explanation of an error message, or None for a fault not recognised here."""
    from hyperion_pipelines.housekeeping.state_repair import is_index_damage

    home = settings.home
    lines = [line for line in message.strip().splitlines() if not line.startswith("(Background on this error")]
    last = lines[-1][:300] if lines else message
    if any(text in message for text in _MALFORMED):
        return (
            f"a database under {home} is damaged ({last}). If it is the state database ({home / 'state.db'}), "
            "run 'hyperion repair': it sets the file aside and rebuilds the manifest and the quarantine from the "
            "source and the index, reusing the stored vectors (the quarantine's history is lost)."
        )
    if is_index_damage(message):
        return (
            f"the index {settings.milvus_uri} cannot be read back ({last}). Restore it from a backup, or run "
            "'hyperion repair --rebuild-index': it sets the damaged index aside and embeds every document again."
        )
    if errno_value == errno.ENOSPC or any(text in message for text in _DISK_FULL) or "disk I/O error" in message:
        return (
            f"the disk holding {home} is full or failing ({_free(home)}); it holds {space_held(settings)}. "
            "'hyperion gc' removes blobs, cache entries and old step outputs no document needs; free space, then "
            "run the same command again: runs converge to an exact index."
        )
    return None
