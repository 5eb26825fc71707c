"""Milvus collections for one alias: explicit schema, vector index, batched writes, search.

Collections are named ``<alias>__<fingerprint>``: one embedding space per collection. The alias is
what searches use, so the collection behind it can be swapped without readers noticing.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pymilvus import (
    AnnSearchRequest,
    DataType,
    Function,
    FunctionType,
    MilvusClient,
    MilvusException,
    RRFRanker,
    WeightedRanker,
)

from hyperion_pipelines.chunking.context import embedding_input
from hyperion_pipelines.deadline import Checkpoint, no_deadline
from hyperion_pipelines.ids import FINGERPRINT_LENGTH
from hyperion_pipelines.index.concurrent_create import made_by_another
from hyperion_pipelines.index.document_frequencies import DocumentFrequencies
from hyperion_pipelines.index.fusion import relative_fusion
from hyperion_pipelines.index.local_bm25 import TermStatistics, document_weights, frequency_changes, query_terms
from hyperion_pipelines.index.query_pages import query_pages
from hyperion_pipelines.spec import IndexSpec

#: Scalar fields and their VARCHAR byte limits (None: an integer field).
SCALAR_FIELDS: dict[str, int | None] = {
    "document_id": 64,
    "source": 4096,
    "title": 1024,
    "partition_date": 16,
    "heading_path": 4096,
    "document_sha256": 64,
    "chunk_index": None,
    "char_start": None,
    "char_end": None,
    "token_count": None,
    "text": 65535,
}
#: What a re-run compares with the stored entry of the same id. Not ``text``: the chunk id hashes
#: the text, so the same id holds the same text, and reading every chunk's text back would cost
#: more than all the other fields together.
COMPARED_FIELDS = tuple(field for field in SCALAR_FIELDS if field != "text")
#: Fields the sync and the checks look entries up by: indexed (see :func:`scalar_index_type`).
LOOKUP_FIELDS = ("document_id", "partition_date")
#: The BM25 field of a hybrid collection: Milvus computes it from :data:`BM25_TEXT_FIELD` (a
#: function output, never written by us), so a re-run's comparison and the sync need not know it.
SPARSE_FIELD = "sparse"
#: What BM25 reads in a hybrid collection: the chunk as the model embeds it, its context line
#: ("Title > Section") in front of its text. A chunk from the middle of a page rarely repeats the
#: page's title, which is what keyword queries name (BM25 alone on peer_fair.py's manual chunks,
#: nDCG@10 on keyword queries: 0.953 against 0.764 for the text alone, a one-off scoring not kept
#: in benchmarks/). Derived from compared
#: fields (title, heading path, text), so never compared itself. Hybrid collections made before
#: it existed read ``text`` and have another name (``ids.collection_fingerprint``).
BM25_TEXT_FIELD = "bm25_text"
#: Seconds a searcher keeps a local-BM25 collection's term statistics counted from its stored
#: weights (only while its kept counts, :mod:`.document_frequencies`, cannot be trusted) before
#: counting again; a searcher that writes counts again after its own writes.
TERM_STATISTICS_TTL_S = 30.0
#: What :func:`resolved_retrieval` gives: ``hybrid`` (the server scores BM25 over the whole
#: collection), ``hybrid-local`` (Hyperion does, :mod:`.local_bm25`: milvus-lite) or ``dense``.
Retrieval = Literal["hybrid", "hybrid-local", "dense"]
#: Candidates each side of a hybrid search offers the fusion, at least.
HYBRID_CANDIDATES = 50
_MAX_LIMIT = 16384  # Milvus's largest search limit
_BATCH = 1000
#: Seconds one Milvus call may take, pymilvus's own retries included. Without a bound pymilvus
#: retries an unreachable server 75 times (about four minutes) before the step's retry policy
#: gets a say; with it, a server that is down fails the attempt quickly and Dagster retries it.
DEFAULT_TIMEOUT_S = 60.0
_log = logging.getLogger(__name__)


class _QuietLiteTimestamps(logging.Filter):
    """milvus-lite has no MVCC timestamp service, so pymilvus warns on every query iterator."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to get mvccTs" not in record.getMessage()


logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_QuietLiteTimestamps())


def clip_utf8(value: str, max_bytes: int) -> str:
    """Cut to at most ``max_bytes`` of UTF-8 without splitting a character."""
    raw = value.encode("utf-8")
    return value if len(raw) <= max_bytes else raw[:max_bytes].decode("utf-8", errors="ignore")


