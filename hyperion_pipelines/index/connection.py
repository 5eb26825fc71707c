"""Connecting to Milvus: milvus-lite for a file path (one process per file), a Milvus server for an http(s) URI."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from pymilvus import MilvusClient
from pymilvus.exceptions import ConnectionConfigException

from hyperion_pipelines.index.local_lock import IndexInUse, lock_holder, lock_is_free, wait_for_lock
from hyperion_pipelines.index.milvus_index import DEFAULT_TIMEOUT_S

#: How long a step waits for another process to release the embedded index before its attempt
#: fails (and the step's retry policy tries again): about as long as a typical run holds it.
DEFAULT_LOCK_WAIT_S = 300.0


def _served_here(path: Path) -> bool:
    """Whether this process already serves the milvus-lite database (it holds the lock itself)."""
    from milvus_lite.server_manager import server_manager_instance

    return os.path.abspath(path) in server_manager_instance._servers


def release_local(uri: str) -> None:
    """Stop this process's milvus-lite server of ``uri`` (its files may then be moved)."""
    from milvus_lite.server_manager import server_manager_instance

    if "://" not in uri and not uri.startswith("unix:"):
        server_manager_instance.release_server(str(Path(uri).expanduser().resolve()))


def connect(
    uri: str,
    token: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    on_wait: Callable[[str], None] | None = None,
) -> MilvusClient:
    """A file path opens milvus-lite (one process per file), waiting up to ``lock_wait_s`` for
    another process to release it; an http(s):// URI a Milvus server."""
    if uri.startswith(("http://", "https://", "tcp://", "unix:")):
        return MilvusClient(uri=uri, token=token or "", timeout=timeout_s)
    path = Path(uri).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_wait_s
    while True:
        if not _served_here(path):
            wait_for_lock(path, max(0.0, deadline - time.monotonic()), on_wait)
        try:
            return MilvusClient(uri=str(path), timeout=timeout_s)
        except ConnectionConfigException:
            # Taken by another process between the check and the open: wait again, or say who has it.
            if lock_is_free(path) or time.monotonic() >= deadline:
                if not lock_is_free(path):
                    raise IndexInUse(f"the embedded index {path} is in use by {lock_holder(path)}") from None
                raise
