"""``hyperion serve``: requests read and checked, filters matched literally on real milvus-lite,
and the service run as a user runs it (a separate process) against an ingested index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pymilvus import MilvusClient

from hyperion_pipelines.index.connection import connect, release_local
from hyperion_pipelines.index.milvus_index import SCALAR_FIELDS, MilvusIndex, SearchHit
from hyperion_pipelines.serving.queries import (
    CLI_FIELDS,
    RESULT_FIELDS,
    BadRequest,
    SearchQuery,
    milvus_filter,
    read_request,
    result_row,
)
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import IndexSpec

from ..conftest import UPLOAD_DAY
from ..support.ports import free_port, wait_for_port

HYPERION = [sys.executable, "-m", "hyperion_pipelines.cli"]


def test_a_request_is_read_with_its_defaults() -> None:
    assert read_request({"query": "tyre pressure"}) == SearchQuery("tyre pressure", 10, None, None)
    got = read_request({"query": "q", "k": 3, "source_prefix": "guides/", "upload_day": "2026-01-15"})
    assert got == SearchQuery("q", 3, "guides/", "2026-01-15")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "JSON object"),
        ({}, "'query' must be a non-empty string"),
        ({"query": "   "}, "'query' must be a non-empty string"),
        ({"query": 7}, "'query' must be a non-empty string"),
        ({"query": "x" * 2001}, "at most 2000"),
        ({"query": "q", "k": 0}, "'k' must be an integer from 1 to 100, not 0"),
        ({"query": "q", "k": 101}, "from 1 to 100"),
        ({"query": "q", "k": True}, "not true"),
        ({"query": "q", "k": "5"}, 'not "5"'),
        ({"query": "q", "limit": 5}, "unknown field(s) limit; the fields are query, k, source_prefix, upload_day"),
        ({"query": "q", "source_prefix": ""}, "'source_prefix' must be a non-empty string"),
        ({"query": "q", "upload_day": "15/01/2026"}, "YYYY-MM-DD"),
        ({"query": "q", "upload_day": "2026-02-30"}, "not a day of the calendar"),
    ],
)
def test_a_bad_request_is_refused_with_what_is_wrong(body: object, says: str) -> None:
    with pytest.raises(BadRequest, match=None) as refused:
        read_request(body)
    assert says in str(refused.value)


def test_filters_match_the_prefix_literally_on_milvus(tmp_path: Path) -> None:
    """``%`` and ``_`` are LIKE's wildcards and quotes end a string: each is escaped."""
    client = MilvusClient(uri=str(tmp_path / "index.db"))
    client.create_collection("t", dimension=2, id_type="string", max_length=64)
    sources = ["a_b/x.md", "axb/y.md", "a%b/z.md", 'q"uo\\te/z.md', "guides/bike.md"]
    rows = [
        {"id": str(i), "vector": [1.0, 0.0], "source": s, "partition_date": "2026-01-1" + str(i % 2)}
        for i, s in enumerate(sources)
    ]
    client.insert("t", rows)

    def matching(**filters: str) -> set[str]:
        expr = milvus_filter(SearchQuery("q", 10, **filters))
        return {row["source"] for row in client.query("t", filter=expr, output_fields=["source"])}

    assert matching(source_prefix="a_b/") == {"a_b/x.md"}
    assert matching(source_prefix="a%b/") == {"a%b/z.md"}
    assert matching(source_prefix='q"uo\\te/') == {'q"uo\\te/z.md'}
    assert matching(source_prefix="guides/", upload_day="2026-01-10") == {"guides/bike.md"}
    assert matching(source_prefix="guides/", upload_day="2026-01-11") == set()
    assert milvus_filter(SearchQuery("q")) == ""


def test_answer_rows_are_the_command_lines_plus_the_chunks_place() -> None:
    fields = {name: f"<{name}>" for name in RESULT_FIELDS} | {"chunk_index": 2, "char_start": 10, "char_end": 90}
    hit = SearchHit(0.123456, "id", fields | {"title": "t", "partition_date": UPLOAD_DAY})
    assert list(result_row(hit)) == list(RESULT_FIELDS) and result_row(hit)["score"] == 0.1235
    assert list(result_row(hit, offsets=False)) == list(CLI_FIELDS)