def _quoted(values: Iterable[str]) -> str:
    return "[" + ",".join(json.dumps(v) for v in values) + "]"


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _version(server_version: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"v?(\d+)\.(\d+)\.\S*", server_version.strip())
    return (int(match[1]), int(match[2])) if match else None


def has_bm25(server_version: str) -> bool:
    """Whether the server computes BM25 fields: Milvus from 2.5, and milvus-lite (its own version
    numbers, "milvus_lite-3.2.2"). Milvus 2.3.5 crashes on a sparse field."""
    version = _version(server_version)
    return version is None or version >= (2, 5)


def is_milvus_lite(server_version: str) -> bool:
    """Whether the server is milvus-lite (its versions read "milvus_lite-3.2.2")."""
    return server_version.strip().startswith("milvus_lite")


def bm25_is_collection_wide(server_version: str) -> bool:
    """Whether the server scores BM25 with the whole collection's statistics. Milvus from 2.5
    does. milvus-lite 3.2.2 scores each segment with its own document count, lengths and term
    frequencies (a TODO in its ``engine/collection.py``): a document written after a flush sits
    in a small segment and scores far below its match (one new document: IDF 0.29 a term,
    where the collection's would be 4.2), so a fused search ranks it below older, weaker hits."""
    version = _version(server_version)
    return version is not None and version >= (2, 5)


def resolved_retrieval(requested: str, server_version: str) -> Retrieval:
    """``auto``: hybrid on milvus-lite and on Milvus from 2.5, dense elsewhere; ``hybrid`` (or
    ``auto``) where the server scores BM25 per segment (milvus-lite): scored by Hyperion instead;
    else as asked."""
    lite = is_milvus_lite(server_version)
    if requested == "dense" or (requested == "auto" and not (lite or bm25_is_collection_wide(server_version))):
        return "dense"  # auto on a server before 2.5, or one whose version does not say
    if bm25_is_collection_wide(server_version) or not has_bm25(server_version):
        return "hybrid"  # before 2.5, made dense with a warning (see MilvusIndex._create)
    return "hybrid-local"


def scalar_index_type(server_version: str) -> str:
    """The index of the fields the sync looks entries up by: INVERTED, or on a Milvus server
    older than 2.4, which refuses INVERTED, the Trie those servers build for strings.
    ``server_version``: as servers report it ("v2.3.5", "2.6.11", "milvus_lite-3.2.2")."""
    version = _version(server_version)
    return "Trie" if version and version < (2, 4) else "INVERTED"


@dataclass(frozen=True)
class SearchHit:
    score: float
    id: str
    fields: dict[str, Any]


def _hits(found: Iterable[dict[str, Any]]) -> list[SearchHit]:
    return [SearchHit(float(hit["distance"]), str(hit["id"]), dict(hit["entity"])) for hit in found]


