"""Hybrid retrieval on real milvus-lite with the real model: a BM25 field beside the vectors,
searched with them and fused; a collection is hybrid or dense for good, never mixed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance, materialize
from pymilvus import MilvusClient

from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.embedding.base import EmbedderIdentity
from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder
from hyperion_pipelines.embedding.space import collection_fingerprint, same_space_fingerprints, space_fingerprint
from hyperion_pipelines.ids import earlier_hybrid_fingerprint
from hyperion_pipelines.index.connection import connect
from hyperion_pipelines.index.milvus_index import BM25_TEXT_FIELD, SCALAR_FIELDS, SPARSE_FIELD, MilvusIndex
from hyperion_pipelines.index.verification import self_retrieval
from hyperion_pipelines.orchestration.pipeline import build_pipeline
from hyperion_pipelines.serving.live_note import live_collection_note
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.spec import IndexSpec, PipelineSpec

from ..conftest import UPLOAD_DAY
from ..support.sample_pipeline import default_spec

# Sibling pages about one tool, and the page that holds the option a user types: the model ranks
# that page last for the option's name, BM25 first (the one page with the rare term "t0").
PAGES = {
    "options.md": "The option list: -T0 uses as many worker threads as cores; --ultra unlocks levels above 19.",
    "levels.md": "Compressing files with zstd: choose a level from 1 to 19 for speed against ratio.",
    "threads.md": "Multithreaded compression speeds up zstd on machines with many cores.",
    "about.md": "zstd is a fast lossless compression algorithm by Facebook.",
    "compare.md": "Compression tools compared: gzip, xz and zstd on large archives.",
    "backups.md": "Using more threads for zstd compression of backups.",
}
QUERY = "zstd -T0"


@pytest.fixture(scope="module")
def model() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def indexed(tmp_path: Path, model: SentenceTransformerEmbedder, **spec: str) -> tuple[MilvusIndex, str]:
    spec = {"retrieval": "hybrid"} | spec
    index = MilvusIndex(MilvusClient(uri=str(tmp_path / f"{spec['retrieval']}.db")), IndexSpec(**spec))
    collection = index.ensure_collection("0123456789abcdef", 384)
    vectors = model.embed(list(PAGES.values()))
    rows = []
    for n, (source, text) in enumerate(PAGES.items()):
        row: dict = {name: 0 if limit is None else "" for name, limit in SCALAR_FIELDS.items()}
        rows.append(row | {"id": f"c{n}", "source": source, "document_id": source, "text": text, "vector": vectors[n]})
    index.upsert(collection, rows)
    index.flush(collection)
    return index, collection


def top(index: MilvusIndex, collection: str, model: SentenceTransformerEmbedder, k: int, query: str = QUERY) -> list:
    hits = index.search(model.embed([query]), limit=k, collection=collection, texts=[query])[0]
    return [hit.fields["source"] for hit in hits]


def test_hybrid_search_finds_the_exact_term_that_dense_search_ranks_last(
    tmp_path: Path, model: SentenceTransformerEmbedder
) -> None:
    dense, dense_collection = indexed(tmp_path, model, retrieval="dense")
    hybrid, hybrid_collection = indexed(tmp_path, model)
    assert not dense.is_hybrid(dense_collection) and hybrid.is_hybrid(hybrid_collection)
    assert top(dense, dense_collection, model, 6)[-1] == "options.md"  # the model's view: last
    assert "options.md" not in top(dense, dense_collection, model, 3)
    # Weighted evenly, each fusion puts the page first. (The default leans on the model, 0.75,
    # what did best over four query styles of real corpora in benchmarks/peer_fair.py; on these
    # six pages it keeps the model's order.)
    for fusion in ("relative", "weighted"):
        even = MilvusIndex(hybrid.client, IndexSpec(retrieval="hybrid", fusion=fusion, dense_weight=0.5))
        assert top(even, hybrid_collection, model, 1) == ["options.md"], fusion
        # The fusion sees more candidates than asked for, so the first k do not depend on k.
        assert top(even, hybrid_collection, model, 3) == top(even, hybrid_collection, model, 6)[:3]
    keyword = hybrid.keyword_search(hybrid_collection, [QUERY], limit=1)[0]
    assert [hit.fields["document_id"] for hit in keyword] == ["options.md"]
    # Without the query's text (the self-retrieval check's vectors), the same collection is dense.
    vectors_only = hybrid.search(model.embed([QUERY]), limit=3, collection=hybrid_collection)[0]
    assert [hit.fields["source"] for hit in vectors_only] == top(dense, dense_collection, model, 3)


@pytest.mark.parametrize("fusion", ["relative", "weighted"])
def test_fusion_weights_are_a_query_time_setting(
    tmp_path: Path, model: SentenceTransformerEmbedder, fusion: str
) -> None:
    """All dense weight gives the dense ranking, all BM25 weight the keyword one: same collection."""
    index, collection = indexed(tmp_path, model)
    dense_only = MilvusIndex(index.client, IndexSpec(fusion=fusion, dense_weight=1.0))
    keyword_only = MilvusIndex(index.client, IndexSpec(fusion=fusion, dense_weight=0.0))
    assert top(dense_only, collection, model, 6)[-1] == "options.md"
    assert top(keyword_only, collection, model, 1) == ["options.md"]


@pytest.mark.parametrize("kind", ["hybrid-local", "hybrid"])
def test_bm25_reads_the_context_line_the_model_embeds(
    tmp_path: Path, model: SentenceTransformerEmbedder, kind: str
) -> None:
    """A chunk from the middle of a page seldom repeats the page's title, which is what keyword
    queries name: BM25 reads the chunk's context line too, as the model does; the stored text
    stays the chunk's own. Both kinds: Hyperion's BM25 (milvus-lite's default for hybrid) and
    Milvus's BM25 function over ``bm25_text`` (a server's from 2.5; milvus-lite runs it too)."""
    index = MilvusIndex(MilvusClient(uri=str(tmp_path / "index.db")), IndexSpec(retrieval="hybrid"))
    index._retrieval = kind  # type: ignore[assignment]  # what a server from 2.5 resolves hybrid to
    collection = index.ensure_collection("0123456789abcdef", 384)
    fields = {field["name"] for field in index.client.describe_collection(collection)["fields"]}
    assert (BM25_TEXT_FIELD in fields, index.scores_bm25_locally(collection)) == (kind == "hybrid", kind != "hybrid")
    chunks = {
        "hashlib.md": ("hashlib > Secure hashes and message digests", "Call update() with bytes, then digest()."),
        "zlib.md": ("zlib > Compression compatible with gzip", "Call compress() with bytes to get bytes."),
    }
    rows = []
    for n, (source, (context, text)) in enumerate(chunks.items()):
        row: dict = {name: 0 if limit is None else "" for name, limit in SCALAR_FIELDS.items()}
        vector = model.embed([f"{context}\n\n{text}"])[0]
        rows.append(row | {"id": f"c{n}", "source": source, "document_id": source, "text": text, "context": context})
        rows[-1]["vector"] = vector
    index.upsert(collection, rows)
    index.flush(collection)
    for query, page in (("hashlib digests", "hashlib.md"), ("gzip compatible", "zlib.md")):
        keyword = index.keyword_search(collection, [query], limit=2)[0]
        assert [hit.fields["document_id"] for hit in keyword][:1] == [page], query
        found = index.search(model.embed([query]), limit=1, collection=collection, texts=[query])[0]
        assert [hit.fields["document_id"] for hit in found] == [page], query
    assert index.texts_of(collection, ["c0"]) == {"c0": chunks["hashlib.md"][1]}


def test_relative_fusion_reads_the_metric_the_vectors_were_indexed_with(
    tmp_path: Path, model: SentenceTransformerEmbedder
) -> None:
    """The metric is not part of a collection's name and an index that exists is kept: a spec
    changed to another metric must not turn the stored index's distances round."""
    made, collection = indexed(tmp_path, model, metric_type="L2")
    later = MilvusIndex(made.client, IndexSpec(retrieval="hybrid", metric_type="COSINE", dense_weight=1.0))
    assert later._vector_metric(collection) == "L2"
    query = PAGES["about.md"]  # its own text: nearest by any metric
    assert top(later, collection, model, 1, query=query) == ["about.md"]


