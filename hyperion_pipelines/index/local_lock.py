"""Waiting for the embedded index (milvus-lite) when another process has it open.

milvus-lite serves a database folder from the one process that holds its ``LOCK`` file (an
advisory ``flock``); a second process fails with "Open local milvus failed" and a logged stack
trace. Here a second process waits, bounded, for the holder to finish (a run keeps the index
from its first Milvus step to its end; a search for a second or two), and otherwise is told
plainly which process holds it. Concurrent writers at scale use a Milvus server by URI.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

LOCK_FILE = "LOCK"  # milvus-lite's lock file inside the database folder
_POLL_S = 0.5


class IndexInUse(RuntimeError):
    """The embedded index stayed held by another process for longer than the wait allowed."""


def lock_is_free(folder: Path) -> bool:
    """Whether no other process holds the database folder's lock (a missing folder is free)."""
    lock = folder / LOCK_FILE
    if not lock.exists():
        return True
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return True  # let milvus-lite say what is wrong with the folder
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def lock_holder(folder: Path) -> str:
    """``process <pid> (<command line>)`` holding the lock, from ``/proc/locks`` (Linux); else a
    plain "another process"."""
    try:
        inode = (folder / LOCK_FILE).stat().st_ino
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            # "1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF"; a blocked waiter has "->" first
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
                pid = fields[4]
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                command = " ".join(command.split())[:160]
                return f"process {pid} ({command or 'command line not readable'})"
    except OSError:
        pass
    return "another process"


def wait_for_lock(folder: Path, wait_s: float, on_wait: Callable[[str], None] | None = None) -> None:
    """Return once the folder's lock is free; :class:`IndexInUse` after ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    told = False
    while not lock_is_free(folder):
        holder = lock_holder(folder)
        if time.monotonic() >= deadline:
            raise IndexInUse(
                f"the embedded index {folder} is in use by {holder}; milvus-lite lets one process open it at a "
                f"time and it was not released within {wait_s:.0f} s. Wait for that process to finish (a run "
                "holds the index until it ends), or use a Milvus server (HYPERION_MILVUS_URI=http://host:19530) "
                "where searches and runs must overlap."
            )
        if not told and on_wait is not None:
            on_wait(f"the embedded index {folder} is in use by {holder}: waiting up to {wait_s:.0f} s")
            told = True
        time.sleep(_POLL_S)
