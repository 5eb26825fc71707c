"""What the Milvus collection is made with, by the server it is made on."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymilvus import MilvusClient

from hyperion_pipelines.index.milvus_index import MilvusIndex, scalar_index_type
from hyperion_pipelines.spec import IndexSpec


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


def test_a_collection_on_milvus_lite_indexes_its_lookup_fields_inverted(tmp_path: Path) -> None:
    client = MilvusClient(uri=str(tmp_path / "index.db"))
    collection = MilvusIndex(client, IndexSpec(alias="docs")).ensure_collection("0123456789abcdef", 8)
    for field in ("document_id", "partition_date"):
        assert client.describe_index(collection, field)["index_type"] == "INVERTED"
