"""What the Milvus collection is made with, by the server it is made on."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pymilvus import MilvusClient

from hyperion_pipelines.index.milvus_index import (
    MilvusIndex,
    bm25_is_collection_wide,
    has_bm25,
    resolved_retrieval,
    scalar_index_type,
)
from hyperion_pipelines.spec import IndexSpec

from ..support.milvus_lite_server import MilvusLiteServer
from ..support.milvus_standalone import MilvusStandalone

# Asked for by name, so the BM25 field and its index are made wherever the server has BM25.
HYBRID = IndexSpec(alias="docs", retrieval="hybrid")


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("v2.3.5", "Trie"),  # the Milvus standalone of the PyPI package `milvus`
        ("v2.2.16", "Trie"),
        ("v2.4.0", "INVERTED"),
        ("v2.6.11", "INVERTED"),  # docker-compose.yml's
        ("2.5.3", "INVERTED"),
        ("milvus_lite-3.2.2", "INVERTED"),  # milvus-lite's own version numbers
        ("", "INVERTED"),  # unknown: what current servers take
    ],
)
def test_lookup_fields_get_the_index_the_server_builds(version: str, expected: str) -> None:
    assert scalar_index_type(version) == expected


@pytest.mark.parametrize(
    ("version", "bm25"),
    [("v2.3.5", False), ("v2.4.9", False), ("v2.5.0", True), ("v2.6.11", True), ("milvus_lite-3.2.2", True)],
)
def test_bm25_is_there_from_milvus_2_5_and_in_milvus_lite(version: str, bm25: bool) -> None:
    assert has_bm25(version) is bm25


@pytest.mark.parametrize(
    ("version", "auto", "hybrid"),
    [
        ("v2.3.5", "dense", "hybrid"),  # no BM25: made dense, with a warning
        ("v2.4.9", "dense", "hybrid"),
        ("v2.5.0", "hybrid", "hybrid"),
        ("v2.6.11", "hybrid", "hybrid"),
        ("milvus_lite-3.2.2", "hybrid-local", "hybrid-local"),
        ("master-20250101-abc", "dense", "hybrid-local"),  # a server that does not say its version
    ],
)
def test_auto_retrieval_is_hybrid_on_milvus_lite_and_on_milvus_from_2_5(version: str, auto: str, hybrid: str) -> None:
    """milvus-lite's BM25 function scores per segment (test_hybrid_search shows what that does to
    a new upload), so hybrid there, asked for or by ``auto``, is scored by Hyperion. A server
    that does not say its version gets dense from ``auto`` (Hyperion's BM25 takes one writer)."""
    assert bm25_is_collection_wide(version) is (hybrid == "hybrid" and auto == "hybrid")
    assert resolved_retrieval("auto", version) == auto
    assert resolved_retrieval("hybrid", version) == hybrid
    assert resolved_retrieval("dense", version) == "dense"


def test_a_collection_on_milvus_lite_indexes_its_lookup_fields_inverted(tmp_path: Path) -> None:
    client = MilvusClient(uri=str(tmp_path / "index.db"))
    collection = MilvusIndex(client, IndexSpec(alias="docs")).ensure_collection("0123456789abcdef", 8)
    for field in ("document_id", "partition_date"):
        assert client.describe_index(collection, field)["index_type"] == "INVERTED"


def left_unindexed(uri: str) -> tuple[str, MilvusClient]:
    """A collection whose first run died after making it and before indexing it, opened by the
    next run; returns it, and a client."""
    client = MilvusClient(uri=uri)
    index = MilvusIndex(client, HYBRID, timeout_s=5)
    name = index.collection_name("fedcba9876543210")
    index._create(name, 8)
    client.release_collection(name)
    while made := client.list_indexes(name):  # milvus-lite may drop several at once
        client.drop_index(name, made[0])
    return index.ensure_collection("fedcba9876543210", 8), client


def test_a_collection_left_without_its_indexes_is_indexed_and_loaded_by_the_next_run(tmp_path: Path) -> None:
    assert_loaded_with_every_index(*left_unindexed(str(tmp_path / "index.db")))


def made_at_once(uri: str, runs: int = 4) -> tuple[str, MilvusClient]:
    """``runs`` clients making the same new collection at the same moment, as the first runs of
    several upload days do; returns it, and a client."""
    clients = [MilvusClient(uri=uri) for _ in range(runs)]
    start = threading.Barrier(runs)

    def make(client: MilvusClient) -> str:
        start.wait()
        return MilvusIndex(client, HYBRID).ensure_collection("0123456789abcdef", 8)

    with ThreadPoolExecutor(runs) as pool:
        names = set(pool.map(make, clients))
    assert len(names) == 1
    return names.pop(), clients[0]


def assert_loaded_with_every_index(collection: str, client: MilvusClient) -> None:
    """Loaded, with the vector, lookup and (where the server has BM25) the BM25 field's indexes."""
    state = client.get_load_state(collection)["state"]
    assert getattr(state, "name", str(state)) == "Loaded"
    hybrid = has_bm25(client.get_server_version())
    assert MilvusIndex(client, HYBRID).is_hybrid(collection) == hybrid
    expected = {"vector", "document_id", "partition_date", *(["sparse"] if hybrid else [])}
    assert set(client.list_indexes(collection)) == expected
    assert client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"] == 0


def test_runs_making_the_collection_at_once_all_get_it_loaded_with_every_index(tmp_path: Path) -> None:
    server = MilvusLiteServer(tmp_path / "lite", tmp_path / "lite.log")
    server.start()
    try:
        assert_loaded_with_every_index(*made_at_once(server.uri))
        assert_loaded_with_every_index(*left_unindexed(server.uri))
    finally:
        server.kill()


def test_the_same_on_a_milvus_server_before_2_4(tmp_path: Path) -> None:
    """Milvus 2.3.5 loaded a collection that one run was still indexing, and refused the creating
    run's own load afterwards ("can't change the index for loaded collection"); it refuses to load
    one without its vector index ("index not found"). It has no BM25: a pipeline asking for hybrid
    gets a dense collection there (a sparse field would crash it)."""
    server = MilvusStandalone(tmp_path / "standalone")
    server.start()
    try:
        assert_loaded_with_every_index(*made_at_once(server.uri))
        assert_loaded_with_every_index(*left_unindexed(server.uri))
    finally:
        server.kill()


def test_stored_vectors_are_looked_up_only_for_documents_with_entries(tmp_path: Path) -> None:
    """A chunk id names its document, so the chunks of a document with no entries (a new upload)
    cannot have a stored vector: they are not asked for, and the stored ones come back."""
    import numpy as np
    import pandas as pd

    client = MilvusClient(uri=str(tmp_path / "index.db"))
    index = MilvusIndex(client, IndexSpec(alias="docs"))
    collection = index.ensure_collection("0123456789abcdef", 4)
    stored = {"a-0": [1.0, 0.0, 0.0, 0.0], "a-1": [0.0, 1.0, 0.0, 0.0]}
    fields = {"source": "a.txt", "title": "A", "partition_date": "2026-01-15", "heading_path": "", "text": "t"}
    rows = [
        {"id": i, "vector": v, "document_id": "doc-a", "document_sha256": "s", "chunk_index": n, **fields}
        | {"char_start": 0, "char_end": 1, "token_count": 1}
        for n, (i, v) in enumerate(stored.items())
    ]
    index.upsert(collection, rows)
    index.flush(collection)
    asked: list[list[str]] = []
    looked_up = index.vectors_for
    index.vectors_for = lambda name, ids: asked.append(list(ids)) or looked_up(name, ids)  # type: ignore[method-assign]
    chunks = pd.DataFrame(
        {"chunk_id": ["a-0", "a-1", "a-2", "b-0", "b-1"], "document_id": ["doc-a"] * 3 + ["doc-b"] * 2}
    )
    found = index.reusable_vectors(collection, [], chunks)
    assert sorted(found) == ["a-0", "a-1"]
    assert np.allclose(found["a-1"], stored["a-1"])
    assert asked == [["a-0", "a-1", "a-2"]]  # doc-b's chunks were not asked for
    assert index.reusable_vectors(collection, [], chunks[chunks["document_id"] == "doc-b"]) == {}
    assert asked == [["a-0", "a-1", "a-2"]]
    client.close()