class MilvusIndex:
    def __init__(
        self,
        client: MilvusClient,
        spec: IndexSpec,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        term_statistics: dict[str, tuple[float, TermStatistics]] | None = None,
    ):
        """``term_statistics``: a cache of local-BM25 statistics to share with later instances
        on the same server (``hyperion serve`` reconnects to milvus-lite after each idle spell)."""
        self.client = client
        self.spec = spec
        self.timeout_s = timeout_s
        self._fields: dict[str, frozenset[str]] = {}  # collection -> its field names (fixed when made)
        self._local_bm25: dict[str, bool] = {}  # collection -> its BM25 field is scored by Hyperion
        # collection -> (read at, statistics)
        self._statistics = term_statistics if term_statistics is not None else {}
        self._dense_metric: dict[str, str] = {}  # collection -> its vector index's metric
        self._frequencies: dict[str, DocumentFrequencies] = {}  # local-BM25 collection -> its kept counts
        self._retrieval: Retrieval | None = None

    @property
    def retrieval(self) -> Retrieval:
        """The spec's retrieval on this server (``auto`` resolved): what names the collection."""
        if self._retrieval is None:
            version = self.client.get_server_version(timeout=self.timeout_s)
            self._retrieval = resolved_retrieval(self.spec.retrieval, version)
        return self._retrieval

    def collection_name(self, fingerprint: str) -> str:
        return f"{self.spec.alias}__{fingerprint}"

    def ensure_collection(self, fingerprint: str, dimension: int) -> str:
        """The collection of ``fingerprint``, made (schema, indexes) and loaded if need be. Runs of
        several days may get here at once for a new collection, on several hosts."""
        name = self.collection_name(fingerprint)
        made = not self.client.has_collection(name, timeout=self.timeout_s) and self._create(name, dimension)
        # Also on a collection that exists: the run that made it may have died before indexing
        # it, and Milvus loads no collection without its vector index. The indexes of a collection
        # this call made have no rows to build: nothing to wait for (pymilvus polls every 0.5 s,
        # 1.5 s of a small day's run).
        self._create_indexes(name, wait=not made)
        self.ensure_loaded(name)
        if self.scores_bm25_locally(name):
            self._sound_frequencies(name)
        return name

    def _create(self, name: str, dimension: int) -> bool:
        """Make the collection; False when Milvus refused it because another run had made it.
        (Milvus usually accepts a second identical create: then both runs count it as theirs and
        neither waits for its indexes, which is harmless, since neither has written rows yet.)"""
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        version = self.client.get_server_version(timeout=self.timeout_s)
        hybrid = self.retrieval != "dense" and has_bm25(version)
        local = hybrid and self.retrieval == "hybrid-local"
        if self.retrieval != "dense" and not hybrid:
            _log.warning("Milvus %s has no BM25 (2.5 and later have): %s is made for dense search only", version, name)
        for field, limit in SCALAR_FIELDS.items():
            if limit is None:
                schema.add_field(field, DataType.INT64)
            else:
                schema.add_field(field, DataType.VARCHAR, max_length=limit)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        if local:
            # Term weights written by Hyperion (local_bm25): milvus-lite would score BM25 per segment.
            schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        elif hybrid:
            # Tokenised for BM25 by Milvus's standard analyzer.
            limit = SCALAR_FIELDS["text"]
            schema.add_field(BM25_TEXT_FIELD, DataType.VARCHAR, max_length=limit, enable_analyzer=True)
            schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
            bm25 = Function(
                name="text_bm25",
                input_field_names=[BM25_TEXT_FIELD],
                output_field_names=[SPARSE_FIELD],
                function_type=FunctionType.BM25,
            )
            schema.add_function(bm25)
        # Made, then indexed, then loaded by ensure_loaded: never loaded with some of its indexes
        # still to come. A run making the same collection at the same moment finds the same
        # schema and indexes made, by whichever run was first.
        try:
            self.client.create_collection(name, schema=schema, consistency_level="Strong", timeout=self.timeout_s)
        except MilvusException:
            if not made_by_another(self.client, name, self.timeout_s):
                raise
            return False
        return True

    def _create_indexes(self, name: str, *, wait: bool = True) -> None:
        """Each index the collection lacks; those another run has made meanwhile are kept.
        ``wait``: until each is built (on rows already written)."""
        scalar = scalar_index_type(self.client.get_server_version(timeout=self.timeout_s))
        vector = {"index_type": self.spec.index_type, "metric_type": self.spec.metric_type}
        self._create_index(name, "vector", wait, **vector, params=dict(self.spec.index_params))
        for field in LOOKUP_FIELDS:
            self._create_index(name, field, wait, index_type=scalar)
        if self.is_hybrid(name):
            metric = "IP" if self.scores_bm25_locally(name) else "BM25"
            self._create_index(name, SPARSE_FIELD, wait, index_type="SPARSE_INVERTED_INDEX", metric_type=metric)

    def is_hybrid(self, collection: str) -> bool:
        """Whether the collection has the BM25 field."""
        return SPARSE_FIELD in self._field_names(collection)

    def kind(self, collection: str) -> Retrieval:
        """What the collection holds: vectors alone (``dense``), or a BM25 field beside them that
        Milvus (``hybrid``) or Hyperion (``hybrid-local``) scores."""
        if not self.is_hybrid(collection):
            return "dense"
        return "hybrid-local" if self.scores_bm25_locally(collection) else "hybrid"

    def scores_bm25_locally(self, collection: str) -> bool:
        """Whether the BM25 field holds Hyperion's term weights (no Milvus function makes it)."""
        self._field_names(collection)
        return self._local_bm25[collection]

    def _field_names(self, collection: str) -> frozenset[str]:
        """Asked once: a collection never changes its fields."""
        if collection not in self._fields:
            described = self.client.describe_collection(collection, timeout=self.timeout_s)
            self._fields[collection] = frozenset(field["name"] for field in described["fields"])
            made_by_milvus = bool(described.get("functions"))
            self._local_bm25[collection] = SPARSE_FIELD in self._fields[collection] and not made_by_milvus
        return self._fields[collection]

    def term_statistics(self, collection: str) -> TermStatistics:
        """A local-BM25 collection's chunk count and document frequencies, counted from its stored
        term weights (kept :data:`TERM_STATISTICS_TTL_S`): what searches use while the kept
        counts cannot be trusted, and what those are rebuilt from."""
        now = time.monotonic()
        cached = self._statistics.get(collection)
        if cached is None or now - cached[0] > TERM_STATISTICS_TTL_S:
            cached = self._statistics[collection] = (now, TermStatistics.of(self._all_weights(collection)))
        return cached[1]

    def _all_weights(self, collection: str) -> Iterator[dict[int, float]]:
        self.ensure_loaded(collection)
        return (row[SPARSE_FIELD] for row in self._iterate(collection, 'id != ""', [SPARSE_FIELD]))

    def frequencies(self, collection: str) -> DocumentFrequencies:
        """The document frequencies kept beside a local-BM25 collection."""
        if collection not in self._frequencies:
            self._frequencies[collection] = DocumentFrequencies(self.client, collection, self.timeout_s)
        return self._frequencies[collection]

    def _sound_frequencies(self, collection: str) -> DocumentFrequencies:
        """The kept counts, first counted afresh where they are missing (a collection made before
        they were kept), were left part-way, or count other than the collection's rows."""
        frequencies = self.frequencies(collection)
        if not frequencies.is_sound(self.count(collection)):
            _log.info("Counting the document frequencies of %s from its stored term weights", collection)
            frequencies.rebuild(self._all_weights(collection))
        return frequencies

    def _stored_weights(self, collection: str, ids: Sequence[str]) -> list[dict[int, float]]:
        """The stored term weights of whichever ``ids`` exist (what a write replaces or a delete removes)."""
        # Each id once: Milvus answers an id asked for twice twice.
        unique = list(dict.fromkeys(ids))
        rows = self.client.get(collection, ids=unique, output_fields=[SPARSE_FIELD], timeout=self.timeout_s)
        return list({row["id"]: row[SPARSE_FIELD] for row in rows}.values())

    def _keyword_queries(self, collection: str, texts: Sequence[str]) -> list[Any]:
        """What the BM25 field is searched with: the texts, which Milvus scores, or in a local-BM25
        collection each text's terms weighted by their IDF (empty: no chunk holds any), from the
        counts kept beside it (those of the queries' terms alone)."""
        if not self.scores_bm25_locally(collection):
            return list(texts)
        wanted = set().union(*(query_terms(text) for text in texts))
        try:
            statistics = self.frequencies(collection).statistics(wanted)
        except MilvusException as exc:  # the companion damaged or not loadable: the chunks still answer
            _log.warning("%s: the kept document frequencies cannot be read (%s)", collection, exc)
            statistics = None
        if statistics is None:
            _log.debug("%s: no complete document frequencies kept: counting them from the chunks", collection)
            statistics = self.term_statistics(collection)
        return [statistics.query_weights(text) for text in texts]

    def _create_index(self, collection: str, field: str, wait: bool, **settings: Any) -> None:
        if self.client.list_indexes(collection, field_name=field, timeout=self.timeout_s):
            return
        index = self.client.prepare_index_params()
        index.add_index(field_name=field, index_name=field, **settings)
        try:
            self.client.create_index(collection, index, timeout=self.timeout_s, sync=wait)
        except MilvusException:
            if not self.client.list_indexes(collection, field_name=field, timeout=self.timeout_s):
                raise  # not made by another run meanwhile: a real failure

    def ensure_loaded(self, collection: str) -> None:
        """A collection reopened from disk starts released; searches and queries need it loaded.
        One that another run is still indexing is loaded once its indexes are there: Milvus will
        not load it again with more indexes ("can't change the index for loaded collection")."""
        if self._loaded(collection):
            return
        deadline = time.monotonic() + self.timeout_s
        while not self._indexed(collection) and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            self.client.load_collection(collection, timeout=self.timeout_s)
        except MilvusException as exc:
            # Loaded meanwhile with fewer indexes (by a run of an older version): load it afresh.
            if "change the index" not in str(exc):
                raise
            self.client.release_collection(collection, timeout=self.timeout_s)
            self.client.load_collection(collection, timeout=self.timeout_s)

    def _loaded(self, collection: str) -> bool:
        state = self.client.get_load_state(collection, timeout=self.timeout_s).get("state")
        return getattr(state, "name", str(state)) == "Loaded"

    def _indexed(self, collection: str) -> bool:
        """Whether the vector, every lookup field and the BM25 field (if any) have their index."""
        fields = ("vector", *LOOKUP_FIELDS, *([SPARSE_FIELD] if self.is_hybrid(collection) else []))
        return all(self.client.list_indexes(collection, field_name=field, timeout=self.timeout_s) for field in fields)

    # -- alias -------------------------------------------------------------------------------
    def live_collection(self) -> str | None:
        """The collection the alias points at, or None when there is no alias yet."""
        # Ask only for an alias that exists: describing a missing one logs an error in pymilvus.
        if self.spec.alias not in self.client.list_aliases(timeout=self.timeout_s).get("aliases", []):
            return None
        return self.client.describe_alias(self.spec.alias, timeout=self.timeout_s).get("collection_name")

    def collections(self) -> list[str]:
        """Every collection of this alias (one per embedding space built), live or not."""
        # Exactly <alias>__<fingerprint>: another pipeline's alias may begin with this one and "__".
        own = re.compile(rf"{re.escape(self.spec.alias)}__[0-9a-f]{{{FINGERPRINT_LENGTH}}}")
        return sorted(c for c in self.client.list_collections(timeout=self.timeout_s) if own.fullmatch(c))

    def drop(self, collection: str) -> None:
        if collection == self.live_collection():
            raise ValueError(f"{collection} is behind the live alias {self.spec.alias!r}; it cannot be dropped")
        self.client.drop_collection(collection, timeout=self.timeout_s)
        try:
            self.frequencies(collection).drop()
        except MilvusException as exc:  # left behind, it is counted afresh if the name comes back
            _log.warning("%s dropped, its document frequencies not: %s", collection, exc)

    def point_alias(self, collection: str) -> None:
        if self.live_collection() is None:
            self.client.create_alias(collection, self.spec.alias, timeout=self.timeout_s)
        else:
            self.client.alter_alias(collection, self.spec.alias, timeout=self.timeout_s)

    # -- reads -------------------------------------------------------------------------------
    def _pages(self, collection: str, expr: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
        return query_pages(self.client, collection, expr, fields, self.timeout_s)

    def _iterate(self, collection: str, expr: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        for page in self._pages(collection, expr, fields):
            yield from page

    def ids_of_documents(self, collection: str, document_ids: Sequence[str]) -> list[str]:
        """Ids of the entries of ``document_ids``, on any day."""
        found: list[str] = []
        for batch in _batches(list(document_ids), _BATCH):
            found.extend(row["id"] for row in self._iterate(collection, f"document_id in {_quoted(batch)}", ["id"]))
        return found

    def id_pages(
        self, collection: str, *, partition_date: str | None, document_ids: Sequence[str]
    ) -> Iterator[list[str]]:
        """Ids of entries dated ``partition_date`` (none when None) or belonging to any of
        ``document_ids``, a page at a time (a day's ids can be millions); an id may come twice."""
        if partition_date is not None:
            for page in self._pages(collection, f"partition_date == {json.dumps(partition_date)}", ["id"]):
                yield [row["id"] for row in page]
        for batch in _batches(list(document_ids), _BATCH):
            for page in self._pages(collection, f"document_id in {_quoted(batch)}", ["id"]):
                yield [row["id"] for row in page]

    def documents_with_entries(self, collection: str, document_ids: Sequence[str]) -> set[str]:
        """Which of ``document_ids`` have entries, on any day."""
        found: set[str] = set()
        for batch in _batches(list(document_ids), _BATCH):
            for page in self._pages(collection, f"document_id in {_quoted(batch)}", ["document_id"]):
                found.update(row["document_id"] for row in page)
        return found

    def stored_rows(
        self, collection: str, *, document_ids: Sequence[str], partition_date: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """The :data:`COMPARED_FIELDS` of the entries of ``document_ids`` (and, when given, of those
        dated ``partition_date``)."""
        fields = ["id", *COMPARED_FIELDS]
        found: dict[str, dict[str, Any]] = {}
        if partition_date is not None:
            expr = f"partition_date == {json.dumps(partition_date)}"
            found.update((row["id"], row) for row in self._iterate(collection, expr, fields))
        for batch in _batches(list(document_ids), _BATCH):
            found.update(
                (row["id"], row) for row in self._iterate(collection, f"document_id in {_quoted(batch)}", fields)
            )
        return found

    def remove_other_documents(self, collection: str, *, partition_date: str, keep: Sequence[str]) -> int:
        """Delete the entries dated ``partition_date`` whose document is not in ``keep``."""
        self.ensure_loaded(collection)
        kept = set(keep)
        rows = self._iterate(collection, f"partition_date == {json.dumps(partition_date)}", ["id", "document_id"])
        gone = [row["id"] for row in rows if row["document_id"] not in kept]
        return self.delete(collection, gone) if gone else 0

    def entry_pages(self, collection: str, *, partition_date: str, document_ids: Sequence[str]) -> Iterator[list[str]]:
        """Like :meth:`id_pages`, but each entry once: an id stored twice comes twice."""
        date = json.dumps(partition_date)
        for page in self._pages(collection, f"partition_date == {date}", ["id"]):
            yield [row["id"] for row in page]
        for batch in _batches(list(document_ids), _BATCH):
            expr = f"document_id in {_quoted(batch)} and partition_date != {date}"
            for page in self._pages(collection, expr, ["id"]):
                yield [row["id"] for row in page]

    def partition_dates(self, collection: str) -> set[str]:
        """Every upload day that has entries (a full scan: for whole-index maintenance only)."""
        self.ensure_loaded(collection)
        return {row["partition_date"] for row in self._iterate(collection, 'id != ""', ["partition_date"])}

    def document_ids(self, collection: str) -> set[str]:
        """Every document with entries (a full scan: for promotion checks and maintenance only)."""
        self.ensure_loaded(collection)
        return {row["document_id"] for row in self._iterate(collection, 'id != ""', ["document_id"])}

    def vectors_for(self, collection: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of whichever ``ids`` exist: same id means same text in the same space."""
        vectors: dict[str, np.ndarray] = {}
        for batch in _batches(list(ids), _BATCH):
            for row in self.client.get(collection, ids=list(batch), output_fields=["vector"], timeout=self.timeout_s):
                vectors[row["id"]] = np.asarray(row["vector"], dtype=np.float32)
        return vectors

    def reusable_vectors(
        self, collection: str, same_space: Sequence[str], chunks: pd.DataFrame
    ) -> dict[str, np.ndarray]:
        """Stored vectors of ``chunks`` (``chunk_id``, ``document_id``) in ``collection``, else in
        whichever of the ``same_space`` collections (the same embedding space, the other retrieval)
        exist. A chunk id names its document, so only chunks of documents with entries can have
        one: a query per 1,000 documents says which, and a day of new documents asks for no
        vectors (looking up 77,000 absent ids took 18 s of a 108 s day on Milvus 2.3.5)."""
        found: dict[str, np.ndarray] = {}
        for name in [collection, *same_space]:
            wanted = chunks[~chunks["chunk_id"].isin(found.keys())] if found else chunks
            if wanted.empty:
                break
            if name != collection:
                if not self.client.has_collection(name, timeout=self.timeout_s):
                    continue
                self.ensure_loaded(name)
            present = self.documents_with_entries(name, wanted["document_id"].unique().tolist())
            ids = wanted.loc[wanted["document_id"].isin(present), "chunk_id"].tolist()
            if ids:
                found.update(self.vectors_for(name, ids))
        return found

    def texts_of(self, collection: str, ids: Sequence[str]) -> dict[str, str]:
        """The stored chunk text of whichever ``ids`` exist."""
        texts: dict[str, str] = {}
        for batch in _batches(list(ids), _BATCH):
            for row in self.client.get(collection, ids=list(batch), output_fields=["text"], timeout=self.timeout_s):
                texts[row["id"]] = row["text"]
        return texts

    def has_entries_dated(self, collection: str, partition_date: str) -> bool:
        """Whether any entry is dated ``partition_date`` (one row asked for, not a count)."""
        expr = f"partition_date == {json.dumps(partition_date)}"
        return bool(self.client.query(collection, filter=expr, output_fields=["id"], limit=1, timeout=self.timeout_s))

    def count(self, collection: str, expr: str = "") -> int:
        # No filter for the whole collection: Milvus then counts from its segments' row counts
        # instead of testing every row (0.06 s against 2.3 s for 24,000 rows on milvus-lite).
        result = self.client.query(collection, filter=expr, output_fields=["count(*)"], timeout=self.timeout_s)
        return int(result[0]["count(*)"])

    def search(
        self,
        vectors: np.ndarray,
        *,
        limit: int,
        collection: str | None = None,
        expr: str = "",
        texts: Sequence[str] | None = None,
    ) -> list[list[SearchHit]]:
        """The nearest entries of each query. With the queries' ``texts`` and a hybrid collection:
        the dense and the BM25 rankings fused as the pipeline says (``fusion``); the scores are
        then the fusion's, not similarities. Without them: the vectors alone."""
        target = collection or self.live_collection()
        if target is None:
            raise LookupError(f"alias {self.spec.alias!r} does not exist: nothing has been indexed yet")
        self.ensure_loaded(target)
        if texts is not None and self.is_hybrid(target):
            return [
                self._hybrid_search(target, vector, text, limit, expr)
                for vector, text in zip(vectors, texts, strict=True)
            ]
        results = self.client.search(
            target,
            data=[v.tolist() for v in vectors],
            anns_field="vector",
            limit=limit,
            filter=expr,
            output_fields=[f for f in SCALAR_FIELDS],
            timeout=self.timeout_s,
        )
        return [_hits(found) for found in results]

    def _hybrid_search(self, collection: str, vector: np.ndarray, text: str, limit: int, expr: str) -> list[SearchHit]:
        # hybrid_search takes one query per request: each query is one call. Each side offers more
        # candidates than asked for: an entry one side ranks just below the cut would otherwise
        # enter the fusion with that side's score missing, and the top k would depend on k.
        pool = min(_MAX_LIMIT, max(2 * limit, HYBRID_CANDIDATES))
        keyword = self._keyword_queries(collection, [text])[0]
        requests = [
            AnnSearchRequest(data=[vector.tolist()], anns_field="vector", param={}, limit=pool, expr=expr or None),
            AnnSearchRequest(data=[keyword], anns_field=SPARSE_FIELD, param={}, limit=pool, expr=expr or None),
        ]
        if self.spec.fusion == "relative" or not keyword:  # no chunk holds a word of the query: dense alone
            return self._relative_search(collection, requests if keyword else requests[:1], limit)
        if self.spec.fusion == "rrf":
            ranker = RRFRanker(self.spec.rrf_k)
        else:
            ranker = WeightedRanker(self.spec.dense_weight, 1 - self.spec.dense_weight)
        results = self.client.hybrid_search(
            collection,
            reqs=requests,
            ranker=ranker,
            limit=limit,
            output_fields=[f for f in SCALAR_FIELDS],
            timeout=self.timeout_s,
        )
        return _hits(results[0])

    def _relative_search(self, collection: str, requests: list[AnnSearchRequest], limit: int) -> list[SearchHit]:
        """Each side searched on its own (one call each), fused here (:mod:`.fusion`)."""
        dense, *keyword = (
            _hits(
                self.client.search(
                    collection,
                    data=request.data,
                    anns_field=request.anns_field,
                    limit=request.limit,
                    filter=request.expr or "",
                    output_fields=list(SCALAR_FIELDS),
                    timeout=self.timeout_s,
                )[0]
            )
            for request in requests
        )
        keyword = keyword[0] if keyword else []
        metric = self._vector_metric(collection)
        fused = relative_fusion(dense, keyword, dense_weight=self.spec.dense_weight, metric_type=metric, limit=limit)
        return [SearchHit(score, hit.id, hit.fields) for score, hit in fused]

    def _vector_metric(self, collection: str) -> str:
        """The metric the collection's vectors were indexed with (not the spec's: an index that
        exists is kept when the spec changes)."""
        if collection not in self._dense_metric:
            described = self.client.describe_index(collection, index_name="vector", timeout=self.timeout_s)
            self._dense_metric[collection] = str(described.get("metric_type") or self.spec.metric_type).upper()
        return self._dense_metric[collection]

    def keyword_search(self, collection: str, texts: Sequence[str], *, limit: int) -> list[list[SearchHit]]:
        """The BM25 field alone (a hybrid collection's): what the self-retrieval check reads."""
        self.ensure_loaded(collection)
        results = self.client.search(
            collection,
            data=self._keyword_queries(collection, texts),
            anns_field=SPARSE_FIELD,
            limit=limit,
            output_fields=["document_id"],
            timeout=self.timeout_s,
        )
        return [_hits(found) for found in results]

    # -- writes ------------------------------------------------------------------------------
    def upsert(self, collection: str, rows: Sequence[dict[str, Any]], checkpoint: Checkpoint = no_deadline) -> int:
        written = 0
        bm25_input = BM25_TEXT_FIELD in self._field_names(collection)
        local = self.scores_bm25_locally(collection)
        # Counts marked as being changed until the rows and the counts are both written: a write
        # broken off between the two leaves them to be counted afresh.
        frequencies = self._sound_frequencies(collection) if local else None
        # The counts' changes summed over the batches and written once: the terms of one batch
        # recur in the next (the manuals' 8,278 chunks hold 17,512 distinct terms).
        chunks, changes = 0, Counter[int]()
        try:
            token = frequencies.begin() if frequencies else 0
            for batch in _batches(rows, self.spec.write_batch_size):
                checkpoint()
                clean = [self._clean(row, bm25_input, local) for row in batch]
                replaced = self._stored_weights(collection, [row["id"] for row in clean]) if frequencies else []
                written += int(self.client.upsert(collection, clean, timeout=self.timeout_s)["upsert_count"])
                if frequencies:
                    # An id twice in one batch is stored once.
                    added = {row["id"]: row[SPARSE_FIELD] for row in clean}.values()
                    batch_chunks, batch_changes = frequency_changes(added=added, removed=replaced)
                    chunks += batch_chunks
                    changes.update(batch_changes)
            if frequencies:
                frequencies.apply(chunks, changes)
                frequencies.finish(token)
        except BaseException:
            if frequencies:  # rows may be written, their counts not: another writer's finish must not clear that
                frequencies.abandon()
            raise
        finally:
            self._statistics.pop(collection, None)  # this searcher sees its own writes
        return written

    def flush(self, collection: str) -> None:
        """Seal what was written, so later lookups use the scalar indexes. Milvus scans rows not
        yet sealed on every query: a lookup of 20 documents among 48,000 fresh rows took 2.3 s on
        milvus-lite, and 0.08 s once they were flushed."""
        self.client.flush(collection, timeout=self.timeout_s)

    def delete(self, collection: str, ids: Sequence[str]) -> int:
        deleted = 0
        frequencies = self._sound_frequencies(collection) if self.scores_bm25_locally(collection) else None
        chunks, changes = 0, Counter[int]()  # summed as in upsert
        try:
            token = frequencies.begin() if frequencies else 0
            for batch in _batches(list(ids), _BATCH):
                if frequencies:
                    batch_chunks, batch_changes = frequency_changes(removed=self._stored_weights(collection, batch))
                    chunks += batch_chunks
                    changes.update(batch_changes)
                result = self.client.delete(collection, ids=list(batch), timeout=self.timeout_s)
                deleted += int(result["delete_count"]) if isinstance(result, dict) else len(batch)
            if frequencies:
                frequencies.apply(chunks, changes)
                frequencies.finish(token)
        except BaseException:
            if frequencies:
                frequencies.abandon()
            raise
        finally:
            self._statistics.pop(collection, None)
        return deleted

    @staticmethod
    def scalar_values(row: dict[str, Any]) -> dict[str, Any]:
        """The row's scalar fields as Milvus stores them (integers, clipped strings)."""
        return {
            field: int(row[field]) if limit is None else clip_utf8(str(row[field]), limit)
            for field, limit in SCALAR_FIELDS.items()
        }

    @staticmethod
    def _clean(row: dict[str, Any], bm25_input: bool, local_bm25: bool = False) -> dict[str, Any]:
        """The row as Milvus stores it; ``bm25_input``: with what BM25 reads (a chunk row's
        ``context`` line, when it has one, before its text); ``local_bm25``: with its BM25 term
        weights (:mod:`.local_bm25`) of the same."""
        clean: dict[str, Any] = {"id": row["id"], "vector": np.asarray(row["vector"], dtype=np.float32).tolist()}
        for field, limit in SCALAR_FIELDS.items():
            value = row[field]
            clean[field] = int(value) if limit is None else clip_utf8(str(value), limit)
        if bm25_input or local_bm25:
            text = embedding_input(str(row.get("context") or ""), str(row["text"]))
            if bm25_input:
                clean[BM25_TEXT_FIELD] = clip_utf8(text, SCALAR_FIELDS["text"] or 0)
            if local_bm25:
                clean[SPARSE_FIELD] = document_weights(text)
        return clean