def test_a_serving_process_keeps_the_term_statistics_across_reconnections(
    tmp_path: Path, model: SentenceTransformerEmbedder
) -> None:
    index, collection = indexed(tmp_path, model)
    shared: dict = {}
    first = MilvusIndex(index.client, index.spec, term_statistics=shared).term_statistics(collection)
    assert first.chunks == len(PAGES)
    assert MilvusIndex(index.client, index.spec, term_statistics=shared).term_statistics(collection) is first


def test_the_bm25_field_is_checked_by_self_retrieval(tmp_path: Path, model: SentenceTransformerEmbedder) -> None:
    index, collection = indexed(tmp_path, model)
    ids = [f"c{n}" for n in range(len(PAGES))]
    report = self_retrieval(index, collection, ids, model.embed(list(PAGES.values())))
    assert (report.found_first, report.keyword_found, report.keyword_sampled) == (6, 6, 6)
    assert report.keyword_ratio == 1.0
    dense, dense_collection = indexed(tmp_path, model, retrieval="dense")
    assert self_retrieval(dense, dense_collection, ids, model.embed(list(PAGES.values()))).keyword_ratio is None


def test_hybrid_and_dense_collections_have_their_own_names_and_chunk_ids_do_not_change() -> None:
    """The collection's name says what it holds, so switching ``retrieval`` goes through the
    blue/green re-index; the chunk ids (the space fingerprint) stay, so vectors are comparable."""
    identity = EmbedderIdentity("sentence-transformers/all-MiniLM-L6-v2", 384, True, 256)
    spec = PipelineSpec(name="documents")
    weighted = PipelineSpec(name="documents", index=IndexSpec(fusion="weighted", dense_weight=0.3))
    assert space_fingerprint(spec, identity) == space_fingerprint(weighted, identity)
    assert collection_fingerprint(spec, identity, "dense") == space_fingerprint(spec, identity)  # as before hybrid
    assert collection_fingerprint(spec, identity, "hybrid") != collection_fingerprint(spec, identity, "dense")
    assert collection_fingerprint(weighted, identity, "hybrid") == collection_fingerprint(spec, identity, "hybrid")
    # Hybrid collections made when BM25 read the chunk text alone have another name; their
    # vectors are the space's, so a re-index to the current kind reuses them.
    # BM25 scored by Milvus and by Hyperion are two kinds of collection, each with its own name.
    space = space_fingerprint(spec, identity)
    earlier = earlier_hybrid_fingerprint(space)
    hybrid, local = (collection_fingerprint(spec, identity, r) for r in ("hybrid", "hybrid-local"))
    assert len({space, hybrid, local, earlier}) == 4
    assert same_space_fingerprints(spec, identity, "dense") == [hybrid, local, earlier]
    assert same_space_fingerprints(spec, identity, "hybrid-local") == [space, hybrid, earlier]
    assert SPARSE_FIELD not in SCALAR_FIELDS  # written by Milvus, never by the sync


