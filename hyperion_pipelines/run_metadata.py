"""The metadata entries of a run that are read outside the step that records them.

The command line's summary, the Prometheus metrics, blue/green promotion and the evaluation
``hyperion ingest`` reports after its runs read what the assets record on their materialisations.
Each such entry is named once here: the assets record under these names and the readers look
values up through them, so a rename cannot leave a reader behind (``test_pipeline`` checks that
an ingest run records every one of ``INGEST_ENTRIES``; ``test_checks`` reads the evaluation's
through ``hyperion ingest --json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Every asset's step records the seconds it took under this key.
STEP_SECONDS = "seconds"
#: The promote op's decision, on its output and on the failure that refuses a promotion.
PROMOTION_SUMMARY = "summary"

RunMetadata = Mapping[str, Mapping[str, Any]]  # asset name -> its materialisation's entry values


@dataclass(frozen=True)
class Entry:
    """One metadata entry of one asset's materialisation."""

    asset: str
    key: str

    def of(self, metadata: RunMetadata, default: Any = None) -> Any:
        """The entry's value in a run's metadata, or ``default`` when the run did not record it."""
        return metadata.get(self.asset, {}).get(self.key, default)


DOCUMENTS = Entry("raw_documents", "documents")
PARSED = Entry("parsed_documents", "parsed")
PARSED_NOW = Entry("parsed_documents", "parsed_now")
PARSE_REUSED = Entry("parsed_documents", "parse_reused")
REJECTED = Entry("parsed_documents", "rejected")
REJECTED_BY_REASON = Entry("parsed_documents", "rejected_by_reason")
CHUNKS = Entry("document_chunks", "chunks")
EMBEDDED = Entry("chunk_embeddings", "embedded")
REUSED = Entry("chunk_embeddings", "reused")
COLLECTION = Entry("vector_index", "collection")
LIVE_COLLECTION = Entry("vector_index", "live_collection")
UPSERTED = Entry("vector_index", "upserted")
DELETED = Entry("vector_index", "deleted")
COLLECTION_ENTRIES = Entry("vector_index", "collection_entries")
EVALUATION_K = Entry("retrieval_evaluation", "k")
EVALUATION_QUERIES = Entry("retrieval_evaluation", "queries")
RECALL_AT_K = Entry("retrieval_evaluation", "recall_at_k")
MRR = Entry("retrieval_evaluation", "mrr")
NDCG_AT_K = Entry("retrieval_evaluation", "ndcg_at_k")

#: The entries an ingest run records for its readers, every one of them.
INGEST_ENTRIES = (
    DOCUMENTS, PARSED, PARSED_NOW, PARSE_REUSED, REJECTED, REJECTED_BY_REASON, CHUNKS, EMBEDDED, REUSED,
    COLLECTION, LIVE_COLLECTION, UPSERTED, DELETED, COLLECTION_ENTRIES,
)  # fmt: skip
#: What ``retrieval_evaluation`` scored, in the order ``hyperion ingest`` reports it.
EVALUATION_FIGURES = (EVALUATION_K, EVALUATION_QUERIES, RECALL_AT_K, MRR, NDCG_AT_K)


def metadata_by_asset(materializations: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """A run's asset materialisations (Dagster's ``AssetMaterialization``) as asset name -> entry
    values; the last materialisation of an asset wins."""
    return {m.asset_key.path[-1]: {key: value.value for key, value in m.metadata.items()} for m in materializations}
