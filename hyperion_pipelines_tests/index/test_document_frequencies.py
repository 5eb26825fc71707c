"""The document frequencies kept beside a local-BM25 collection, on real milvus-lite: they equal
the counts from every chunk's stored weights after writes, rewrites and deletes; a write broken
off leaves them untrusted (searches count from the chunks) until the next writer counts afresh;
a searcher reads only its query's terms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymilvus import MilvusClient

from hyperion_pipelines.ids import FINGERPRINT_LENGTH
from hyperion_pipelines.index.document_frequencies import CHUNKS, companion_name
from hyperion_pipelines.index.local_bm25 import query_terms
from hyperion_pipelines.index.milvus_index import SCALAR_FIELDS, MilvusIndex
from hyperion_pipelines.spec import IndexSpec

TEXTS = {
    "a": "Lighthouse keepers trim the wick at dusk.",
    "b": "The keepers log the weather every four hours.",
    "c": "Compost heaps need air, water and brown leaves.",
    "d": "Turn the compost heap weekly; keepers of gardens know.",
}
DIMENSION = 8
FINGERPRINT = "0123456789abcdef"[:FINGERPRINT_LENGTH].ljust(FINGERPRINT_LENGTH, "0")


def rows(texts: dict[str, str]) -> list[dict]:
    rng = np.random.default_rng(len(texts))
    made = []
    for chunk_id, text in texts.items():
        row: dict = {name: 0 if limit is None else "" for name, limit in SCALAR_FIELDS.items()}
        made.append(row | {"id": chunk_id, "document_id": chunk_id, "text": text, "vector": rng.random(DIMENSION)})
    return made


def every_term(index: MilvusIndex, collection: str) -> set[int]:
    return set(index.term_statistics(collection).frequencies) | {
        t for text in TEXTS.values() for t in query_terms(text)
    }


def assert_kept_counts_exact(index: MilvusIndex, collection: str) -> None:
    """The kept counts of every term equal those counted from the stored weights, and the
    companion holds no row for a term no chunk holds."""
    index._statistics.clear()
    counted = index.term_statistics(collection)
    kept = index.frequencies(collection).statistics(every_term(index, collection))
    assert kept is not None
    assert kept.chunks == counted.chunks == index.count(collection)
    assert dict(kept.frequencies) == dict(counted.frequencies)
    assert set(index.frequencies(collection)._terms()) == {CHUNKS, *counted.frequencies}


@pytest.fixture
def local(tmp_path: Path) -> tuple[MilvusIndex, str]:
    index = MilvusIndex(MilvusClient(uri=str(tmp_path / "index.db")), IndexSpec())
    assert index.retrieval == "hybrid-local"
    return index, index.ensure_collection(FINGERPRINT, DIMENSION)


def test_kept_counts_follow_writes_rewrites_and_deletes(local: tuple[MilvusIndex, str]) -> None:
    index, collection = local
    assert index.frequencies(collection).statistics(set()) == index.term_statistics(collection)  # empty, made
    index.upsert(collection, rows(TEXTS))
    assert_kept_counts_exact(index, collection)
    keepers = query_terms("keepers")
    assert index.frequencies(collection).statistics(keepers).frequencies == {next(iter(keepers)): 3}
    # The same ids rewritten with other words: their old terms counted out, the new in.
    index.upsert(collection, rows({"a": "Harbour lanterns at dusk.", "d": "Brown leaves and air."}))
    assert_kept_counts_exact(index, collection)
    assert index.frequencies(collection).statistics(keepers).frequencies == {next(iter(keepers)): 1}
    index.delete(collection, ["b", "b", "missing"])
    assert_kept_counts_exact(index, collection)
    assert index.frequencies(collection).statistics(keepers).frequencies == {}
    index.upsert(collection, rows({"e": "", "f": "keepers keepers keepers"}))  # a wordless chunk too
    assert_kept_counts_exact(index, collection)


def test_a_searcher_reads_only_the_kept_counts_of_its_query_terms(
    local: tuple[MilvusIndex, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    index, collection = local
    index.upsert(collection, rows(TEXTS))
    searcher = MilvusIndex(index.client, index.spec)

    def counted_from_every_chunk(_: str) -> None:
        raise AssertionError("the searcher counted the frequencies from every chunk")

    monkeypatch.setattr(searcher, "term_statistics", counted_from_every_chunk)
    [hits] = searcher.keyword_search(collection, ["lighthouse wick"], limit=2)
    assert [hit.fields["document_id"] for hit in hits] == ["a"]


def test_a_write_broken_off_leaves_the_counts_untrusted_until_the_next_writer_counts_afresh(
    local: tuple[MilvusIndex, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    index, collection = local
    index.upsert(collection, rows(TEXTS))
    batches = iter(range(10))

    def deadline_after_the_first_batch() -> None:
        if next(batches) == 1:
            raise TimeoutError("the step's deadline")

    small = MilvusIndex(index.client, index.spec.model_copy(update={"write_batch_size": 1}))
    more = {"g": "Lighthouse lamps", "h": "Lighthouse lenses", "i": "Lighthouse keepers"}
    with pytest.raises(TimeoutError):
        small.upsert(collection, rows(more), checkpoint=deadline_after_the_first_batch)
    assert index.count(collection) == len(TEXTS) + 1
    assert index.frequencies(collection).statistics(query_terms("lighthouse")) is None
    # Searches count from the chunks meanwhile: the one written is found.
    searcher = MilvusIndex(index.client, index.spec)
    counted = []
    monkeypatch.setattr(searcher, "term_statistics", lambda c: counted.append(c) or index.term_statistics(c))
    [hits] = searcher.keyword_search(collection, ["lighthouse lamps"], limit=1)
    assert [hit.id for hit in hits] == ["g"] and counted == [collection]
    # The next writer counts afresh before it writes.
    index.upsert(collection, rows({"h": more["h"]}))
    assert_kept_counts_exact(index, collection)


def test_writers_that_overlap_leave_the_counts_broken_not_wrong(local: tuple[MilvusIndex, str]) -> None:
    """Two runs writing through one milvus-lite server may each read a count before the other
    writes it back: whichever ends first finds the other's token and leaves the counts broken;
    the later one cannot mend them; searches count from the chunks; the next run counts afresh."""
    index, collection = local
    index.upsert(collection, rows(TEXTS))
    first, second = index.frequencies(collection), MilvusIndex(index.client, index.spec).frequencies(collection)
    first_token = first.begin()
    second_token = second.begin()
    first.finish(first_token)
    second.finish(second_token)
    assert first.statistics(query_terms("keepers")) is None
    [hits] = MilvusIndex(index.client, index.spec).keyword_search(collection, ["wick"], limit=1)
    assert [hit.id for hit in hits] == ["a"]
    assert MilvusIndex(index.client, index.spec).ensure_collection(FINGERPRINT, DIMENSION) == collection
    assert_kept_counts_exact(index, collection)


def test_a_write_that_fails_after_another_writer_mended_the_counts_leaves_them_broken(
    local: tuple[MilvusIndex, str],
) -> None:
    """Through one milvus-lite server: writer A begins; writer B finds A's token, counts afresh
    and ends, marking the counts complete; A then fails with rows written and not counted. A's
    failure marks them broken, so the rows it wrote are not left out of the IDF unnoticed."""
    index, collection = local
    index.upsert(collection, rows(TEXTS))
    batches = iter(range(10))

    def another_writer_then_a_deadline() -> None:
        if next(batches) == 1:
            other = MilvusIndex(index.client, index.spec)
            assert other.ensure_collection(FINGERPRINT, DIMENSION) == collection  # counts afresh
            assert other.frequencies(collection).statistics(set()) is not None
            raise TimeoutError("the step's deadline")

    small = MilvusIndex(index.client, index.spec.model_copy(update={"write_batch_size": 1}))
    more = rows({"g": "Lighthouse lamps", "h": "Lighthouse lenses"})
    with pytest.raises(TimeoutError):
        small.upsert(collection, more, another_writer_then_a_deadline)
    assert index.frequencies(collection).statistics(query_terms("lamps")) is None
    index.delete(collection, ["a"])  # the next writer counts afresh
    assert_kept_counts_exact(index, collection)


def test_rows_written_without_the_counts_are_counted_afresh_by_the_next_writer(
    local: tuple[MilvusIndex, str],
) -> None:
    """A collection of this kind made before the counts were kept (no companion), or written by
    such a version meanwhile (its chunk count differs): the next writer counts from the chunks."""
    index, collection = local
    index.upsert(collection, rows(TEXTS))
    index.client.drop_collection(companion_name(collection))
    fresh = MilvusIndex(index.client, index.spec)
    assert fresh.frequencies(collection).statistics(set()) is None
    assert fresh.ensure_collection(FINGERPRINT, DIMENSION) == collection
    assert_kept_counts_exact(fresh, collection)
    # A row written behind the counts' back (as a version without them would): counted afresh.
    [row] = rows({"x": "lighthouse"})
    stored = MilvusIndex._clean(row, bm25_input=False, local_bm25=True)
    index.client.upsert(collection, [stored])
    assert not fresh.frequencies(collection).is_sound(fresh.count(collection))
    fresh.delete(collection, ["c"])
    assert_kept_counts_exact(fresh, collection)


def test_the_counts_are_not_a_collection_of_the_alias_and_go_with_theirs(local: tuple[MilvusIndex, str]) -> None:
    index, collection = local
    assert index.collections() == [collection]
    assert index.client.has_collection(companion_name(collection))
    index.drop(collection)
    assert not index.client.has_collection(companion_name(collection))
    assert index.collections() == []
