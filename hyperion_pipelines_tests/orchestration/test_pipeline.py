"""The whole asset graph into milvus-lite with the packaged model: search, re-runs, edits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey, DagsterInstance, TableColumnDep

from hyperion_pipelines.chunking.context import context_line, embedding_input, fit_context
from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder
from hyperion_pipelines.embedding.space import context_tokens
from hyperion_pipelines.index.connection import connect
from hyperion_pipelines.run_metadata import INGEST_ENTRIES, STEP_SECONDS
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import IndexSpec

from ..conftest import TEST_PARSE_WORKERS, set_upload_time
from ..fixtures.expected_chunks import HIVE_CARE_CHUNKS, HIVE_CARE_MD
from ..support.pipeline_runs import index_entries, run_partition
from ..support.sample_pipeline import default_spec


def assert_vectors_embed_context_and_text(settings: Settings) -> None:
    """Every stored vector is the model's embedding of the chunk's context line (title and heading
    path) and text, not of the text alone."""
    embedder = SentenceTransformerEmbedder()
    room = context_tokens(default_spec(settings).chunking, embedder.identity)
    client = connect(settings.milvus_uri)
    try:
        collection = client.describe_alias("hyperion_documents")["collection_name"]
        client.load_collection(collection)
        fields = ["title", "heading_path", "text", "vector"]
        rows = client.query(collection, filter='id != ""', output_fields=fields, limit=16384)
    finally:
        client.close()
    lines = [context_line(r["title"], r["heading_path"].split(" > ") if r["heading_path"] else []) for r in rows]
    contexts = [fit_context(line, embedder.tokenizer, room) for line in lines]
    assert room > 0 and all(contexts)
    stored = np.array([r["vector"] for r in rows], dtype=np.float32)
    expected = embedder.embed([embedding_input(c, r["text"]) for c, r in zip(contexts, rows, strict=True)])
    text_alone = embedder.embed([r["text"] for r in rows])
    if "+onnx-" not in embedder.identity.model_name:  # float backends: the same vectors to rounding
        assert np.allclose(stored, expected, atol=1e-4)
    # int8 quantises activations per batch, so a vector moves a little with its batch-mates: each
    # stored vector is still nearest the embedding of context and text, not of the text alone.
    to_expected, to_text = np.sum(stored * expected, axis=1), np.sum(stored * text_alone, axis=1)
    assert to_expected.min() > 0.98 and bool(np.all(to_expected > to_text))


def search_sources(settings: Settings, query: str, k: int = 3) -> list[str]:
    client = connect(settings.milvus_uri)
    try:
        vector = SentenceTransformerEmbedder().embed([query])[0].tolist()
        collection = client.describe_alias("hyperion_documents")["collection_name"]
        client.load_collection(collection)
        hits = client.search(collection, data=[vector], limit=k, output_fields=["source"])[0]
        return [hit["entity"]["source"] for hit in hits]
    finally:
        client.close()


def assert_dashboard_metadata(metadata: dict[str, dict], max_tokens: int) -> None:
    """What the UI plots and shows: distributions under stable names, a histogram, column lineage."""
    chunked = metadata["document_chunks"]
    chunks = chunked["chunks"]
    for name in ("tokens_p50", "tokens_p95", "chars_mean", "chars_p95", "chunks_per_document"):
        assert isinstance(chunked[name], float), name  # one type per name, or the UI cannot plot its history
    assert 0 < chunked["tokens_p50"] <= chunked["tokens_p95"] <= chunked["tokens_max"] <= max_tokens
    assert chunked["chars_mean"] > 0 and chunked["chars_p95"] > chunked["tokens_p95"]  # tokens are words or pieces
    assert chunked["chunks_per_document"] == round(chunks / metadata["parsed_documents"]["parsed"], 2)
    rows = [line.split("|")[1:-1] for line in chunked["token_histogram"].splitlines()[2:]]
    assert [r[0].strip() for r in rows][-1].endswith(str(max_tokens)) and len(rows) == 8  # fixed buckets
    assert sum(int(r[1]) for r in rows) == chunks
    lineage = chunked["dagster/column_lineage"].deps_by_column
    assert lineage["document_id"] == [TableColumnDep(AssetKey("parsed_documents"), "document_id")]
    assert TableColumnDep(AssetKey("parsed_documents"), "text") in lineage["chunk_id"]
    embedded = metadata["chunk_embeddings"]["dagster/column_lineage"].deps_by_column
    assert embedded["chunk_id"] == [TableColumnDep(AssetKey("document_chunks"), "chunk_id")]
    schema = {c.name: c for c in metadata["chunk_embeddings"]["dagster/column_schema"].columns}
    assert schema["vector"].type == "list[float]" and schema["vector"].description
    assert metadata["parsed_documents"]["characters_mean"] > 0
    units = {"raw_documents": "documents", "parsed_documents": "documents", "quarantined_documents": "documents"}
    for name, unit in {**units, "document_chunks": "chunks", "chunk_embeddings": "chunks"}.items():
        assert metadata[name]["seconds"] >= 0 and f"{unit}_per_second" in metadata[name], name


@pytest.fixture
def instance(hyperion_env: Settings):
    with DagsterInstance.ephemeral() as instance:
        yield instance


def test_partition_indexes_searchably_and_reruns_change_nothing(
    hyperion_env: Settings, sample_uploads: Path, instance: DagsterInstance
) -> None:
    first = run_partition(hyperion_env, instance)
    # Every entry the CLI, the metrics and promotion read is recorded, and every step's seconds.
    assert [entry for entry in INGEST_ENTRIES if entry.of(first) is None] == []
    assert all(STEP_SECONDS in values for values in first.values()) and len(first) == 6
    assert first["raw_documents"]["documents"] == 8
    assert first["parsed_documents"]["rejected"] == 0
    assert (first["parsed_documents"]["parsed_now"], first["parsed_documents"]["parse_reused"]) == (8, 0)
    assert first["parsed_documents"]["parser_processes"] == TEST_PARSE_WORKERS
    assert first["document_chunks"]["documents_chunked_now"] == 8
    chunks = first["document_chunks"]["chunks"]
    assert first["chunk_embeddings"]["embedded"] == chunks and first["chunk_embeddings"]["reused"] == 0
    assert first["vector_index"]["upserted"] == chunks and first["vector_index"]["deleted"] == 0

    assert_dashboard_metadata(first, hyperion_env.chunk_max_tokens)
    assert_vectors_embed_context_and_text(hyperion_env)

    entries = index_entries(hyperion_env)
    assert len(entries) == chunks
    assert {source for source, _ in entries.values()} == {
        "guides/sourdough-starter.md", "guides/bicycle-maintenance.md", "notes/composting.txt",
        "notes/lighthouse-keepers.txt", "web/tide-pools.html", "web/night-sky.html",
        "reports/honeybee-winter-survival.pdf", "reports/river-restoration.docx",
    }  # fmt: skip
    assert search_sources(hyperion_env, "how do bees keep warm in winter")[0] == "reports/honeybee-winter-survival.pdf"
    assert search_sources(hyperion_env, "lubricating a chain and pumping tyres")[0] == "guides/bicycle-maintenance.md"
    assert search_sources(hyperion_env, "gravel riffles for juvenile trout")[0] == "reports/river-restoration.docx"

    second = run_partition(hyperion_env, instance)
    # Nothing changed: nothing parsed, nothing embedded again.
    assert (second["parsed_documents"]["parsed_now"], second["parsed_documents"]["parse_reused"]) == (0, 8)
    assert second["document_chunks"]["documents_chunked_now"] == 0
    assert second["chunk_embeddings"]["embedded"] == 0 and second["chunk_embeddings"]["reused"] == chunks
    assert second["vector_index"]["deleted"] == 0
    assert second["vector_index"]["upserted"] == 0 and second["vector_index"]["unchanged"] == chunks
    assert index_entries(hyperion_env) == entries  # same ids, same content: no duplicates, no orphans


def test_editing_a_document_replaces_exactly_its_entries(
    hyperion_env: Settings, sample_uploads: Path, instance: DagsterInstance
) -> None:
    run_partition(hyperion_env, instance)
    before = index_entries(hyperion_env)
    edited = sample_uploads / "notes" / "composting.txt"
    old_ids = {i for i, (source, _) in before.items() if source == "notes/composting.txt"}

    edited.write_text(
        "Home Composting Notes (revised)\n\nWorms do the work in a wormery: red wigglers eat kitchen scraps "
        "and turn them into castings, a rich fertiliser for pot plants.\n",
        encoding="utf-8",
    )
    set_upload_time(edited)  # still uploaded on the same day
    after_run = run_partition(hyperion_env, instance)
    after = index_entries(hyperion_env)

    new_ids = {i for i, (source, _) in after.items() if source == "notes/composting.txt"}
    assert new_ids and not (new_ids & old_ids)
    assert after_run["vector_index"]["deleted"] == len(old_ids)
    assert after_run["vector_index"]["upserted"] == len(new_ids)  # the other documents' rows are left alone
    assert after_run["chunk_embeddings"]["embedded"] == len(new_ids)
    # Only the edited document is parsed again.
    assert (after_run["parsed_documents"]["parsed_now"], after_run["parsed_documents"]["parse_reused"]) == (1, 7)
    assert after_run["document_chunks"]["documents_chunked_now"] == 1
    untouched_before = {i: v for i, v in before.items() if i not in old_ids}
    untouched_after = {i: v for i, v in after.items() if i not in new_ids}
    assert untouched_after == untouched_before
    assert all("red wigglers" in after[i][1] for i in new_ids)
    assert search_sources(hyperion_env, "worms eating kitchen scraps")[0] == "notes/composting.txt"


def test_bad_documents_are_recorded_and_the_rest_is_indexed(
    hyperion_env: Settings, sample_uploads: Path, instance: DagsterInstance
) -> None:
    bad = {"broken.pdf": b"%PDF-1.4\n%%garbage", "empty.md": b"", "program.txt": bytes(range(256)) * 8}
    for name, content in bad.items():
        (sample_uploads / name).write_bytes(content)
        set_upload_time(sample_uploads / name)
    metadata = run_partition(hyperion_env, instance)
    assert metadata["raw_documents"]["documents"] == 11
    assert metadata["parsed_documents"]["rejected"] == 3
    assert metadata["parsed_documents"]["rejected_by_reason"] == {"corrupt": 1, "empty": 1, "mislabelled_type": 1}
    sources = {source for source, _ in index_entries(hyperion_env).values()}
    assert len(sources) == 8 and not sources & set(bad)


def test_removed_document_leaves_the_index(hyperion_env: Settings, sample_uploads: Path, instance) -> None:
    run_partition(hyperion_env, instance)
    (sample_uploads / "web" / "night-sky.html").unlink()
    metadata = run_partition(hyperion_env, instance)
    sources = {source for source, _ in index_entries(hyperion_env).values()}
    assert "web/night-sky.html" not in sources and len(sources) == 7
    assert metadata["vector_index"]["deleted"] > 0


def test_distributions_have_fixed_buckets_and_a_value_for_an_empty_partition() -> None:
    from hyperion_pipelines.orchestration.metadata import bucket_edges, histogram, mean, percentile

    edges = bucket_edges(200)
    assert edges == [25, 50, 75, 100, 125, 150, 175, 200]
    assert (percentile([], 95), mean([])) == (0.0, 0.0)  # present, and a float, with no chunks at all
    empty = histogram([], edges, "tokens", "chunks").value.splitlines()
    assert len(empty) == 2 + len(edges) and all("| 0 | 0% |" in line for line in empty[2:])
    rows = histogram([1, 25, 26, 200, 230], edges, "tokens", "chunks").value.splitlines()[2:]
    assert rows[0].startswith("| 1–25 | 2 |") and rows[1].startswith("| 26–50 | 1 |")
    assert rows[-1].startswith("| > 200 | 1 |")  # only shown when something is over the bound


def test_a_preloaded_model_loads_once_in_the_background_and_embed_waits_for_it() -> None:
    # The loader is the preload's own thread: an earlier test's loaded graph (kept per process)
    # can make it finish before any list of running threads would see it.
    embedder = SentenceTransformerEmbedder()
    loader = embedder.preload()
    assert loader is not None and loader.name == "hyperion-model-preload"
    vectors = embedder.embed(["Honeybees cluster in winter."])  # waits for the background load
    loader.join(timeout=120)
    assert not loader.is_alive()
    model = embedder.model
    assert embedder.preload() is None  # already loaded: nothing starts
    assert embedder.model is model and vectors.shape == (1, embedder.identity.dimension)
    assert vectors.tolist() == embedder.embed(["Honeybees cluster in winter."]).tolist()


def test_the_index_holds_the_chunks_written_out_by_hand(hyperion_env: Settings, instance) -> None:
    # Independent of the chunker: the exact-index check computes its expectation with it.
    upload = hyperion_env.uploads_dir / "hive-care.md"
    upload.write_text(HIVE_CARE_MD, encoding="utf-8")
    set_upload_time(upload)
    run_partition(Settings.from_env(), instance)
    client = connect(hyperion_env.milvus_uri)
    try:
        collection = client.describe_alias(IndexSpec(alias="hyperion_documents").alias)["collection_name"]
        client.load_collection(collection)
        rows = client.query(collection, filter='id != ""', output_fields=["chunk_index", "text", "heading_path"])
    finally:
        client.close()
    stored = [(row["text"], row["heading_path"]) for row in sorted(rows, key=lambda row: row["chunk_index"])]
    assert stored == HIVE_CARE_CHUNKS
