"""Collections that runs beginning at the same moment all make: the loser's create fails."""

from __future__ import annotations

import time

from pymilvus import MilvusClient


def made_by_another(client: MilvusClient, name: str, timeout_s: float) -> bool:
    """Whether a collection whose creation failed was made by another run at the same moment.
    milvus-lite makes the collection's folder before its schema file, and reports the collection
    only once the file is there: a second create fails on the folder ("File exists") while the
    collection is not reported yet, so ask for up to a second."""
    deadline = time.monotonic() + 1.0
    while not client.has_collection(name, timeout=timeout_s):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