def materialize_day(settings: Settings, instance: DagsterInstance, spec: PipelineSpec) -> tuple[dict, dict]:
    """Every asset of the day with ``spec``: each asset's metadata, and each check's metadata."""
    result = materialize(
        build_pipeline(spec).assets,
        partition_key=UPLOAD_DAY,
        resources=build_definitions(settings).resources,
        instance=instance,
    )
    assert result.success
    assets = {
        event.materialization.asset_key.path[-1]: {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }
    checks = {
        check.check_name: {"passed": check.passed} | {k: v.value for k, v in check.metadata.items()}
        for check in result.get_asset_check_evaluations()
    }
    return assets, checks


def test_a_dense_index_switched_to_hybrid_is_a_new_collection_filled_with_the_same_vectors(
    hyperion_env: Settings, sample_uploads: Path
) -> None:
    """An embedded pipeline indexed dense (before ``auto`` was hybrid on milvus-lite, or pinned)
    gets its hybrid collection from the vectors it has under the default: nothing is embedded
    again, the self-retrieval check covers the BM25 field, and its document frequencies are kept."""
    default = default_spec(hyperion_env)
    dense = default.model_copy(update={"index": default.index.model_copy(update={"retrieval": "dense"})})
    with DagsterInstance.ephemeral() as instance:
        before, checks = materialize_day(hyperion_env, instance, dense)
        chunks = before["chunk_embeddings"]["embedded"]
        assert chunks > 8 and "keyword_ratio" not in checks["self_retrieval"]
        after, checks = materialize_day(hyperion_env, instance, default)
    assert (after["chunk_embeddings"]["embedded"], after["chunk_embeddings"]["reused"]) == (0, chunks)
    assert after["vector_index"]["collection"] != before["vector_index"]["collection"]
    assert after["vector_index"]["upserted"] == chunks
    assert checks["self_retrieval"]["passed"] and checks["self_retrieval"]["keyword_ratio"] == 1.0
    client = connect(hyperion_env.milvus_uri)
    try:
        index = MilvusIndex(client, default.index)
        hybrid, was = after["vector_index"]["collection"], before["vector_index"]["collection"]
        assert (index.kind(hybrid), index.kind(was)) == ("hybrid-local", "dense")
        kept = index.frequencies(hybrid).statistics(set())
        assert kept is not None and kept.chunks == chunks == index.count(hybrid)
        # Until a reindex moves the alias, searches say what they search and what to run.
        assert index.live_collection() == was
        note = live_collection_note(index, default, SentenceTransformerEmbedder().identity, was)
        assert note and "a dense collection of the same vectors" in note and "nothing is embedded again" in note
        dense_index = MilvusIndex(client, dense.index)
        assert live_collection_note(dense_index, dense, SentenceTransformerEmbedder().identity, was) is None
    finally:
        client.close()


def test_repeated_boilerplate_ties_count_as_found_by_its_own_text(tmp_path: Path) -> None:
    """Every page of a manual ends with the same links: dozens of chunks whose words are the same
    score the same for their own text, in any order; each counts as found, as in the dense check."""
    index = MilvusIndex(MilvusClient(uri=str(tmp_path / "index.db")), IndexSpec(retrieval="hybrid"))
    collection = index.ensure_collection("0123456789abcdef", 4)
    rows = []
    for n in range(80):
        text = "This Page\n\nReport a Bug\n\nShow Source" + ("\n\n«" if n % 2 else "")
        row: dict = {name: 0 if limit is None else "" for name, limit in SCALAR_FIELDS.items()}
        rows.append(row | {"id": f"b{n}", "text": text, "vector": [1.0, float(n), 0.0, 1.0]})
    rows.append(row | {"id": "prose", "text": "Tide pools shelter anemones at low water.", "vector": [0, 1, 1, 0]})
    index.upsert(collection, rows)
    index.flush(collection)
    report = self_retrieval(index, collection, ["b3", "b40", "b79", "prose"], np.zeros((4, 4), dtype=np.float32) + 1)
    assert (report.keyword_found, report.keyword_sampled) == (4, 4)


def paragraphs_of_the_sample_corpus() -> list[str]:
    corpus = Path(__file__).parents[2] / "hyperion_pipelines" / "sample_corpus"
    texts = [(corpus / "notes" / name).read_text() for name in ("lighthouse-keepers.txt", "composting.txt")]
    return [p.strip() for text in texts for p in text.split("\n\n") if p.strip()]


def test_on_milvus_lite_hyperion_scores_bm25_over_the_whole_collection(
    tmp_path: Path, model: SentenceTransformerEmbedder
) -> None:
    """What CI's compose smoke test met: a one-document upload day, written after the earlier
    days were flushed, is the best match for its own words, yet milvus-lite's BM25 function
    scores it with its own one-row segment's statistics and ranks it below older chunks. On
    milvus-lite a hybrid collection's BM25 is therefore Hyperion's (term weights it writes, IDF of
    the whole collection in the query): the new upload comes first, alone and fused."""
    older = paragraphs_of_the_sample_corpus()
    new = "# Kept across restarts\n\nLanterns of the harbour are lit at dusk."
    query = "harbour lanterns at dusk"
    client = MilvusClient(uri=str(tmp_path / "index.db"))
    assert MilvusIndex(client, IndexSpec()).retrieval == "hybrid-local"
    local = MilvusIndex(client, IndexSpec(retrieval="hybrid"))
    assert local.retrieval == "hybrid-local"
    function = MilvusIndex(client, IndexSpec(alias="function", retrieval="hybrid"))
    function._retrieval = "hybrid"  # type: ignore[assignment]  # milvus-lite's own BM25 function
    collections = {}
    for index in (local, function):
        collection = collections[index] = index.ensure_collection("0123456789abcdef", 384)
        assert index.is_hybrid(collection) and index.scores_bm25_locally(collection) is (index is local)
        for n, batch in enumerate((older, [new])):
            vectors = model.embed(batch)
            rows = []
            for i, text in enumerate(batch):
                row: dict = {name: 0 if limit is None else "" for name, limit in SCALAR_FIELDS.items()}
                rows.append(
                    row
                    | {"id": f"d{n}c{i}", "source": f"day{n}", "document_id": f"day{n}", "text": text}
                    | {"vector": vectors[i]}
                )
            index.upsert(collection, rows)
            index.flush(collection)
    # milvus-lite's function: the only chunk with all three words, scored as one of one, ranks
    # below chunks with one. If this fails, milvus-lite scores BM25 over the whole collection:
    # revisit hybrid-local and ``auto``.
    ranked = [hit.fields["document_id"] for hit in function.keyword_search(collections[function], [query], limit=20)[0]]
    assert ranked.index("day1") > 0, ranked
    collection = collections[local]
    keyword = local.keyword_search(collection, [query], limit=3)[0]
    assert [hit.fields["document_id"] for hit in keyword][0] == "day1"
    found = local.search(model.embed([query]), limit=3, collection=collection, texts=[query])[0]
    assert found[0].fields["source"] == "day1"
    # The statistics follow deletes: without the new day, its words are in no chunk again.
    assert local.term_statistics(collection).chunks == len(older) + 1
    local.delete(collection, ["d1c0"])
    assert local.term_statistics(collection).chunks == len(older)
    assert local.keyword_search(collection, ["lanterns"], limit=3) == [[]]