# -- the service, run as a user runs it ---------------------------------------------------------
@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``hyperion serve`` on a free port until the block ends; yields its base URL."""
    port = free_port()
    command = [*HYPERION, "serve", "--port", str(port), "--idle-release-s", "0.5", *args]
    log = Path(os.environ["HYPERION_HOME"]) / f"serve-{port}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(command, env=env or dict(os.environ), stderr=stderr)
        try:
            wait_for_port(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def cli_search(query: str, k: int) -> list[dict]:
    done = subprocess.run([*HYPERION, "search", query, "-k", str(k), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def ingested(hyperion_env: Settings, sample_uploads: Path) -> Settings:
    done = subprocess.run([*HYPERION, "ingest", "--all", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return hyperion_env


QUERY = "which tyre pressure for a road bike"


def test_the_api_answers_as_search_json_and_refuses_bad_requests_with_a_reason(ingested: Settings) -> None:
    with serving() as url, httpx.Client(base_url=url, timeout=60) as http:
        health = http.get("/healthz").json()
        assert health.pop("model").startswith("all-MiniLM-L6-v2@")  # the model and a digest of its files
        assert health == {"status": "ok", "pipeline": "documents", "alias": "hyperion_documents"}
        answer = http.post("/search", json={"query": QUERY, "k": 4}).json()
        results = answer["results"]
        assert len(results) == 4 and answer["collection"].startswith("hyperion_documents__") and answer["notes"] == []
        assert results[0]["source"] == "guides/bicycle-maintenance.md"
        for row in results:
            assert list(row) == list(RESULT_FIELDS) and 0 <= row["char_start"] < row["char_end"]
        # The embedded index is let go between bursts: the command line (another process) opens it.
        assert cli_search(QUERY, 4) == [{name: row[name] for name in CLI_FIELDS} for row in results]

        guides = http.post("/search", json={"query": QUERY, "k": 20, "source_prefix": "notes/"}).json()["results"]
        assert guides and all(row["source"].startswith("notes/") for row in guides)
        other_day = {"query": QUERY, "upload_day": "2026-01-16"}
        assert http.post("/search", json=other_day).json()["results"] == []

        for body, status, says in [
            ({"query": ""}, 400, "'query' must be a non-empty string"),
            ({"query": QUERY, "k": 500}, 400, "from 1 to 100"),
            ({"query": QUERY, "filters": {"source": "x"}}, 400, "unknown field(s) filters"),
        ]:
            refused = http.post("/search", json=body)
            assert (refused.status_code, says in refused.json()["error"]) == (status, True), refused.text
        assert http.post("/search", content=b"{not json").status_code == 400
        assert http.get("/search").status_code == 405

        schema = http.get("/openapi.json").json()
        assert set(schema["paths"]) == {"/search", "/healthz", "/metrics", "/openapi.json"}
        request = schema["paths"]["/search"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert request["properties"]["k"]["maximum"] == 100 and request["additionalProperties"] is False

        metrics = http.get("/metrics").text
        assert 'hyperion_search_requests_total{status="200"} 3.0' in metrics
        assert 'hyperion_search_requests_total{status="400"} 4.0' in metrics
        assert "hyperion_search_latency_seconds_count 3.0" in metrics


def test_a_switch_of_the_live_alias_is_seen_by_the_running_service(ingested: Settings) -> None:
    """As ``hyperion reindex`` promotes a collection: the next request searches it, no restart."""
    from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder

    vector = SentenceTransformerEmbedder().embed([QUERY])[0]
    with serving() as url, httpx.Client(base_url=url, timeout=60) as http:
        before = http.post("/search", json={"query": QUERY, "k": 1}).json()
        uri = str(ingested.milvus_uri)
        index = MilvusIndex(connect(uri, lock_wait_s=30), IndexSpec(alias="hyperion_documents"))
        try:
            other = index.ensure_collection("feedfacefeedface", 384)
            row = {name: 0 if limit is None else "" for name, limit in SCALAR_FIELDS.items()}
            row |= {"id": "x", "vector": vector, "text": "the other collection", "source": "other.md"}
            index.upsert(other, [row])
            index.flush(other)
            index.point_alias(other)
        finally:
            index.client.close()
            release_local(uri)
        after = http.post("/search", json={"query": QUERY, "k": 1}).json()
        assert (after["collection"], after["results"][0]["text"]) == (other, "the other collection")
        assert before["collection"] != other and "earlier embedding configuration" in after["notes"][0]


def test_a_token_is_asked_for_when_set_and_required_off_this_machine(ingested: Settings) -> None:
    refused = subprocess.run([*HYPERION, "serve", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "set HYPERION_SERVE_TOKEN" in refused.stderr
    with serving(env=dict(os.environ) | {"HYPERION_SERVE_TOKEN": "s3cret"}) as url, httpx.Client(base_url=url) as http:
        assert http.get("/healthz").status_code == 200  # probes carry no token
        assert http.post("/search", json={"query": QUERY}).status_code == 401
        wrong = http.post("/search", json={"query": QUERY}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and http.get("/openapi.json").status_code == 401
        assert 'hyperion_search_requests_total{status="401"} 2.0' in http.get("/metrics").text  # Prometheus: no token
        right = http.post("/search", json={"query": QUERY, "k": 2}, headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200 and len(right.json()["results"]) == 2
